"""The HTTP API in-process (SQLite store, one worker thread): intake, auth, validation, reads, reloads."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import RULES, WORLD, query, wait_until

from engine.service.app import MAX_BODY, MAX_EVENTS, SIGNATURE_HEADER, Service, ServiceConfig, create_app, sign

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx
    from fastapi.testclient import TestClient

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def signup(email: str, **extra: Any) -> dict[str, Any]:
    return {"type": "added_to_sfdc_campaign", "person": email, "campaign": "Signups", "status": "Signed Up", **extra}


def make_client(tmp_path: Path, **options: Any) -> tuple[TestClient, Service, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = ServiceConfig(rules=options.pop("rules", [RULES]), db_url=url, world=WORLD, token=TOKEN, **options)
    service = Service(config)
    return TestClient(create_app(service)), service, url


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Service, str]]:
    client, service, url = make_client(tmp_path)
    with client:
        yield client, service, url


def inbox_count(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM service_inbox")[0][0])


def test_events_are_taken_processed_and_logged(api: tuple[TestClient, Service, str]) -> None:
    client, _service, url = api
    answer = client.post("/events", json=[signup("Ann@Example.com", id="e1"), signup("bob@example.com")], headers=AUTH)
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 2
    again = client.post("/events", json=signup("ann@example.com", id="e1"), headers=AUTH)  # duplicate delivery
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1, "inbox_ids": []}
    wait_until(lambda: query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL")[0][0] == 0, 10)
    page = client.get("/persons/ann@example.com/activity", params={"limit": 1}, headers=AUTH).json()
    assert page["person"] == "ann@example.com"
    assert [(a["kind"], a["target"], a["outcome"]) for a in page["activity"]] == [
        ("Add to SFDC Campaign", "Nurture", "done")
    ]
    assert client.get("/persons/nobody@example.com/activity", headers=AUTH).status_code == 404
    campaigns = {c["name"]: c for c in client.get("/campaigns", headers=AUTH).json()["campaigns"]}
    assert campaigns["Welcome"]["runs"] == 2 and campaigns["Welcome"]["last_run"] is not None
    assert campaigns["Welcome"]["triggers"] == ['added to sfdc campaign "Signups"']
    assert campaigns["Track"]["runs"] == 0 and campaigns["Track"]["active"] is True
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'smartcampaign_events_received_total{source="api"} 2.0' in metrics
    assert 'smartcampaign_runs_total{campaign="Welcome"} 2.0' in metrics
    assert 'smartcampaign_actions_total{kind="add_to_sfdc_campaign",outcome="done"} 2.0' in metrics
    assert "smartcampaign_inbox_depth 0.0" in metrics
    assert "smartcampaign_inbox_oldest_age_seconds" in metrics and "smartcampaign_outbox_depth" in metrics


def test_activity_is_paged_newest_first(api: tuple[TestClient, Service, str]) -> None:
    client, _service, url = api
    events = [
        {"type": "status_changed_in_sfdc_campaign", "person": "ann@example.com", "campaign": "Stream",
         "status": f"S{k % 8}"}
        for k in range(5)
    ]  # fmt: skip
    assert client.post("/events", json=events, headers=AUTH).status_code == 202
    wait_until(lambda: query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL")[0][0] == 0, 10)
    first = client.get("/persons/ann@example.com/activity", params={"limit": 3}, headers=AUTH).json()
    second = client.get(
        "/persons/ann@example.com/activity", params={"limit": 3, "before": first["next"]}, headers=AUTH
    ).json()
    ids = [a["id"] for a in first["activity"] + second["activity"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5 and second["next"] is None


def test_bad_events_get_422_and_nothing_is_stored(api: tuple[TestClient, Service, str]) -> None:
    client, _service, url = api
    bad = [
        signup("ann@example.com"),
        {"type": "added_to_sfdc_campaign", "person": "not-an-email", "campaign": "Signups", "status": "Signed Up"},
        {"type": "exploded", "person": "bob@example.com"},
        {"type": "added_to_sfdc_campaign", "person": "cat@example.com", "campaign": "Nowhere", "status": "Sent"},
        {"type": "added_to_sfdc_campaign", "person": "dan@example.com", "campaign": "Signups", "status": "Maybe"},
        {"type": "status_changed_in_sfdc_campaign", "person": "eve@example.com", "campaign": "Signups"},
        {"type": "program_status_changed", "person": "fay@example.com", "program": "Nope", "status": "Registered"},
        {"type": "added_to_sfdc_campaign", "person": "gus@example.com", "campaign": "Signups", "status": "Signed Up",
         "colour": "red"},
    ]  # fmt: skip
    answer = client.post("/events", json=bad, headers=AUTH)
    assert answer.status_code == 422
    errors = {(e["loc"][1], e["loc"][2] if len(e["loc"]) > 2 else None) for e in answer.json()["detail"]}
    assert errors >= {(1, "person"), (2, "type"), (3, "campaign"), (4, "status"), (5, "status"), (6, "program"),
                      (7, "colour")}  # fmt: skip
    assert not any(index == 0 for index, _ in errors)
    messages = {e["loc"][1]: e["msg"] for e in answer.json()["detail"]}
    assert messages[3] == 'no SFDC campaign "Nowhere"'
    assert "expected one of: Signed Up" in messages[4]
    assert client.post("/events", content=b"{not json", headers=AUTH).status_code == 422
    assert client.post("/events", json=[], headers=AUTH).status_code == 422
    assert client.post("/events", json="text", headers=AUTH).status_code == 422
    assert inbox_count(url) == 0
    assert "smartcampaign_events_rejected_total 4.0" in client.get("/metrics", headers=AUTH).text


def test_wrong_or_missing_token_gets_401(api: tuple[TestClient, Service, str]) -> None:
    client, _service, url = api
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}):  # fmt: skip
        answer = client.post("/events", json=signup("ann@example.com"), headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/campaigns").status_code == 401
    assert client.get("/persons/ann@example.com/activity", headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.post("/rules/reload").status_code == 401
    assert inbox_count(url) == 0
    assert client.get("/healthz").status_code == 200  # probes need no token


def test_hmac_signature_when_configured(tmp_path: Path) -> None:
    client, _service, url = make_client(tmp_path, hmac_secret="shh")
    with client:
        body = json.dumps(signup("ann@example.com")).encode()
        headers = {**AUTH, "Content-Type": "application/json"}
        assert client.post("/events", content=body, headers=headers).status_code == 401
        wrong = {**headers, SIGNATURE_HEADER: sign("other", body)}
        assert client.post("/events", content=body, headers=wrong).status_code == 401
        tampered = {**headers, SIGNATURE_HEADER: sign("shh", body)}
        assert client.post("/events", content=body.replace(b"ann", b"bob"), headers=tampered).status_code == 401
        good = {**headers, SIGNATURE_HEADER: sign("shh", body)}
        assert client.post("/events", content=body, headers=good).status_code == 202
        assert inbox_count(url) == 1


def test_health_readiness_docs(api: tuple[TestClient, Service, str]) -> None:
    client, _service, _url = api
    assert client.get("/healthz").json() == {"status": "ok"}
    for path in ("/readyz", "/metrics", "/docs", "/openapi.json", "/campaigns"):  # only /healthz is open
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
    ready = client.get("/readyz", headers=AUTH)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"store", "crm", "rules", "workers"}
    assert client.get("/docs", headers=AUTH).status_code == 200
    spec = client.get("/openapi.json", headers=AUTH).json()
    assert {"/events", "/healthz", "/readyz", "/metrics", "/campaigns", "/persons/{email}/activity",
            "/rules/reload"} <= set(spec["paths"])  # fmt: skip
    assert "Event" in spec["components"]["schemas"]


def test_reload_refuses_a_broken_rule_set_and_keeps_the_running_one(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    client, service, _url = make_client(tmp_path, rules=[str(rules)])
    with client:
        assert service.rules.version == 1
        good = client.post("/rules/reload", headers=AUTH)
        assert good.status_code == 200 and good.json()["version"] == 2
        (rules / "broken.campaign").write_text('campaign "Broken" {\n    trigger added to\n}\n')
        broken = client.post("/rules/reload", headers=AUTH)
        assert broken.status_code == 422
        assert broken.json()["ok"] is False and "broken.campaign:" in broken.json()["errors"][0]
        assert service.rules.version == 2
        assert len(client.get("/campaigns", headers=AUTH).json()["campaigns"]) == 3


def test_watch_reloads_changed_rule_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    client, service, _url = make_client(tmp_path, rules=[str(rules)], watch=True)
    with client:
        time.sleep(0.5)  # the watcher is up
        extra = 'campaign "Extra" {\n    trigger added to sfdc campaign "Seen"\n    flow {\n    }\n}\n'
        (rules / "extra.campaign").write_text(extra)
        wait_until(lambda: service.rules.version >= 2, 15, 0.1, "the rules to be reloaded")
        names = [c["name"] for c in client.get("/campaigns", headers=AUTH).json()["campaigns"]]
        assert "Extra" in names
        (rules / "extra.campaign").write_text('campaign "Extra" {\n    trigger added to\n}\n')
        time.sleep(2.0)
        assert [c["name"] for c in client.get("/campaigns", headers=AUTH).json()["campaigns"]] == names


# ------------------------------------------------------------------------------ bounded input


def test_a_body_over_5_mb_gets_413_before_it_is_read(api: tuple[TestClient, Service, str]) -> None:
    client, _service, url = api
    assert MAX_BODY == 5 * 1024 * 1024
    pulled: list[int] = []

    def body(size: int) -> Iterator[bytes]:
        chunk = b" " * 65536
        for _ in range(0, size, len(chunk)):
            pulled.append(len(chunk))
            yield chunk

    # a Content-Length over the limit: refused before a byte of the body is read
    headers = {**AUTH, "Content-Length": str(MAX_BODY + 1)}
    answer = client.post("/events", content=body(MAX_BODY + 65536), headers=headers)
    assert answer.status_code == 413
    assert "larger than" in answer.json()["detail"]
    assert sum(pulled) <= 65536
    # no Content-Length (chunked): 413 (the test client buffers such a body; the read is tested below)
    answer = client.post("/events", content=body(2 * MAX_BODY), headers=AUTH)
    assert answer.status_code == 413
    # a plain body one byte over, and one at the limit (parsed: the padding is JSON whitespace)
    event = json.dumps(signup("ann@example.com")).encode()
    assert client.post("/events", content=event + b" " * (MAX_BODY + 1 - len(event)), headers=AUTH).status_code == 413
    at_limit = client.post("/events", content=event + b" " * (MAX_BODY - len(event)), headers=AUTH)
    assert at_limit.status_code == 202
    assert inbox_count(url) == 1


def test_a_batch_of_more_than_5000_events_gets_413_before_validation(
    api: tuple[TestClient, Service, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service, url = api
    assert MAX_EVENTS == 5_000
    validated: list[int] = []
    validate = service.validate
    monkeypatch.setattr(service, "validate", lambda payload: validated.append(1) or validate(payload))
    too_many = [signup(f"p{i}@example.com") for i in range(MAX_EVENTS + 1)]
    answer = client.post("/events", json=too_many, headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["detail"] == f"at most {MAX_EVENTS} events a request, not {MAX_EVENTS + 1}"
    assert validated == []  # refused before any event was validated
    # not valid events either: still 413, by count
    assert client.post("/events", json=[{"x": 1}] * (MAX_EVENTS + 1), headers=AUTH).status_code == 413
    assert validated == []
    assert inbox_count(url) == 0
    answer = client.post("/events", json=too_many[:MAX_EVENTS], headers=AUTH)
    assert answer.status_code == 202 and answer.json()["accepted"] == MAX_EVENTS
    assert validated == [1]


def test_a_chunked_body_is_read_only_until_it_passes_the_limit() -> None:
    from starlette.requests import Request

    from engine.service.app import _bounded_body

    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(65536)
        return {"type": "http.request", "body": b" " * 65536, "more_body": sum(received) < 4 * MAX_BODY}

    def request(headers: list[tuple[bytes, bytes]]) -> Request:
        return Request({"type": "http", "method": "POST", "path": "/events", "headers": headers}, receive)

    assert asyncio.run(_bounded_body(request([(b"transfer-encoding", b"chunked")]))) is None
    assert MAX_BODY < sum(received) <= MAX_BODY + 65536  # stopped at the first chunk past the limit
    received.clear()
    assert asyncio.run(_bounded_body(request([(b"content-length", str(MAX_BODY + 1).encode())]))) is None
    assert received == []  # a declared length over the limit: nothing read
    received.clear()
    body = asyncio.run(_bounded_body(request([(b"content-length", str(MAX_BODY).encode())])))
    assert body is None and sum(received) == MAX_BODY + 65536  # a lying Content-Length is still capped
