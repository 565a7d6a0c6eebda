"""The SOQL tokenizer, parser and evaluator on their own (no server)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from simple_salesforce import format_soql

from engine.emulator import schema as s
from engine.emulator.ids import make_id
from engine.emulator.soql import (
    BoolOp,
    Comparison,
    Count,
    InList,
    Like,
    Not,
    SoqlError,
    parse,
    tokenize,
)
from engine.emulator.soql_eval import Executor

CAMPAIGN = make_id("701", 1)
LEADS = [
    {"Id": make_id("00Q", n), "LastName": name, "Company": company, "Email": email, "IsDeleted": deleted}
    | {"CreatedDate": created, "Title": None}
    for n, (name, company, email, deleted, created) in enumerate(
        [
            ("Ames", "Acme", "ames@acme.test", False, "2026-11-28T21:40:00.000+0000"),
            ("Bo", "acme", None, False, "2026-11-28T21:41:00.000+0000"),
            ("Cy", "Globex", "cy@globex.test", False, "2026-11-29T08:00:00.000+0000"),
            ("Di", None, "di@x.test", True, "2026-11-27T00:00:00.000+0000"),
        ],
        start=1,
    )
]
MEMBERS = [
    {"Id": make_id("00v", 1), "CampaignId": CAMPAIGN, "LeadId": LEADS[0]["Id"], "Status": "Sent", "IsDeleted": False},
    {"Id": make_id("00v", 2), "CampaignId": CAMPAIGN, "LeadId": LEADS[2]["Id"], "Status": "Sent", "IsDeleted": False},
]


class FakeSource:
    def rows(self, sobject: s.SObjectDef, include_deleted: bool) -> Iterable[dict[str, Any]]:
        table = {"Lead": LEADS, "CampaignMember": MEMBERS, "Campaign": [{"Id": CAMPAIGN, "Name": "Web"}]}
        return [row for row in table.get(sobject.name, []) if include_deleted or not row.get("IsDeleted")]

    def record(self, record_id: str) -> dict[str, Any] | None:
        for row in [*LEADS, *MEMBERS, {"Id": CAMPAIGN, "Name": "Web"}]:
            if row["Id"] == record_id and not row.get("IsDeleted"):
                return row
        return None


def names(text: str, include_deleted: bool = False) -> list[str]:
    result = Executor(FakeSource(), "59.0").run(text, include_deleted=include_deleted)
    return [row["LastName"] for row in result.records]


def test_tokens_and_escapes() -> None:
    query = format_soql("SELECT Id FROM Lead WHERE LastName = {} AND Company IN {}", 'O\'Br\\ien "x"', ["a", "b"])
    tokens = tokenize(query)
    strings = [token.value for token in tokens if token.kind == "string"]
    assert strings == ['O\'Br\\ien "x"', "a", "b"]
    assert [token.kind for token in tokenize("x >= 2026-11-28T21:40:00Z AND y < 2026-11-28 AND z = -1.5")] == [
        "ident",
        "op",
        "datetime",
        "keyword",
        "ident",
        "op",
        "date",
        "keyword",
        "ident",
        "op",
        "number",
        "eof",
    ]
    assert tokenize(r"'\u00e9\n'")[0].value == "é\n"


def test_parse_tree() -> None:
    query = parse(
        "select Id, COUNT(Id) n from Lead where not (A = 1 or B != null) and C not in ('x') and D like 'a%' "
        "order by E desc nulls first, F limit 5 offset 2"
    )
    assert query.sobject == "Lead" and query.limit == 5 and query.offset == 2
    assert isinstance(query.select[1], Count) and query.select[1].alias == "n"
    assert isinstance(query.where, BoolOp) and query.where.op == "AND"
    first, second, third = query.where.items
    assert isinstance(first, Not) and isinstance(first.item, BoolOp) and first.item.op == "OR"
    assert isinstance(second, InList) and second.negated
    assert isinstance(third, Like)
    assert [(item.field.path, item.descending, item.nulls_first) for item in query.order_by] == [
        ("E", True, True),
        ("F", False, True),
    ]
    comparison = parse("SELECT Id FROM Lead WHERE X <> 'y'").where
    assert isinstance(comparison, Comparison) and comparison.op == "!="


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("SELECT Id FROMM Lead", 11),
        ("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", 43),
        ("SELECT Id FROM Lead WHERE A = 'open", 31),
        ("SELECT Id FROM Lead LIMIT -1", 27),
        ("SELECT Id FROM Lead WHERE A = 'bad \\q escape'", 31),
        ("SELECT FROM Lead", 8),
        ("SELECT Id FROM Lead WHERE", 26),
    ],
)
def test_malformed_queries_point_at_the_problem(text: str, column: int) -> None:
    with pytest.raises(SoqlError) as excinfo:
        parse(text)
    assert excinfo.value.code == "MALFORMED_QUERY"
    assert f"ERROR at Row:1:Column:{column}" in excinfo.value.message


def test_filters_and_ordering() -> None:
    assert names("SELECT LastName FROM Lead WHERE Company = 'ACME' ORDER BY LastName DESC") == ["Bo", "Ames"]
    assert names("SELECT LastName FROM Lead WHERE Company != 'Acme'") == ["Cy"]
    assert names("SELECT LastName FROM Lead WHERE Email != null ORDER BY Email") == ["Ames", "Cy"]
    assert names("SELECT LastName FROM Lead ORDER BY Email DESC NULLS FIRST") == ["Bo", "Cy", "Ames"]
    assert names("SELECT LastName FROM Lead ORDER BY Email ASC NULLS LAST") == ["Ames", "Cy", "Bo"]
    assert names("SELECT LastName FROM Lead WHERE Email NOT IN ('ames@acme.test')") == ["Bo", "Cy"]  # null too
    assert names("SELECT LastName FROM Lead WHERE Email LIKE '%@ACME.%'") == ["Ames"]
    assert names("SELECT LastName FROM Lead WHERE CreatedDate >= 2026-11-28T21:41:00Z") == ["Bo", "Cy"]
    assert names("SELECT LastName FROM Lead WHERE CreatedDate < 2026-11-28T22:41:00.000+0100") == ["Ames"]
    assert names("SELECT LastName FROM Lead WHERE CreatedDate > 2026-11-28T21:40:30+00:00 LIMIT 1") == ["Bo"]
    assert names("SELECT LastName FROM Lead WHERE IsDeleted = true", include_deleted=True) == ["Di"]
    assert names("SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1") == ["Bo", "Cy"]
    lead_15 = LEADS[1]["Id"][:15]
    assert names(f"SELECT LastName FROM Lead WHERE Id = '{lead_15}'") == ["Bo"]
    assert names(
        f"SELECT LastName FROM Lead WHERE Id IN (SELECT LeadId FROM CampaignMember WHERE CampaignId = '{CAMPAIGN}')"
    ) == ["Ames", "Cy"]


def test_projection_and_counts() -> None:
    executor = Executor(FakeSource(), "59.0")
    result = executor.run("SELECT Id, Lead.LastName, Campaign.Name FROM CampaignMember", include_deleted=False)
    row = result.records[0]
    assert row["attributes"]["type"] == "CampaignMember"
    assert row["Lead"]["LastName"] == "Ames" and row["Campaign"]["Name"] == "Web"
    assert list(row) == ["attributes", "Id", "Lead", "Campaign"]
    count = executor.run("SELECT COUNT() FROM Lead WHERE Company = 'acme'", include_deleted=False)
    assert (count.total_size, count.records) == (2, [])
    aggregate = executor.run("SELECT COUNT(Email) total FROM Lead", include_deleted=False)
    assert aggregate.records == [{"attributes": {"type": "AggregateResult"}, "total": 2}]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT Nope FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Nope.Name = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE CreatedDate > '2026-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE IsDeleted = 'true'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE LastName = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Lead WHERE IsDeleted LIKE 'x'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Gadget", "INVALID_TYPE"),
        ("SELECT Id, COUNT() FROM Lead", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
    ],
)
def test_semantic_errors(text: str, code: str) -> None:
    with pytest.raises(SoqlError) as excinfo:
        Executor(FakeSource(), "59.0").run(text, include_deleted=False)
    assert excinfo.value.code == code
