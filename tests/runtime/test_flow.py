"""Flow steps (LANGUAGE.md "Flow", "Order and cascades"; REPLAY.md "Result", waits and `--until`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from replay_helpers import ANN, BOB, CAT, DAN, added, at, program_event, world

from engine.store.store import Store

# dan is known but not in Salesforce: a program status change (no sync) brings him into a flow as he is.
SIGNUP = """
program "Signup" { channel "Content" }
"""


def on_signup(*steps: str, name: str = "Flow") -> str:
    body = "\n        ".join(steps)
    return (
        SIGNUP
        + f"""
campaign "{name}" {{
    trigger status changed in program "Signup"
    qualify every time
    flow {{
        {body}
    }}
}}
"""
    )


def on_webinar(*steps: str, name: str = "Flow", qualify: str = "qualify every time") -> str:
    body = "\n        ".join(steps)
    return f"""
campaign "{name}" {{
    trigger added to sfdc campaign "Webinar"
    {qualify}
    flow {{
        {body}
    }}
}}
"""


def step_view(steps: list[dict]) -> list[tuple[str, str, str]]:
    return [(s["action"], s["outcome"], s["detail"]) for s in steps]


# ------------------------------------------------------------------------------ add to sfdc campaign


class TestAdd:
    def test_adds_with_the_status(self, replay):
        result = replay(
            on_webinar('add to sfdc campaign "Nurture" with status "Responded"'), [added(ANN, "Webinar", "Sent", at(2))]
        )
        assert result.members("Nurture") == {ANN: "Responded"}
        assert result.steps("Flow") == [
            {
                "action": "add_to_sfdc_campaign",
                "campaign": "Nurture",
                "status": "Responded",
                "outcome": "done",
                "detail": "added",
                "at": at(2),
            }
        ]

    def test_already_a_member_is_skipped_and_the_status_is_unchanged(self, replay):
        result = replay(
            on_webinar('add to sfdc campaign "Nurture" with status "Responded"'),
            [added(ANN, "Webinar", "Sent")],
            world({"Nurture": {ANN: "Sent"}}),
        )
        assert result.members("Nurture") == {ANN: "Sent"}
        [step] = result.steps("Flow")
        assert step["outcome"] == "skipped"
        assert "already a member" in step["detail"]

    def test_person_not_in_salesforce_becomes_a_lead_first(self, replay):
        result = replay(
            on_signup('add to sfdc campaign "Nurture" with status "Sent"'), [program_event(DAN, "Signup", "Member")]
        )
        dan = result.person(DAN)
        assert dan is not None
        assert dan["sfdc_type"] == "Lead"
        assert dan["sfdc_id"].startswith("00Q") and len(dan["sfdc_id"]) == 18
        [step] = result.steps("Flow")
        assert step["outcome"] == "done"
        assert f"created lead {dan['sfdc_id']}" in step["detail"]
        assert result.members("Nurture") == {DAN: "Sent"}

    def test_the_new_lead_has_lastname_and_company_not_provided(self, replay, tmp_path: Path):
        url = f"sqlite:///{tmp_path / 'store.db'}"
        persons = [
            {"email": DAN},
            {"email": "eve@example.com", "first_name": "Eve", "last_name": "Adams"},
        ]
        result = replay(
            on_signup('add to sfdc campaign "Nurture" with status "Sent"'),
            [program_event(DAN, "Signup", "Member"), program_event("eve@example.com", "Signup", "Member")],
            world(persons=persons),
            store_url=url,
        )
        assert result.members("Nurture") == {DAN: "Sent", "eve@example.com": "Sent"}
        store = Store.open(url)
        try:
            rows = {row[1]: row for row in store.persons()}
        finally:
            store.close()
        # (id, email, sfdc_id, sfdc_type, first_name, last_name, company)
        assert rows[DAN][3] == "Lead"
        assert rows[DAN][5:] == ("[not provided]", "[not provided]")
        # a known last name is kept; only what is missing is filled in
        assert rows["eve@example.com"][4:] == ("Eve", "Adams", "[not provided]")
        eve = result.person("eve@example.com")
        assert eve is not None and eve.get("last_name") == "Adams"

    def test_lead_ids_are_deterministic(self, replay):
        rules = on_signup('add to sfdc campaign "Nurture" with status "Sent"')
        events = [program_event(DAN, "Signup", "Member"), program_event("eve@example.com", "Signup", "Member")]
        first, second = replay(rules, events), replay(rules, events)
        assert first.world == second.world
        assert first.runs == second.runs


# ------------------------------------------------------------------------------ change status


class TestChangeStatus:
    def test_sets_the_status(self, replay):
        result = replay(
            on_webinar('change status in sfdc campaign "Nurture" to "Responded"'),
            [added(ANN, "Webinar", "Sent")],
            world({"Nurture": {ANN: "Sent"}}),
        )
        assert result.members("Nurture") == {ANN: "Responded"}
        [step] = result.steps("Flow")
        assert (step["action"], step["status"], step["outcome"]) == (
            "change_status_in_sfdc_campaign",
            "Responded",
            "done",
        )
        assert "Sent" in step["detail"] and "Responded" in step["detail"]

    def test_not_a_member_is_added_with_the_status(self, replay):
        result = replay(
            on_webinar('change status in sfdc campaign "Nurture" to "Responded"'), [added(ANN, "Webinar", "Sent")]
        )
        assert result.members("Nurture") == {ANN: "Responded"}
        [step] = result.steps("Flow")
        assert step["outcome"] == "done"
        assert "added" in step["detail"]

    def test_not_in_salesforce_creates_the_lead(self, replay):
        result = replay(
            on_signup('change status in sfdc campaign "Nurture" to "Responded"'),
            [program_event(DAN, "Signup", "Member")],
        )
        dan = result.person(DAN)
        assert dan is not None and dan["sfdc_id"].startswith("00Q")
        assert result.members("Nurture") == {DAN: "Responded"}
        assert f"created lead {dan['sfdc_id']}" in result.steps("Flow")[0]["detail"]

    def test_same_status_is_skipped(self, replay):
        result = replay(
            on_webinar('change status in sfdc campaign "Nurture" to "Sent"'),
            [added(ANN, "Webinar", "Sent")],
            world({"Nurture": {ANN: "Sent"}}),
        )
        [step] = result.steps("Flow")
        assert step["outcome"] == "skipped"
        assert "Sent" in step["detail"]
        assert result.members("Nurture") == {ANN: "Sent"}

    def test_a_skipped_change_fires_no_trigger(self, replay):
        rules = (
            on_webinar('change status in sfdc campaign "Nurture" to "Sent"')
            + """
campaign "Watcher" {
    trigger status changed in sfdc campaign "Nurture"
    trigger added to sfdc campaign "Nurture"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent")], world({"Nurture": {ANN: "Sent"}}))
        assert result.ran("Watcher") == []


# ------------------------------------------------------------------------------ remove


class TestRemove:
    def test_removes_the_membership(self, replay):
        result = replay(
            on_webinar('remove from sfdc campaign "Nurture"'),
            [added(ANN, "Webinar", "Sent")],
            world({"Nurture": {ANN: "Sent"}}),
        )
        assert result.members("Nurture") == {}
        [step] = result.steps("Flow")
        assert step == {
            "action": "remove_from_sfdc_campaign",
            "campaign": "Nurture",
            "outcome": "done",
            "detail": "removed",
            "at": step["at"],
        }

    def test_not_a_member_is_skipped(self, replay):
        result = replay(on_webinar('remove from sfdc campaign "Nurture"'), [added(ANN, "Webinar", "Sent")])
        [step] = result.steps("Flow")
        assert (step["outcome"], step["detail"]) == ("skipped", "not a member")

    def test_never_creates_a_person_in_salesforce(self, replay):
        result = replay(on_signup('remove from sfdc campaign "Nurture"'), [program_event(DAN, "Signup", "Member")])
        [step] = result.steps("Flow")
        assert (step["outcome"], step["detail"]) == ("skipped", "not a member")
        dan = result.person(DAN)
        assert dan is not None and "sfdc_id" not in dan

    def test_never_creates_an_unknown_person(self, replay):
        result = replay(
            on_signup('remove from sfdc campaign "Nurture"'), [program_event("new@example.com", "Signup", "Member")]
        )
        new = result.person("new@example.com")
        assert new is not None and "sfdc_id" not in new


# ------------------------------------------------------------------------------ error outcomes


class TestErrors:
    def test_invalid_status_is_an_error_naming_the_campaign_and_its_statuses(self, replay):
        result = replay(
            on_webinar(
                'add to sfdc campaign "Nurture" with status "Attended"',
                'add to sfdc campaign "VIP" with status "Sent"',
            ),
            [added(ANN, "Webinar", "Sent")],
        )
        first, second = result.steps("Flow")
        assert first["outcome"] == "error"
        assert first["detail"] == 'status "Attended" is not a member status of "Nurture" (Sent, Responded)'
        # nothing changed, and the flow went on
        assert result.members("Nurture") == {}
        assert (second["outcome"], result.members("VIP")) == ("done", {ANN: "Sent"})

    def test_invalid_status_on_change_status_changes_nothing(self, replay):
        result = replay(
            on_webinar('change status in sfdc campaign "Nurture" to "Bogus"'),
            [added(ANN, "Webinar", "Sent")],
            world({"Nurture": {ANN: "Sent"}}),
        )
        [step] = result.steps("Flow")
        assert step["outcome"] == "error"
        assert '"Bogus"' in step["detail"] and '"Nurture"' in step["detail"] and "(Sent, Responded)" in step["detail"]
        assert result.members("Nurture") == {ANN: "Sent"}

    def test_invalid_status_never_silently_becomes_the_default(self, replay):
        result = replay(
            on_webinar('change status in sfdc campaign "Webinar" to "sent"'),  # wrong case
            [added(ANN, "Webinar", "Registered")],
        )
        assert result.steps("Flow")[0]["outcome"] == "error"
        assert result.members("Webinar") == {ANN: "Registered"}

    def test_invalid_status_creates_no_lead(self, replay):
        result = replay(
            on_signup('add to sfdc campaign "Nurture" with status "Bogus"'), [program_event(DAN, "Signup", "Member")]
        )
        assert result.steps("Flow")[0]["outcome"] == "error"
        dan = result.person(DAN)
        assert dan is not None and "sfdc_id" not in dan

    def test_unknown_campaign_is_an_error_and_the_flow_goes_on(self, replay):
        result = replay(
            on_webinar(
                'add to sfdc campaign "No Such" with status "Sent"',
                'remove from sfdc campaign id "701999999999999AAA"',
                'add to sfdc campaign "VIP" with status "Sent"',
            ),
            [added(ANN, "Webinar", "Sent")],
        )
        by_name, by_id, last = result.steps("Flow")
        assert by_name["outcome"] == "error" and "No Such" in by_name["detail"]
        assert by_id["outcome"] == "error" and "701999999999999AAA" in by_id["detail"]
        assert last["outcome"] == "done"
        assert result.members("VIP") == {ANN: "Sent"}

    def test_action_errors_do_not_fail_the_replay(self, replay):
        result = replay(
            on_webinar('add to sfdc campaign "No Such" with status "Sent"'), [added(ANN, "Webinar", "Sent")]
        )
        assert result.errors == []  # reported in the step, not as a replay error

    def test_flow_action_by_id(self, replay):
        result = replay(
            on_webinar('add to sfdc campaign id "701000000000002" with status "Sent"'), [added(ANN, "Webinar", "Sent")]
        )
        assert result.members("Nurture") == {ANN: "Sent"}
        assert result.steps("Flow")[0]["campaign"] == "Nurture"


# ------------------------------------------------------------------------------ choices


CHOICE = """
        if member of sfdc campaign "Customers" {
            add to sfdc campaign "VIP" with status "Sent"
        } else if member of sfdc campaign "Prospects" {
            add to sfdc campaign "Nurture" with status "Sent"
        } else {
            add to sfdc campaign "DNC" with status "Sent"
        }
        add to sfdc campaign "Nurture" with status "Responded"
"""


class TestChoices:
    MEMBERS = {"Customers": {ANN: "Sent"}, "Prospects": {ANN: "Sent", BOB: "Sent"}}

    def test_the_first_true_branch_runs(self, replay):
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB, CAT)]
        result = replay(on_webinar(CHOICE), events, world(self.MEMBERS))
        assert result.members("VIP") == {ANN: "Sent"}
        # bob took the else-if; ann (also in Prospects) did not
        assert result.members("DNC") == {CAT: "Sent"}
        assert result.members("Nurture") == {ANN: "Responded", BOB: "Sent", CAT: "Responded"}

    def test_the_choice_step_says_which_branch(self, replay):
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB, CAT)]
        result = replay(on_webinar(CHOICE), events, world(self.MEMBERS))
        ann, bob, cat = (result.steps("Flow", p)[0] for p in (ANN, BOB, CAT))
        assert (ann["action"], ann["outcome"], ann["branch"]) == ("choice", "done", 1)
        assert ann["detail"] == 'if member of sfdc campaign "Customers"'
        assert (bob["branch"], bob["detail"]) == (2, 'else if member of sfdc campaign "Prospects"')
        assert (cat["branch"], cat["detail"]) == (3, "else")

    def test_the_steps_after_the_choice_run_whatever_the_branch(self, replay):
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB, CAT)]
        result = replay(on_webinar(CHOICE), events, world(self.MEMBERS))
        assert [s["action"] for s in result.steps("Flow", ANN)] == [
            "choice",
            "add_to_sfdc_campaign",
            "add_to_sfdc_campaign",
        ]
        # bob's branch added him to Nurture, so the last step is skipped for him
        assert result.steps("Flow", BOB)[-1]["outcome"] == "skipped"

    def test_no_branch_applies(self, replay):
        rules = on_webinar(
            'if member of sfdc campaign "Customers" { add to sfdc campaign "VIP" with status "Sent" }',
            'add to sfdc campaign "Nurture" with status "Sent"',
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent")])
        choice, after = result.steps("Flow")
        assert (choice["action"], choice["outcome"], choice["detail"]) == ("choice", "skipped", "no branch applies")
        assert choice["branch"] is None
        assert after["outcome"] == "done"
        assert result.members("VIP") == {}

    def test_conditions_see_changes_made_earlier_in_the_flow(self, replay):
        rules = on_webinar(
            'add to sfdc campaign "Customers" with status "Sent"',
            'if member of sfdc campaign "Customers" { add to sfdc campaign "VIP" with status "Sent" }',
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent")])
        assert result.members("VIP") == {ANN: "Sent"}

    def test_nested_choices(self, replay):
        rules = on_webinar(
            'if member of sfdc campaign "Customers" {'
            ' if member of sfdc campaign "Prospects" with status "Responded" {'
            ' add to sfdc campaign "VIP" with status "Sent" }'
            ' else { add to sfdc campaign "DNC" with status "Sent" } }'
        )
        members = {"Customers": {ANN: "Sent", BOB: "Sent"}, "Prospects": {ANN: "Responded", BOB: "Sent"}}
        result = replay(rules, [added(p, "Webinar", "Sent") for p in (ANN, BOB, CAT)], world(members))
        assert result.members("VIP") == {ANN: "Sent"}
        assert result.members("DNC") == {BOB: "Sent"}


# ------------------------------------------------------------------------------ waits


def until(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class TestWaits:
    DRIP = on_webinar(
        'add to sfdc campaign "Nurture" with status "Sent"',
        "wait 2 days",
        'change status in sfdc campaign "Nurture" to "Responded"',
        name="Drip",
    )

    def test_the_rest_of_the_flow_runs_later_in_the_same_run(self, replay):
        result = replay(self.DRIP, [added(ANN, "Webinar", "Sent", at(2, 9))])
        assert result.ran("Drip") == [ANN]
        assert [(s["action"], s["outcome"], s["at"]) for s in result.steps("Drip")] == [
            ("add_to_sfdc_campaign", "done", at(2, 9)),
            ("wait", "done", at(2, 9)),
            ("change_status_in_sfdc_campaign", "done", at(4, 9)),
        ]
        assert result.steps("Drip")[1]["detail"] == f"until {at(4, 9)}"
        assert result.members("Nurture") == {ANN: "Responded"}
        assert result.world["now"] == at(4, 9)

    def test_until_runs_only_what_is_due_by_then(self, replay):
        events = [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Webinar", "Sent", at(3))]
        result = replay(self.DRIP, events, until=until(at(4, 12)))
        assert result.members("Nurture") == {ANN: "Responded", BOB: "Sent"}
        assert [s["action"] for s in result.steps("Drip", BOB)] == ["add_to_sfdc_campaign", "wait"]
        assert result.world["now"] == at(4, 12)

    def test_until_before_the_last_event_still_processes_every_event(self, replay):
        events = [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Webinar", "Sent", at(10))]
        result = replay(self.DRIP, events, until=until(at(3)))
        # ann's wait came due before bob's event, so it ran; bob's has not come due
        assert result.members("Nurture") == {ANN: "Responded", BOB: "Sent"}

    def test_due_continuations_run_before_each_event_in_due_order(self, replay):
        rules = (
            on_webinar("wait 2 days", 'add to sfdc campaign "Nurture" with status "Sent"', name="Slow")
            + """
campaign "Fast" {
    trigger added to sfdc campaign "Customers"
    flow {
        wait 1 day
        add to sfdc campaign "Prospects" with status "Sent"
    }
}
campaign "Late" {
    trigger added to sfdc campaign "DNC"
    filter member of sfdc campaign "Nurture"
    filter member of sfdc campaign "Prospects"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        )
        events = [
            added(ANN, "Webinar", "Sent", at(2)),  # Slow due at(4)
            added(ANN, "Customers", "Sent", at(2, 12)),  # Fast due at(3, 12)
            added(ANN, "DNC", "Sent", at(4)),  # both are due at or before this event: they run first
        ]
        result = replay(rules, events)
        assert result.steps("Fast")[-1]["at"] == at(3, 12)
        assert result.steps("Slow")[-1]["at"] == at(4)
        assert result.ran("Late") == [ANN]
        assert result.members("VIP") == {ANN: "Sent"}

    def test_a_continuation_due_after_an_event_runs_after_it(self, replay):
        rules = (
            self.DRIP
            + """
campaign "Check" {
    trigger added to sfdc campaign "DNC"
    filter member of sfdc campaign "Nurture" with status "Responded"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        )
        events = [added(ANN, "Webinar", "Sent", at(2)), added(ANN, "DNC", "Sent", at(3, 23))]
        result = replay(rules, events)
        assert result.ran("Check") == []  # the drip's change came due later
        assert result.members("Nurture") == {ANN: "Responded"}

    def test_a_wait_in_a_branch_resumes_with_the_rest_of_the_branch_then_the_steps_after_the_if(self, replay):
        rules = on_webinar(
            'if member of sfdc campaign "Customers" {'
            ' add to sfdc campaign "VIP" with status "Sent"'
            " wait 1 day"
            ' change status in sfdc campaign "VIP" to "Responded" }'
            ' else { add to sfdc campaign "DNC" with status "Sent" }',
            'add to sfdc campaign "Nurture" with status "Sent"',
            name="Branchy",
        )
        result = replay(
            rules,
            [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Webinar", "Sent", at(2))],
            world({"Customers": {ANN: "Sent"}}),
        )
        assert [(s["action"], s["at"]) for s in result.steps("Branchy", ANN)] == [
            ("choice", at(2)),
            ("add_to_sfdc_campaign", at(2)),
            ("wait", at(2)),
            ("change_status_in_sfdc_campaign", at(3)),
            ("add_to_sfdc_campaign", at(3)),
        ]
        assert [s["action"] for s in result.steps("Branchy", BOB)] == [
            "choice",
            "add_to_sfdc_campaign",
            "add_to_sfdc_campaign",
        ]
        assert result.members("VIP") == {ANN: "Responded"}
        assert result.members("Nurture") == {ANN: "Sent", BOB: "Sent"}

    def test_a_wait_at_the_end_of_a_nested_branch(self, replay):
        rules = on_webinar(
            'if member of sfdc campaign "Customers" {'
            ' if member of sfdc campaign "Prospects" { add to sfdc campaign "VIP" with status "Sent" wait 3 hours }'
            ' add to sfdc campaign "DNC" with status "Sent" }',
            'add to sfdc campaign "Nurture" with status "Sent"',
            name="Nested",
        )
        members = {"Customers": {ANN: "Sent"}, "Prospects": {ANN: "Sent"}}
        result = replay(rules, [added(ANN, "Webinar", "Sent", at(2))], world(members))
        assert [(s["action"], s["at"]) for s in result.steps("Nested")] == [
            ("choice", at(2)),
            ("choice", at(2)),
            ("add_to_sfdc_campaign", at(2)),
            ("wait", at(2)),
            ("add_to_sfdc_campaign", at(2, 3)),
            ("add_to_sfdc_campaign", at(2, 3)),
        ]

    def test_several_waits_and_units(self, replay):
        rules = on_webinar(
            "wait 30 minutes",
            'add to sfdc campaign "Nurture" with status "Sent"',
            "wait 1 week",
            'change status in sfdc campaign "Nurture" to "Responded"',
            "wait 2 hours",
            'add to sfdc campaign "VIP" with status "Sent"',
            name="Multi",
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent", at(2))])
        assert [s["at"] for s in result.steps("Multi") if s["action"] != "wait"] == [
            at(2, 0, 30),
            at(9, 0, 30),
            at(9, 2, 30),
        ]

    def test_changes_made_after_a_wait_fire_triggers(self, replay):
        rules = (
            self.DRIP
            + """
campaign "Responded" {
    trigger status changed in sfdc campaign "Nurture" to "Responded"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent", at(2))])
        [run] = result.runs_of("Responded")
        assert run["at"] == at(4)
        assert run["trigger"]["origin"] == "flow"
        assert result.members("VIP") == {ANN: "Sent"}

    def test_runs_are_listed_in_the_order_they_started(self, replay):
        events = [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Webinar", "Sent", at(5))]
        result = replay(self.DRIP, events)
        assert [(r["person"], r["at"]) for r in result.runs] == [(ANN, at(2)), (BOB, at(5))]
        assert result.steps("Drip", ANN)[-1]["at"] == at(4)


# ------------------------------------------------------------------------------ order and cascades


class TestOrderAndCascades:
    def test_campaigns_run_in_declaration_order_then_their_changes_first_in_first_out(self, replay):
        rules = """
campaign "A" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "Customers" with status "Sent"  add to sfdc campaign "Prospects" with status "Sent" }
}
campaign "B" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
campaign "On Nurture" {
    trigger added to sfdc campaign "Nurture"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
campaign "On Prospects" {
    trigger added to sfdc campaign "Prospects"
    flow { remove from sfdc campaign "VIP" }
}
campaign "On Customers" {
    trigger added to sfdc campaign "Customers"
    flow { add to sfdc campaign "DNC" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Sent")])
        assert [r["campaign"] for r in result.runs] == ["A", "B", "On Customers", "On Prospects", "On Nurture"]
        # On Prospects ran before On Nurture, so VIP was not yet there to remove
        assert result.members("VIP") == {ANN: "Sent"}

    def chain(self, length: int) -> tuple[str, dict]:
        campaigns = "".join(
            f"""
campaign "C{i}" {{
    trigger added to sfdc campaign "K{i}"
    flow {{ add to sfdc campaign "K{i + 1}" with status "Sent" }}
}}
"""
            for i in range(1, length + 1)
        )
        extra = [{"name": f"K{i}", "statuses": ["Sent"]} for i in range(1, length + 2)]
        return campaigns, world(extra_campaigns=extra)

    def test_a_chain_within_the_limit_runs_to_the_end(self, replay):
        rules, start = self.chain(10)
        result = replay(rules, [added(ANN, "K1", "Sent")], start)
        assert [r["campaign"] for r in result.runs] == [f"C{i}" for i in range(1, 11)]
        assert result.errors == []
        assert result.members("K11") == {ANN: "Sent"}

    def test_the_default_limit_is_10(self, replay):
        rules, start = self.chain(12)
        result = replay(rules, [added(ANN, "K1", "Sent", at(2))], start)
        # the event's change is depth 0 (fires C1) ... C11's change is depth 11: too deep
        assert [r["campaign"] for r in result.runs] == [f"C{i}" for i in range(1, 12)]
        # the deep change still took effect; the trigger it would fire did not run
        assert result.members("K12") == {ANN: "Sent"}
        assert result.members("K13") == {}
        [error] = result.errors
        assert error["at"] == at(2)
        assert error["message"].startswith("cascade deeper than 10: C1 -> C2 -> C3")
        assert "C11" in error["message"] and '"C12"' in error["message"]
        assert ANN in error["message"]

    def test_max_depth_option(self, replay):
        rules, start = self.chain(5)
        result = replay(rules, [added(ANN, "K1", "Sent")], start, max_depth=2)
        assert [r["campaign"] for r in result.runs] == ["C1", "C2", "C3"]
        assert result.members("K4") == {ANN: "Sent"}
        assert result.members("K5") == {}
        [error] = result.errors
        assert error["message"].startswith("cascade deeper than 2: C1 -> C2 -> C3 -> ...")
        assert '"C4"' in error["message"]

    def test_max_depth_zero_runs_only_what_events_trigger(self, replay):
        rules, start = self.chain(3)
        result = replay(rules, [added(ANN, "K1", "Sent")], start, max_depth=0)
        assert [r["campaign"] for r in result.runs] == ["C1"]
        assert result.members("K2") == {ANN: "Sent"}
        assert len(result.errors) == 1

    def test_a_loop_is_cut_and_named(self, replay):
        rules = """
campaign "Ping" {
    trigger added to sfdc campaign "Nurture"
    qualify every time
    flow { remove from sfdc campaign "Nurture" }
}
campaign "Pong" {
    trigger removed from sfdc campaign "Nurture"
    qualify every time
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Nurture", "Sent")])
        assert [r["campaign"] for r in result.runs] == ["Ping", "Pong"] * 5 + ["Ping"]
        [error] = result.errors
        assert error["message"].startswith("cascade deeper than 10: Ping -> Pong -> Ping -> Pong")
        assert '"Pong"' in error["message"]
        # Ping's last removal (depth 11) took effect
        assert result.members("Nurture") == {}

    def test_the_limit_applies_per_incoming_change(self, replay):
        rules, start = self.chain(8)
        events = [added(ANN, "K1", "Sent"), added(BOB, "K1", "Sent")]
        result = replay(rules, events, start, max_depth=8)
        assert result.errors == []
        assert len(result.runs) == 16
