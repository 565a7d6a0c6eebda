"""POST /campaigns/{name}/request in-process (SQLite store, one worker thread): what a caller is answered
(202, 401, 404, 409, 413, 422) and the runs that follow, once per person and request."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import query, wait_until
from test_schedule import write_rules

from engine.service.app import Service, ServiceConfig, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx
    from fastapi.testclient import TestClient

TOKEN = "request-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    rules = write_rules(tmp_path / "rules")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = ServiceConfig(
        rules=[str(rules / "batch.campaign")], db_url=url, world=str(rules / "world.json"), token=TOKEN
    )
    with TestClient(create_app(Service(config))) as client:
        yield client, url


def kit_runs(url: str) -> list[str]:
    rows = query(
        url,
        "SELECT p.email FROM runs r JOIN persons p ON p.id = r.person_id WHERE r.campaign = 'Welcome Kit' "
        "ORDER BY r.id",
    )
    return [str(row[0]) for row in rows]


def pending(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL")[0][0])


def test_a_request_is_queued_and_each_person_runs_once(api: tuple[TestClient, str]) -> None:
    client, url = api
    answer = client.post(
        "/campaigns/Welcome Kit/request", json={"persons": ["Ann@Example.com", "bob@example.com"]}, headers=AUTH
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["campaign"] == "Welcome Kit" and body["queued"] == 2 and body["duplicates"] == 0
    assert len(body["inbox_ids"]) == 2
    wait_until(lambda: pending(url) == 0, 20, what="the requests to be processed")
    assert sorted(kit_runs(url)) == ["ann@example.com", "bob@example.com"]
    events = [json.loads(e) for (e,) in query(url, "SELECT event FROM service_inbox ORDER BY id")]
    assert [(e["type"], e["person"], e["campaign"]) for e in events] == [
        ("campaign_requested", "Ann@Example.com", "Welcome Kit"),
        ("campaign_requested", "bob@example.com", "Welcome Kit"),
    ]
    # the same request again with an idempotency key: once; without one: a new request
    keyed = {"persons": ["cat@example.com"], "id": "crm-req-7"}
    assert client.post("/campaigns/Welcome Kit/request", json=keyed, headers=AUTH).json()["queued"] == 1
    again = client.post("/campaigns/Welcome Kit/request", json=keyed, headers=AUTH).json()
    assert again["queued"] == 0 and again["duplicates"] == 1
    wait_until(lambda: pending(url) == 0, 20, what="the requests to be processed")
    assert kit_runs(url).count("cat@example.com") == 1
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'smartcampaign_campaign_requests_total{campaign="Welcome Kit"} 3.0' in metrics


def test_what_a_refused_request_is_answered_and_nothing_is_queued(api: tuple[TestClient, str]) -> None:
    client, url = api
    ok = {"persons": ["ann@example.com"]}
    unauthorized = client.post("/campaigns/Welcome Kit/request", json=ok)
    assert unauthorized.status_code == 401
    wrong = client.post("/campaigns/Welcome Kit/request", json=ok, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    missing = client.post("/campaigns/Nope/request", json=ok, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["detail"] == 'no smart campaign "Nope"'
    batch = client.post("/campaigns/Digest/request", json=ok, headers=AUTH)
    assert batch.status_code == 409
    assert batch.json()["detail"] == (
        'smart campaign "Digest" cannot be requested: it has no `trigger campaign is requested`'
    )
    many = {"persons": [f"p{n}@example.com" for n in range(101)]}
    too_many = client.post("/campaigns/Welcome Kit/request", json=many, headers=AUTH)
    assert too_many.status_code == 413
    assert too_many.json()["detail"].startswith("at most 100 persons a request, not 101")
    empty = client.post("/campaigns/Welcome Kit/request", json={"persons": []}, headers=AUTH)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "persons"]
    shape = client.post("/campaigns/Welcome Kit/request", json={"people": ["ann@example.com"]}, headers=AUTH)
    assert shape.status_code == 422
    assert {tuple(e["loc"]) for e in shape.json()["detail"]} == {("body", "persons"), ("body", "people")}
    not_email = client.post("/campaigns/Welcome Kit/request", json={"persons": ["ann"]}, headers=AUTH)
    assert not_email.status_code == 422 and "not an email address" in not_email.json()["detail"][0]["msg"]
    bad_json = client.post(
        "/campaigns/Welcome Kit/request", content=b"{", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422
    unknown = client.post(
        "/campaigns/Welcome Kit/request",
        json={"persons": ["ann@example.com", "zed@example.com", "yan@example.com"]},
        headers=AUTH,
    )
    assert unknown.status_code == 422
    detail = unknown.json()["detail"][0]
    assert detail["persons"] == ["zed@example.com", "yan@example.com"]
    assert detail["msg"] == "not in the mirror (no such person): zed@example.com, yan@example.com"
    assert query(url, "SELECT COUNT(*) FROM service_inbox")[0][0] == 0


def test_the_endpoint_is_documented_and_campaigns_show_schedules(api: tuple[TestClient, str]) -> None:
    client, _url = api
    spec = client.get("/openapi.json", headers=AUTH).json()
    operation = spec["paths"]["/campaigns/{name}/request"]["post"]
    assert set(operation["responses"]) >= {"202", "401", "404", "409", "413", "422"}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CampaignRequest"
    }
    persons = spec["components"]["schemas"]["CampaignRequest"]["properties"]["persons"]
    assert persons["maxItems"] == 100 and "1 to 100" in persons["description"]
    campaigns = {c["name"]: c for c in client.get("/campaigns", headers=AUTH).json()["campaigns"]}
    assert campaigns["Welcome Kit"]["requestable"] is True and "batch" not in campaigns["Welcome Kit"]
    digest = campaigns["Digest"]["batch"]
    assert digest["schedule"] == "schedule every day at 09:00" and digest["timezone"] == "UTC"
    assert digest["next_run"]["utc"].endswith("T09:00Z")


def test_with_a_signing_secret_a_request_is_signed_as_post_events_is(tmp_path: Path) -> None:
    from engine.service.app import SIGNATURE_HEADER, sign

    rules = write_rules(tmp_path / "rules")
    config = ServiceConfig(
        rules=[str(rules / "batch.campaign")],
        db_url=f"sqlite:///{tmp_path / 'store.db'}",
        world=str(rules / "world.json"),
        token=TOKEN,
        hmac_secret="s3cret",
    )
    body = json.dumps({"persons": ["ann@example.com"]}).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    with TestClient(create_app(Service(config))) as client:
        unsigned = client.post("/campaigns/Welcome Kit/request", content=body, headers=headers)
        assert unsigned.status_code == 401
        signed = client.post(
            "/campaigns/Welcome Kit/request", content=body, headers={**headers, SIGNATURE_HEADER: sign("s3cret", body)}
        )
        assert signed.status_code == 202 and signed.json()["queued"] == 1


def test_a_signed_in_console_session_may_request(api: tuple[TestClient, str]) -> None:
    import re

    client, _url = api
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    assert client.post("/console/login", data={"secret": TOKEN, "csrf": csrf.group(1)}).status_code == 200
    answer = client.post("/campaigns/Welcome Kit/request", json={"persons": ["ann@example.com"]})
    assert answer.status_code == 202 and answer.json()["queued"] == 1
