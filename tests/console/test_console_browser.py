"""The console in a real headless Chromium against a real `smartcampaign serve` (local org, SQLite store):
sign in, every page, a person search, the charts drawn, sign out, and every page refused without a session."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from console_helpers import EXAMPLE, Serve, browser, chromium_or_skip, wait_until

TOKEN = "console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ATTENDEES = "Webinar Attendees to Nurture"
NO_SHOWS = "Webinar No-shows Get the Recording"
PAGES = ["/", "/console/campaign?name=Webinar%20Attendees%20to%20Nurture", "/console/person?q=bob%40example.com",
         "/console/salesforce", "/console/queue"]  # fmt: skip


def event(person: str, status: str) -> dict[str, str]:
    return {
        "type": "status_changed_in_sfdc_campaign",
        "person": person,
        "campaign": "2026 Q4 Webinar",
        "status": status,
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    folder = tmp_path_factory.mktemp("console")
    rules = folder / "rules"
    shutil.copytree(EXAMPLE / "rules", rules)
    args = ["--rules", str(rules), "--world", str(EXAMPLE / "world.json"), "--db", f"sqlite:///{folder / 's.db'}",
            "--token", TOKEN]  # fmt: skip
    serve = Serve(args, folder / "serve.log")
    try:
        # bob and cat attended (runs, then a 2-day wait); ann and dan did not show up (dan is not to be contacted)
        events = [event("bob@example.com", "Attended"), event("cat@example.com", "Attended"),
                  event("ann@example.com", "No Show"), event("dan@example.com", "No Show")]  # fmt: skip
        answer = requests.post(f"{serve.base}/events", json=events, headers=AUTH, timeout=10)
        assert answer.status_code == 202, answer.text

        def done() -> bool:
            runs = requests.get(f"{serve.base}/campaigns", headers=AUTH, timeout=5).json()["campaigns"]
            return sum(c["runs"] for c in runs) == 3

        wait_until(done, 30, 0.05, "the three runs")
        yield serve
    finally:
        serve.close()
    assert "Traceback" not in serve.output()


def test_every_page_is_refused_without_a_session_or_token(service: Serve) -> None:
    for page in PAGES:
        answer = requests.get(service.base + page, timeout=5, allow_redirects=False)
        assert answer.status_code == 401, page
        assert 'action="/console/login"' in answer.text and 'name="secret"' in answer.text
        assert "bob@example.com</h2>" not in answer.text
    forged_cookie = {"smartcampaign_session": "eyJuIjoieCIsImV4cCI6OTk5OTk5OTk5OTl9.00"}
    forged = requests.get(service.base + "/", cookies=forged_cookie, timeout=5)
    assert forged.status_code == 401
    retry = requests.post(service.base + "/console/salesforce/retry", data={"id": "1"}, timeout=5)
    assert retry.status_code == 401
    # the JSON API: the bearer token as before; /healthz stays open
    assert requests.get(service.base + "/campaigns", timeout=5).status_code == 401
    assert requests.get(service.base + "/persons/bob@example.com/activity", timeout=5).status_code == 401
    assert requests.get(service.base + "/campaigns", headers=AUTH, timeout=5).status_code == 200
    assert requests.get(service.base + "/healthz", timeout=5).status_code == 200
    # the bearer token opens the pages too (for scripts)
    assert requests.get(service.base + "/console/queue", headers=AUTH, timeout=5).status_code == 200


def test_sign_in_refuses_a_wrong_secret_and_a_form_without_its_token(service: Serve) -> None:
    form = requests.get(service.base + "/console/login", timeout=5).text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    asked = time.monotonic()
    wrong = requests.post(service.base + "/console/login", data={"secret": "nope", "csrf": token.group(1), "next": "/"},
                          timeout=5, allow_redirects=False)  # fmt: skip
    assert time.monotonic() - asked >= 1.0  # a wrong secret is answered after a delay
    assert wrong.status_code == 401 and "Wrong token or password." in wrong.text and "set-cookie" not in wrong.headers
    forged = requests.post(service.base + "/console/login", data={"secret": TOKEN, "csrf": "1.abc", "next": "/"},
                           timeout=5, allow_redirects=False)  # fmt: skip
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    good = requests.post(service.base + "/console/login", data={"secret": TOKEN, "csrf": token.group(1),
                         "next": "https://evil.example/"}, timeout=5, allow_redirects=False)  # fmt: skip
    assert good.status_code == 303 and good.headers["location"] == "/"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie


def bars_drawn(chart: Any) -> int:
    return sum(1 for height in chart.locator("rect.bar").evaluate_all("rs => rs.map(r => +r.getAttribute('height'))")
               if height > 0)  # fmt: skip


def test_the_console_in_chromium(service: Serve, tmp_path: Path) -> None:
    chromium_or_skip()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with browser() as chromium:
        context = chromium.new_context(viewport={"width": 1300, "height": 900})
        page = context.new_page()

        # sign in: the form takes the API token, sets an HttpOnly SameSite=Strict cookie and goes where we wanted
        response = page.goto(service.base + "/console/queue")
        assert response is not None and response.status == 401
        page.screenshot(path=str(shots / "sign-in.png"), full_page=True)
        page.fill("#secret", TOKEN)
        page.click("form.signin button[type=submit]")
        page.wait_for_url(service.base + "/console/queue")
        (cookie,) = [c for c in context.cookies() if c["name"] == "smartcampaign_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # campaigns: both campaigns with their runs; the search box narrows the list
        page.goto(service.base + "/")
        rows = page.locator("#campaigns tbody tr")
        assert rows.count() == 2
        attendees = rows.filter(has_text=ATTENDEES)
        cells = attendees.locator("td").all_inner_texts()
        assert cells[1:5] == ["trigger", "active", "2", "2"]  # kind, active, runs today, runs in 7 days
        assert cells[6] == "2"  # bob and cat wait two days
        assert rows.filter(has_text=NO_SHOWS).locator("td").all_inner_texts()[3] == "1"
        page.screenshot(path=str(shots / "campaigns.png"), full_page=True)
        page.fill("input[name=q]", "no-show")
        page.press("input[name=q]", "Enter")
        page.wait_for_url(re.compile(r"q=no-show"))
        assert page.locator("#campaigns tbody tr").all_inner_texts()[0].startswith(NO_SHOWS)
        assert page.locator("#campaigns tbody tr").count() == 1

        # a campaign: words, highlighted source, the runs chart drawn with data, outcomes, people waiting, graph
        page.goto(service.base + "/")
        page.click(f"text={ATTENDEES}")
        page.wait_for_url(re.compile(r"/console/campaign\?name="))
        assert page.locator("h1").inner_text() == ATTENDEES
        words = page.locator("section.card").first.inner_text()
        assert 'status changed in sfdc campaign "2026 Q4 Webinar" to in ("Attended", "Attended On-demand")' in words
        assert 'not member of sfdc campaign "Do Not Contact"' in words and "qualify once" in words
        assert 'if member of sfdc campaign "Customers"' in words and "wait 2 days" in words
        assert page.locator("pre.source .tok-keyword").count() > 10
        assert page.locator("pre.source .tok-string", has_text='"Nurture 2026"').count() == 2
        chart = page.locator("svg.chart").first
        assert int(chart.get_attribute("data-points") or 0) == 30
        assert bars_drawn(chart) == 1  # today's two runs in one bar
        assert "(2 runs)" in chart.locator(":scope > title").text_content() or ""
        assert page.locator("#outcomes tbody tr", has_text="Nurture 2026").count() == 2
        assert sorted(page.locator("#waiting tbody td:first-child").all_inner_texts()) == [
            "bob@example.com",
            "cat@example.com",
        ]
        if shutil.which("dot"):
            graph = page.locator(".graph svg")
            assert graph.count() == 1 and "SFDC: 2026 Q4 Webinar" in (graph.text_content() or "")
        else:
            assert "Graphviz is not installed" in page.locator("#graph-note").inner_text()
        page.screenshot(path=str(shots / "campaign.png"), full_page=True)

        # a person: search, memberships, activity, and explain for a chosen campaign
        page.click("nav >> text=Person")
        page.fill("input[name=q]", "BOB@example.com")
        page.click("form.search button")
        page.wait_for_selector("#person")
        assert page.locator("#person h2").inner_text() == "bob@example.com"
        memberships = page.locator("#memberships tbody").inner_text()
        assert "Nurture 2026\tQueued" in memberships and "Customer Success Check-in\tSent" in memberships
        assert page.locator("#activity tbody tr", has_text="Add to SFDC Campaign").count() == 2
        page.select_option("#campaign", ATTENDEES)
        page.click("#explain button")
        page.wait_for_selector(".verdict")
        explained = page.locator("#explain").inner_text()
        assert "would not run: `qualify once`: does not qualify again" in explained
        assert "ran 1 time" in explained and '✓ not member of sfdc campaign "Do Not Contact"' in explained
        assert 'status changed in "2026 Q4 Webinar" Registered → Attended (event)' in explained
        page.select_option("#campaign", NO_SHOWS)
        page.click("#explain button")
        page.wait_for_selector(".verdict")
        assert "would run the flow if one of the triggers fired now" in page.locator(".verdict").inner_text()
        page.screenshot(path=str(shots / "person.png"), full_page=True)
        page.goto(service.base + "/console/person?q=dan%40example.com&campaign=" + NO_SHOWS.replace(" ", "%20"))
        assert page.locator(".verdict").inner_text() == (
            f'{NO_SHOWS}: would not run: the filter `not member of sfdc campaign "Do Not Contact"` is false.'
        )
        assert '✗ member of sfdc campaign "Do Not Contact" — status "Opted Out"' not in page.content()
        assert 'member of sfdc campaign "Do Not Contact"' in page.locator("ul.clauses").inner_text()
        page.fill("input[name=q]", "nobody@example.com")
        page.click("form.search button")
        page.wait_for_selector("#not-found")

        # Salesforce: the local org, no refusals, an empty outbox
        page.click("nav >> text=Salesforce")
        assert "embedded local org" in page.locator("#org").inner_text()
        assert "0 actions waiting to be sent" in page.locator("#outbox").inner_text()
        assert "Salesforce refused nothing." in page.locator("#refused").inner_text()
        page.screenshot(path=str(shots / "salesforce.png"), full_page=True)

        # queue: depth chart of the last hour (two series of 61 points), workers alive
        page.click("nav >> text=Queue")
        queue_chart = page.locator("svg.chart")
        assert int(queue_chart.get_attribute("data-points") or 0) == 122
        points = queue_chart.locator("polyline").evaluate_all(
            "ls => ls.map(l => l.getAttribute('points').split(' ').length)"
        )
        assert points == [61, 61]
        assert page.locator("#workers").inner_text() == "1/1"
        assert page.locator("#inbox-depth").inner_text() == "0"
        assert "Nothing is waiting" in page.locator("#oldest").inner_text()
        assert page.locator("#seen tbody tr").count() == 1
        page.screenshot(path=str(shots / "queue.png"), full_page=True)

        # sign out: the cookie is gone, and the old session is refused even if replayed
        stolen = cookie["value"]
        page.click("form.signout button")
        page.wait_for_selector("form.signin")
        assert "Signed out." in page.content()
        assert not [c for c in context.cookies() if c["name"] == "smartcampaign_session"]
        response = page.goto(service.base + "/console/person?q=bob%40example.com")
        assert response is not None and response.status == 401
        replayed = requests.get(service.base + "/", cookies={"smartcampaign_session": stolen}, timeout=5)
        assert replayed.status_code == 401
        context.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "campaign.png", "campaigns.png", "person.png", "queue.png", "salesforce.png", "sign-in.png"
    ]  # fmt: skip
    assert all(p.stat().st_size > 10_000 for p in shots.iterdir())


def test_sign_out_needs_the_csrf_token(service: Serve) -> None:
    form = requests.get(service.base + "/console/login", timeout=5).text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    with requests.Session() as session:
        signed = session.post(service.base + "/console/login", data={"secret": TOKEN, "csrf": token.group(1)},
                              timeout=5)  # fmt: skip
        assert signed.status_code == 200 and "smartcampaign_session" in session.cookies
        assert session.post(service.base + "/console/logout", data={"csrf": "wrong"}, timeout=5).status_code == 403
        assert session.get(service.base + "/", timeout=5).status_code == 200  # still signed in
        page = session.get(service.base + "/console/salesforce", timeout=5).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        assert (
            session.post(service.base + "/console/logout", data={"csrf": csrf.group(1)}, timeout=5).status_code == 200
        )
        assert session.get(service.base + "/", timeout=5).status_code == 401
