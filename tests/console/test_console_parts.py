"""The console's parts on their own: the SVG writer, the highlighter, sessions and CSRF, and the store queries
(queue depth history, refused actions and their retry) against a real SQLite store."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_helpers import pg_available, pg_schema
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.requests import Request

from engine.service.console import queries, svg
from engine.service.console.auth import COOKIE, ConsoleAuth
from engine.service.console.words import highlight, run_trigger_words
from engine.service.queue import create_tables
from engine.store.store import Store, make_engine


# ---------------------------------------------------------------------------------------------- SVG
def test_line_chart_draws_each_point_and_escapes_text() -> None:
    chart = svg.line_chart(
        [svg.Series("in<box>", [(0, 1), (30, 3), (60, 2)]), svg.Series("out", [(0, 0), (60, 5)])],
        title="depth <script>",
        start=0,
        end=60,
    )
    assert chart.startswith("<svg") and chart.endswith("</svg>") and 'data-points="5"' in chart
    assert "<script>" not in chart and "depth &lt;script&gt;" in chart and "in&lt;box&gt;" in chart
    lines = re.findall(r'<polyline [^>]*points="([^"]+)"', chart)
    assert [len(points.split()) for points in lines] == [3, 2]
    # y = 5 is the top of the plot (peak 5), y = 0 its bottom
    top, bottom = 28, 220 - 30
    assert lines[1].split()[1].endswith(f",{top:.1f}") and lines[1].split()[0].endswith(f",{bottom:.1f}")


def test_bars_have_heights_in_proportion() -> None:
    chart = svg.line_chart([svg.Series("runs", [(0, 2), (10, 4), (20, 0)])], title="t", start=0, end=30, bars=True)
    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([0-9.]+)"', chart)]
    assert heights[0] * 2 == pytest.approx(heights[1]) and heights[2] == 0


def test_meter_and_horizontal_bars() -> None:
    meter = svg.bar_meter(850, 1000, title="API calls")
    assert "850 of 1,000 (85.0 %)" in meter and "#c62828" in meter
    assert "#2e7d32" in svg.bar_meter(10, 1000, title="API calls")
    bars = svg.horizontal_bars([("GET query", 7), ("POST <x>", 1)], title="calls")
    assert 'data-points="2"' in bars and "POST &lt;x&gt;" in bars


# ---------------------------------------------------------------------------------------------- words
def test_highlight_marks_tokens_and_escapes_everything() -> None:
    source = 'campaign "A <b>" {  # a <comment>\n    wait 2 days\n}\n'
    html = highlight(source)
    assert '<span class="tok-keyword">campaign</span>' in html
    assert '<span class="tok-string">&quot;A &lt;b&gt;&quot;</span>' in html
    assert '<span class="tok-comment"># a &lt;comment&gt;</span>' in html
    assert '<span class="tok-number">2</span> <span class="tok-unit">days</span>' in html
    assert re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') == source


def test_run_trigger_words() -> None:
    trigger = {"type": "status_changed_in_sfdc_campaign", "campaign": "Q4", "previous_status": "Registered",
               "status": "Attended", "origin": "event"}  # fmt: skip
    assert run_trigger_words(trigger) == 'status changed in "Q4" Registered → Attended (event)'
    added = {"type": "added_to_sfdc_campaign", "campaign": "Q4", "status": "Sent", "origin": "flow"}
    assert run_trigger_words(added) == 'added to "Q4" with status "Sent" (flow)'


# ---------------------------------------------------------------------------------------------- auth
def request(cookie: str | None = None, authorization: str | None = None) -> Request:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


def test_sessions_are_signed_and_expire() -> None:
    auth = ConsoleAuth("tok")
    value, session = auth.new_session()
    found = auth.session(request(value))
    assert found is not None and found.nonce == session.nonce and auth.csrf_ok(found, session.csrf)
    assert not auth.csrf_ok(found, "x" * 40)
    body, mac = value.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["exp"] += 10**6
    longer = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    assert auth.session(request(f"{longer}.{mac}")) is None  # tampered
    assert ConsoleAuth("other token").session(request(value)) is None  # another token signs everybody out
    expired, _ = auth.new_session(now=time.time() - 13 * 3600)
    assert auth.session(request(expired)) is None
    assert auth.session(request("garbage")) is None and auth.session(request()) is None
    auth.sign_out(found)
    assert auth.session(request(value)) is None


def test_secrets_bearer_and_the_sign_in_form_token() -> None:
    auth = ConsoleAuth("tok", password="console pass")
    assert auth.secret_ok("tok") and auth.secret_ok("console pass")
    assert not auth.secret_ok("") and not auth.secret_ok("tok ")
    assert not ConsoleAuth("tok", password=None).secret_ok("console pass")
    assert auth.bearer_ok(request(authorization="Bearer tok"))
    assert not auth.bearer_ok(request(authorization="Bearer console pass"))  # the API takes the token only
    assert auth.login_token_ok(auth.login_token())
    assert not auth.login_token_ok(auth.login_token(now=time.time() - 7200))
    assert not ConsoleAuth("other").login_token_ok(auth.login_token())
    assert not auth.login_token_ok("1.2") and not auth.login_token_ok("")


# ---------------------------------------------------------------------------------------------- queries
@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'store.db'}"
        else:
            if not pg_available():
                if os.environ.get("CI"):
                    pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
                pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
            url = stack.enter_context(pg_schema())
        yield from _store(url)


def _store(url: str) -> Iterator[Engine]:
    Store.open(url).close()
    engine = make_engine(url)
    create_tables(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO persons (id, email, display_email) VALUES (1, 'ann@x.com', 'Ann@x.com')"))
        conn.execute(text("INSERT INTO campaigns (id, sfdc_id, name) VALUES (1, '701000000000001AAA', 'Nurture')"))
    yield engine
    engine.dispose()


def test_runs_per_day_counted_by_the_database(db: Engine) -> None:
    with db.begin() as conn:
        for started in (0, 86399.9, 86400, 5 * 86400 - 1, 5 * 86400, -1, 10 * 86400):
            conn.execute(
                text("INSERT INTO runs (campaign, person_id, started_at, trigger) VALUES ('A', 1, :at, '{}')"),
                {"at": started},
            )
        conn.execute(text("INSERT INTO runs (campaign, person_id, started_at, trigger) VALUES ('B', 1, 1, '{}')"))
    with db.connect() as conn:
        slots = queries.runs_per_slot(conn, "A", 0, 5 * 86400, 5)
    assert slots == [(0, 2.0), (86400, 1.0), (2 * 86400, 0.0), (3 * 86400, 0.0), (4 * 86400, 1.0)]


def test_depth_history_from_the_rows_own_times(db: Engine) -> None:
    with db.begin() as conn:
        for received, processed in ((10, 20), (15, None), (30, 35), (50, 51)):
            conn.execute(
                text("INSERT INTO service_inbox (partition, event, source, received_at, processed_at, attempts) "
                     "VALUES ('ann@x.com', '{}', 'api', :r, :p, 0)"),
                {"r": received, "p": processed},
            )  # fmt: skip
        conn.execute(
            text("INSERT INTO service_outbox (key, partition, op, at, created_at, sent_at, attempts) "
                 "VALUES ('k', 'ann@x.com', '{}', 0, 12, 40, 0)")
        )  # fmt: skip
    with db.connect() as conn:
        series = queries.depth_series(conn, 0, 60, 6)  # at 0, 10, ..., 60
    assert [v for _, v in series["inbox"]] == [0, 1, 1, 2, 1, 2, 1]
    assert [v for _, v in series["outbox"]] == [0, 0, 1, 1, 0, 0, 0]


def test_depth_history_reads_the_window_and_the_backlog_without_the_old_rows(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "CHUNK", 2)
    rows = [(5, None)]  # pending for long: read through the pending index
    rows += [(t, t + 1) for t in range(0, 1000, 10)]  # long done
    rows += [(1500, None), (1900, 2050), (1950, 2100)]  # still pending; a backlog worked inside the window
    rows += [(t, t + 5) for t in range(1960, 2000, 10)]  # worked before the window
    rows += [(2010, None), (2030, 2040)]  # in the window
    with db.begin() as conn:
        for received, processed in rows:
            conn.execute(
                text("INSERT INTO service_inbox (partition, event, source, received_at, processed_at, attempts) "
                     "VALUES ('ann@x.com', '{}', 'api', :r, :p, 0)"),
                {"r": received, "p": processed},
            )  # fmt: skip
    with db.connect() as conn:
        floor = queries.id_floor(conn, "service_inbox", "received_at", "processed_at", 2000)
        series = queries.depth_series(conn, 2000, 2060, 6)  # at 2000, 2010, ..., 2060
    # a minute before the window is id 104 (received 1950); going back 2 rows at a time, ids 102-103 are busy
    # after 2000 (1900 is worked at 2050), ids 100-101 are not: the floor is 102, none of the 100 old rows
    assert floor == 102
    # 5 and 1500 (pending), 1900 (to 2050), 1950 (to 2100), 2010 (pending), 2030 (to 2040)
    expected = [4, 5, 5, 6, 5, 4, 4]
    assert [v for _, v in series["inbox"]] == expected
    # the same figures as a scan of the whole table
    for at, value in series["inbox"]:
        assert value == sum(1 for r, p in rows if r <= at and (p is None or p > at))


def refuse(conn: object, key: str, op: dict[str, object], code: str, at: float) -> int:
    result = json.dumps({"ok": False, "id": None, "code": code, "message": f"{code}: no"})
    conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO service_outbox (key, partition, op, person_id, campaign_id, at, created_at, sent_at, "
             "attempts, outcome, result) VALUES (:k, 'ann@x.com', :op, 1, 1, :at, :at, :at, 1, 'failed', :res)"),
        {"k": key, "op": json.dumps(op), "at": at, "res": result},
    )  # fmt: skip
    return int(conn.execute(text("SELECT MAX(id) FROM service_outbox")).scalar_one())  # type: ignore[attr-defined]


def test_refused_actions_say_when_a_retry_makes_sense(db: Engine) -> None:
    now = time.time()
    add = {"kind": "AddMember", "person_sfdc_id": "00Q1", "campaign_sfdc_id": "7011", "status": "Queued"}
    with db.begin() as conn:
        old = refuse(conn, "a", add, "INVALID_STATUS", now - 6 * 86400)  # older than 5 days: not listed
        deleted = refuse(conn, "b", add, "ENTITY_IS_DELETED", now - 60)
        superseded = refuse(conn, "c", add, "INVALID_STATUS", now - 50)
        retryable = refuse(conn, "d", add, "INVALID_STATUS", now - 40)
    since = now - 5 * 86400
    with db.connect() as conn:
        listed = {r.id: r for r in queries.refused(conn, since)}
    assert set(listed) == {deleted, superseded, retryable}
    assert listed[deleted].why_not == "the record or campaign no longer exists in Salesforce"
    assert listed[superseded].why_not == "a later action for this person and campaign supersedes it"
    found = listed[retryable]
    assert found.retry and found.operation == "Add to SFDC Campaign" and found.person == "Ann@x.com"
    assert (found.campaign, found.status, found.code) == ("Nurture", "Queued", "INVALID_STATUS")
    with db.begin() as conn:
        assert queries.requeue_refused(conn, deleted, since) is None
        assert queries.requeue_refused(conn, old, since) is None
        assert queries.requeue_refused(conn, retryable, since) is not None
        assert queries.requeue_refused(conn, retryable, since) is None  # queued already
    with db.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, outcome FROM service_outbox")).fetchall())
    assert rows == {old: "failed", deleted: "failed", superseded: "failed", retryable: None}
