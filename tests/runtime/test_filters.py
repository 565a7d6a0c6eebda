"""Filters (LANGUAGE.md "Filters"): member of / not member of, with status, one membership, and/or/not.

Each test triggers a campaign for several people and checks who got through the filters.
"""

from __future__ import annotations

import pytest
from replay_helpers import ANN, BOB, CAT, WEBINAR_ID, added, world


def filtered(*filters: str) -> str:
    """A campaign triggered by any addition to "Webinar", with these filter lines, adding to "VIP"."""
    lines = "\n".join(f"    filter {f}" for f in filters)
    return f"""
campaign "F" {{
    trigger added to sfdc campaign "Webinar"
{lines}
    flow {{ add to sfdc campaign "VIP" with status "Sent" }}
}}
"""


def passed(replay, filters: str | tuple[str, ...], members: dict[str, dict[str, str]]) -> list[str]:
    """Who of ann, bob and cat passes the filters, given their memberships before the trigger."""
    lines = (filters,) if isinstance(filters, str) else filters
    events = [added(person, "Webinar", "Registered") for person in (ANN, BOB, CAT)]
    return replay(filtered(*lines), events, world(members)).ran("F")


class TestMemberOf:
    def test_member_of(self, replay):
        assert passed(replay, 'member of sfdc campaign "Customers"', {"Customers": {BOB: "Sent"}}) == [BOB]

    def test_not_member_of(self, replay):
        assert passed(replay, 'not member of sfdc campaign "Customers"', {"Customers": {BOB: "Sent"}}) == [ANN, CAT]

    def test_with_status(self, replay):
        members = {"Customers": {ANN: "Sent", BOB: "Responded"}}
        assert passed(replay, 'member of sfdc campaign "Customers" with status "Responded"', members) == [BOB]

    def test_with_status_in(self, replay):
        members = {"Webinar": {}, "Nurture": {ANN: "Sent", BOB: "Responded"}}
        rule = 'member of sfdc campaign "Nurture" with status in ("Sent", "Responded")'
        assert passed(replay, rule, members) == [ANN, BOB]

    def test_with_status_not_in(self, replay):
        members = {"Nurture": {ANN: "Sent", BOB: "Responded"}}
        rule = 'member of sfdc campaign "Nurture" with status not in ("Sent")'
        # cat is no member at all: "member of ... with status not in" needs a membership
        assert passed(replay, rule, members) == [BOB]

    def test_by_id(self, replay):
        members = {"Customers": {ANN: "Sent"}}
        assert passed(replay, 'member of sfdc campaign id "701000000000003AAA"', members) == [ANN]
        assert passed(replay, 'member of sfdc campaign id "701000000000003"', members) == [ANN]

    def test_the_triggering_campaign_itself(self, replay):
        """Filters see the triggering change already applied."""
        rule = f'member of sfdc campaign id "{WEBINAR_ID}" with status "Registered"'
        assert passed(replay, rule, {}) == [ANN, BOB, CAT]

    def test_in_list(self, replay):
        members = {"Customers": {ANN: "Sent"}, "Prospects": {BOB: "Sent"}}
        assert passed(replay, 'member of sfdc campaign in ("Customers", "Prospects")', members) == [ANN, BOB]

    def test_not_in_list_needs_a_membership_outside_the_list(self, replay):
        members = {"Customers": {ANN: "Sent"}, "Prospects": {BOB: "Sent"}}
        # everyone is in Webinar (the trigger) which is outside the list, so everyone passes
        assert passed(replay, 'member of sfdc campaign not in ("Customers")', members) == [ANN, BOB, CAT]
        assert passed(replay, 'member of sfdc campaign not in ("Webinar", "Customers")', members) == [BOB]

    def test_any(self, replay):
        members = {"Customers": {ANN: "Responded"}}
        assert passed(replay, 'member of any sfdc campaign with status "Responded"', members) == [ANN]
        assert passed(replay, "not member of any sfdc campaign", members) == []

    def test_unknown_campaign_is_never_a_membership(self, replay):
        assert passed(replay, 'member of sfdc campaign "No Such Campaign"', {}) == []
        assert passed(replay, 'not member of sfdc campaign "No Such Campaign"', {}) == [ANN, BOB, CAT]


class TestOneMembership:
    """`member of REF with status M` needs ONE membership matching both the reference and the status."""

    def test_status_of_another_campaign_does_not_count(self, replay):
        members = {"Customers": {ANN: "Sent"}, "Prospects": {ANN: "Responded"}}
        rule = 'member of sfdc campaign in ("Customers") with status "Responded"'
        assert passed(replay, rule, members) == []

    def test_one_matching_membership_among_several_is_enough(self, replay):
        members = {"Customers": {ANN: "Sent"}, "Prospects": {ANN: "Responded"}}
        rule = 'member of sfdc campaign in ("Customers", "Prospects") with status "Responded"'
        assert passed(replay, rule, members) == [ANN]

    def test_not_in_list_with_status(self, replay):
        # ann: Responded only in Customers (excluded) -> no; bob: Responded in Prospects -> yes
        members = {"Customers": {ANN: "Responded"}, "Prospects": {BOB: "Responded", ANN: "Sent"}}
        rule = 'member of sfdc campaign not in ("Customers") with status "Responded"'
        assert passed(replay, rule, members) == [BOB]

    def test_any_campaign_with_status_uses_one_membership(self, replay):
        members = {"Customers": {ANN: "Sent"}, "Nurture": {BOB: "Responded"}}
        assert passed(replay, 'member of any sfdc campaign with status "Responded"', members) == [BOB]


class TestCombinations:
    MEMBERS = {
        "Customers": {ANN: "Sent", BOB: "Sent"},
        "Prospects": {BOB: "Sent", CAT: "Sent"},
        "DNC": {CAT: "Sent"},
    }
    # ann: Customers; bob: Customers + Prospects; cat: Prospects + DNC

    def test_and(self, replay):
        rule = 'member of sfdc campaign "Customers" and member of sfdc campaign "Prospects"'
        assert passed(replay, rule, self.MEMBERS) == [BOB]

    def test_or(self, replay):
        rule = 'member of sfdc campaign "DNC" or member of sfdc campaign "Customers"'
        assert passed(replay, rule, self.MEMBERS) == [ANN, BOB, CAT]

    def test_not_binds_tighter_than_and(self, replay):
        # (not Customers) and Prospects
        rule = 'not member of sfdc campaign "Customers" and member of sfdc campaign "Prospects"'
        assert passed(replay, rule, self.MEMBERS) == [CAT]

    def test_and_binds_tighter_than_or(self, replay):
        # read as Customers or (Prospects and DNC): ann, bob, cat; (Customers or Prospects) and DNC would be cat
        rule = (
            'member of sfdc campaign "Customers" or member of sfdc campaign "Prospects" '
            'and member of sfdc campaign "DNC"'
        )
        assert passed(replay, rule, self.MEMBERS) == [ANN, BOB, CAT]

    def test_parentheses_override_precedence(self, replay):
        rule = (
            '(member of sfdc campaign "Customers" or member of sfdc campaign "Prospects") '
            'and member of sfdc campaign "DNC"'
        )
        assert passed(replay, rule, self.MEMBERS) == [CAT]

    def test_not_of_a_group(self, replay):
        rule = 'not (member of sfdc campaign "Customers" or member of sfdc campaign "DNC")'
        assert passed(replay, rule, self.MEMBERS) == []
        rule = 'not (member of sfdc campaign "Customers" and member of sfdc campaign "Prospects")'
        assert passed(replay, rule, self.MEMBERS) == [ANN, CAT]

    def test_double_not(self, replay):
        assert passed(replay, 'not not member of sfdc campaign "DNC"', self.MEMBERS) == [CAT]

    def test_several_filter_lines_are_joined_by_and(self, replay):
        lines = ('member of sfdc campaign "Prospects"', 'not member of sfdc campaign "DNC"')
        assert passed(replay, lines, self.MEMBERS) == [BOB]

    def test_a_filter_line_with_or_is_one_operand_of_the_and(self, replay):
        lines = (
            'member of sfdc campaign "Customers" or member of sfdc campaign "DNC"',
            'member of sfdc campaign "Prospects"',
        )
        assert passed(replay, lines, self.MEMBERS) == [BOB, CAT]


class TestWhenFiltersAreEvaluated:
    def test_after_earlier_campaigns_of_the_same_change_ran(self, replay):
        rules = """
campaign "Make VIP" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
campaign "VIP only" {
    trigger added to sfdc campaign "Webinar"
    filter member of sfdc campaign "VIP"
    flow { add to sfdc campaign "Customers" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Registered")])
        assert [r["campaign"] for r in result.runs] == ["Make VIP", "VIP only"]
        assert result.members("Customers") == {ANN: "Sent"}

    def test_not_before_them_in_declaration_order(self, replay):
        """Declared the other way round, the filtered campaign runs first and sees no VIP membership."""
        rules = """
campaign "VIP only" {
    trigger added to sfdc campaign "Webinar"
    filter member of sfdc campaign "VIP"
    flow { add to sfdc campaign "Customers" with status "Sent" }
}
campaign "Make VIP" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Registered")])
        assert [r["campaign"] for r in result.runs] == ["Make VIP"]
        assert result.members("Customers") == {}

    def test_an_earlier_campaign_can_filter_out_a_later_one(self, replay):
        rules = """
campaign "Unsubscribe" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "DNC" with status "Sent" }
}
campaign "Mail" {
    trigger added to sfdc campaign "Webinar"
    filter not member of sfdc campaign "DNC"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Registered")])
        assert result.ran("Mail") == []
        assert result.members("Nurture") == {}

    @pytest.mark.parametrize("status, expected", [("Registered", []), ("Attended", [ANN])])
    def test_filters_see_the_triggering_status(self, replay, status, expected):
        rules = filtered('member of sfdc campaign "Webinar" with status "Attended"')
        assert replay(rules, [added(ANN, "Webinar", status)]).ran("F") == expected
