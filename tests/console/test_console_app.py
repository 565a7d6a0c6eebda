"""The console in-process (FastAPI's test client over the service's own app): names with markup are escaped,
bad input gets a clear answer, a store that cannot be read is a 503 page, and the API's routes are unchanged."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_helpers import EXAMPLE, wait_until

from engine.service.app import Service, ServiceConfig, create_app
from engine.store.store import make_engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx
    from fastapi.testclient import TestClient

TOKEN = "app-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MARKUP = """campaign "<script>alert(1)</script> & co" {
    description "<b>bold</b>"
    trigger added to sfdc campaign "Nurture 2026"
    flow { add to sfdc campaign "Sales Follow-up" with status "Sent" }
}

campaign "Weekly sweep" {
    schedule every week on monday at 09:00
    timezone "Europe/Berlin"
    filter member of sfdc campaign "Nurture 2026"
    flow { add to sfdc campaign "Sales Follow-up" with status "Sent" }
}

campaign "Kit on request" {
    trigger campaign is requested
    flow { add to sfdc campaign "Sales Follow-up" with status "Sent" }
}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    (tmp_path / "markup.campaign").write_text(MARKUP)
    config = ServiceConfig(
        rules=[str(EXAMPLE / "rules"), str(tmp_path / "markup.campaign")],
        db_url=f"sqlite:///{tmp_path / 'store.db'}",
        world=str(EXAMPLE / "world.json"),
        token=TOKEN,
    )
    service = Service(config)
    with TestClient(create_app(service)) as test_client:
        yield test_client, service


def signed_in(client: TestClient) -> str:
    """Signs in through the form; returns the session's CSRF token."""
    form = client.get("/console/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    answer = client.post("/console/login", data={"secret": TOKEN, "csrf": token.group(1), "next": "/console/queue"})
    assert answer.status_code == 200 and answer.url.path == "/console/queue"
    csrf = re.search(r'name="csrf" value="([^"]+)"', answer.text)
    assert csrf is not None
    return csrf.group(1)


def test_names_and_descriptions_are_escaped(client: tuple[TestClient, Service]) -> None:
    test_client, _ = client
    signed_in(test_client)
    listing = test_client.get("/").text
    assert "<script>alert(1)</script>" not in listing and "<b>bold</b>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in listing and "&lt;b&gt;bold&lt;/b&gt;" in listing
    page = test_client.get("/console/campaign", params={"name": "<script>alert(1)</script> & co"})
    assert page.status_code == 200
    assert "<script" not in page.text  # the console has no script of its own, and names come escaped
    assert '<span class="tok-string">&quot;&lt;script&gt;alert(1)&lt;/script&gt; &amp; co&quot;</span>' in page.text


def test_bad_input_gets_a_clear_answer(client: tuple[TestClient, Service]) -> None:
    test_client, _ = client
    csrf = signed_in(test_client)
    missing = test_client.get("/console/campaign", params={"name": "Nope"})
    assert missing.status_code == 404 and "The rule set has no smart campaign named &#34;Nope&#34;." in missing.text
    assert test_client.get("/console/campaign").status_code == 404
    nobody = test_client.get("/console/person", params={"q": "x" * 5000})
    assert nobody.status_code == 200 and 'id="not-found"' in nobody.text
    unknown = test_client.get("/console/person", params={"q": "ann@example.com", "campaign": "Nope"})
    assert "No smart campaign named “Nope”." in unknown.text
    by_id = test_client.get("/console/person", params={"q": "1"})
    assert 'id="person"' in by_id.text and "person id 1" in by_id.text
    assert test_client.post("/console/salesforce/retry", data={"csrf": csrf, "id": "x"}).status_code == 422
    assert test_client.post("/console/salesforce/retry", data={"csrf": "wrong", "id": "1"}).status_code == 403
    retried = test_client.post("/console/salesforce/retry", data={"csrf": csrf, "id": "99"})
    assert retried.status_code == 200 and "Action 99 cannot be retried" in retried.text


def test_a_store_that_cannot_be_read_is_a_503_page(client: tuple[TestClient, Service], tmp_path: Path) -> None:
    test_client, service = client
    signed_in(test_client)
    working = service.db
    service.db = make_engine(f"sqlite:///{tmp_path / 'no such folder' / 'store.db'}")
    try:
        for page in ("/", "/console/queue", "/console/salesforce", "/console/person?q=ann%40example.com"):
            answer = test_client.get(page)
            assert answer.status_code == 503, page
            assert "The store cannot be read right now (unable to open database file)" in answer.text
    finally:
        service.db = working
    assert test_client.get("/").status_code == 200


def test_the_api_is_unchanged_beside_the_console(client: tuple[TestClient, Service]) -> None:
    test_client, _ = client
    event = {"type": "status_changed_in_sfdc_campaign", "person": "bob@example.com", "campaign": "2026 Q4 Webinar",
             "status": "Attended"}  # fmt: skip
    assert test_client.post("/events", json=event).status_code == 401
    assert test_client.post("/events", json=event, headers=AUTH).status_code == 202
    wait_until(lambda: test_client.get("/campaigns", headers=AUTH).json()["campaigns"][0]["runs"] == 1, 10, 0.05,
               "the run")  # fmt: skip
    assert test_client.get("/openapi.json").status_code == 401  # only /healthz answers without credentials
    spec = test_client.get("/openapi.json", headers=AUTH).json()
    assert not [path for path in spec["paths"] if path == "/" or path.startswith("/console")]
    assert test_client.get("/console/static/console.css").status_code == 200


def test_the_campaign_graph_without_graphviz_says_so(
    client: tuple[TestClient, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    test_client, _ = client
    signed_in(test_client)
    monkeypatch.setattr("engine.service.console.router.shutil.which", lambda _name: None)
    page = test_client.get("/console/campaign", params={"name": "Webinar No-shows Get the Recording"}).text
    assert 'id="graph-note"' in page and "Graphviz is not installed on this server" in page
    assert "smartcampaign graph RULES --campaign NAME" in page


def test_the_campaigns_page_names_each_kind(client: tuple[TestClient, Service]) -> None:
    test_client, _ = client
    signed_in(test_client)
    listing = test_client.get("/").text
    rows = {
        re.sub(r"<[^>]+>", "", name).strip(): kind
        for name, kind in re.findall(
            r'<tr>\s*<td><a href="/console/campaign[^"]*">(.*?)</a>.*?</td>\s*<td>(.*?)</td>', listing, re.S
        )
    }
    assert rows["Kit on request"] == "requested"
    assert rows["&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"] == "trigger"
    sweep = rows["Weekly sweep"]
    assert sweep.startswith("batch: every week on monday at 09:00 (next ")
    assert re.search(r"\(next \d{4}-\d{2}-\d{2}T09:00\+0[12]:00 \(Europe/Berlin\)\)$", sweep), sweep
