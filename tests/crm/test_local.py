"""The embedded local org (engine.crm.local.LocalOrg): Salesforce's rules on the store's rows."""

from __future__ import annotations

import pytest

from engine.crm.local import LocalOrg
from engine.runtime import adapter as p
from engine.store.store import Store

ANN_ID = "00Q000000000001AAA"
WEBINAR_ID = "701000000000001AAA"


@pytest.fixture
def org():
    store = Store.open()  # in memory
    store.add_person("ann@example.com", ANN_ID, "Lead")
    store.add_person("dan@example.com")  # not in Salesforce
    store.add_campaign("Webinar", WEBINAR_ID, ["Sent", "Registered", "Attended"])
    yield LocalOrg(store)
    store.close()


def status_of(org: LocalOrg, email: str, campaign: str = "Webinar") -> str | None:
    person = org.store.person(email)
    info = org.store.campaign_by_name(campaign)
    assert person is not None and info is not None
    return org.store.memberships(person.id).get(info.id)


class TestMembers:
    def test_add_then_update_then_remove(self, org: LocalOrg):
        results = org.execute(
            [
                p.AddMember(ANN_ID, WEBINAR_ID, "Registered"),
                p.UpdateMemberStatus(ANN_ID, WEBINAR_ID, "Attended"),
            ]
        )
        assert [r.ok for r in results] == [True, True]
        assert status_of(org, "ann@example.com") == "Attended"
        [removed] = org.execute([p.RemoveMember(ANN_ID, WEBINAR_ID)])
        assert removed.ok
        assert status_of(org, "ann@example.com") is None

    def test_a_second_membership_is_duplicate_value(self, org: LocalOrg):
        first, second = org.execute(
            [p.AddMember(ANN_ID, WEBINAR_ID, "Registered"), p.AddMember(ANN_ID, WEBINAR_ID, "Attended")]
        )
        assert first.ok
        assert (second.ok, second.code) == (False, p.DUPLICATE_VALUE)
        assert status_of(org, "ann@example.com") == "Registered"

    def test_a_campaign_id_of_15_characters_works(self, org: LocalOrg):
        [result] = org.execute([p.AddMember(ANN_ID, WEBINAR_ID[:15], "Sent")])
        assert result.ok
        assert status_of(org, "ann@example.com") == "Sent"

    def test_unknown_campaign(self, org: LocalOrg):
        for op in (
            p.AddMember(ANN_ID, "701999999999999AAA", "Sent"),
            p.UpdateMemberStatus(ANN_ID, "701999999999999AAA", "Sent"),
            p.RemoveMember(ANN_ID, "701999999999999AAA"),
            p.SetCampaignFields("701999999999999AAA", "Webinar", 1.0),
        ):
            [result] = org.execute([op])
            assert (result.ok, result.code) == (False, p.UNKNOWN_CAMPAIGN), op
            assert "701999999999999AAA" in result.message

    def test_unknown_status_is_refused_never_replaced_by_the_default(self, org: LocalOrg):
        [result] = org.execute([p.AddMember(ANN_ID, WEBINAR_ID, "Responded")])
        assert (result.ok, result.code) == (False, p.INVALID_STATUS)
        assert '"Responded"' in result.message and '"Webinar"' in result.message
        assert status_of(org, "ann@example.com") is None
        org.execute([p.AddMember(ANN_ID, WEBINAR_ID, "Sent")])
        [update] = org.execute([p.UpdateMemberStatus(ANN_ID, WEBINAR_ID, "sent")])
        assert (update.ok, update.code) == (False, p.INVALID_STATUS)
        assert status_of(org, "ann@example.com") == "Sent"

    def test_unknown_person(self, org: LocalOrg):
        [result] = org.execute([p.AddMember("00Q999999999999AAA", WEBINAR_ID, "Sent")])
        assert (result.ok, result.code) == (False, p.UNKNOWN_PERSON)

    def test_update_or_remove_of_a_non_member(self, org: LocalOrg):
        update, remove = org.execute(
            [p.UpdateMemberStatus(ANN_ID, WEBINAR_ID, "Sent"), p.RemoveMember(ANN_ID, WEBINAR_ID)]
        )
        assert (update.ok, update.code) == (False, p.NOT_A_MEMBER)
        assert (remove.ok, remove.code) == (False, p.NOT_A_MEMBER)
        assert status_of(org, "ann@example.com") is None

    def test_member_times_follow_the_org_clock(self, org: LocalOrg):
        org.clock = 1234.0  # type: ignore[attr-defined]
        org.execute([p.AddMember(ANN_ID, WEBINAR_ID, "Sent")])
        row = org.store.fetchone("SELECT added_at, changed_at FROM memberships")
        assert tuple(row) == (1234.0, 1234.0)


class TestLeads:
    def test_create_lead_for_a_known_person(self, org: LocalOrg):
        [result] = org.execute([p.CreateLead("dan@example.com")])
        assert result.ok and result.id is not None
        assert result.id.startswith("00Q") and len(result.id) == 18
        dan = org.store.person("dan@example.com")
        assert dan is not None and (dan.sfdc_id, dan.sfdc_type) == (result.id, "Lead")
        row = org.store.fetchone("SELECT last_name, company FROM persons WHERE id = ?", (dan.id,))
        assert tuple(row) == ("[not provided]", "[not provided]")

    def test_create_lead_for_a_new_person(self, org: LocalOrg):
        [result] = org.execute([p.CreateLead("new@example.com", last_name="Doe", company="Acme")])
        assert result.ok
        new = org.store.person("new@example.com")
        assert new is not None and new.sfdc_id == result.id

    def test_a_person_already_in_salesforce_keeps_its_id(self, org: LocalOrg):
        [result] = org.execute([p.CreateLead("ANN@example.com")])
        assert (result.ok, result.id) == (True, ANN_ID)

    @pytest.mark.parametrize(
        "last_name, company, missing",
        [(None, "Acme", "LastName"), ("Doe", "", "Company"), ("", None, "LastName, Company")],
    )
    def test_lastname_and_company_are_required(self, org: LocalOrg, last_name, company, missing):
        [result] = org.execute([p.CreateLead("eve@example.com", last_name=last_name, company=company)])
        assert (result.ok, result.code) == (False, p.REQUIRED_FIELD_MISSING)
        assert f"[{missing}]" in result.message
        assert org.store.person("eve@example.com") is None

    def test_lead_ids_skip_ids_already_taken(self, org: LocalOrg):
        first, second = org.execute([p.CreateLead("dan@example.com"), p.CreateLead("eve@example.com")])
        assert first.id == "00Q000000000002AAA"  # ...001 is ann's
        assert second.id == "00Q000000000003AAA"


class TestDeterminism:
    def build(self) -> tuple[Store, LocalOrg]:
        store = Store.open()
        org = LocalOrg(store)
        cid = org.new_campaign_id()
        store.add_campaign("Webinar", cid, ["Sent"])
        return store, org

    def test_two_identical_runs_give_identical_ids(self):
        ids = []
        for _ in range(2):
            store, org = self.build()
            results = org.execute([p.CreateLead(f"p{i}@example.com") for i in range(5)])
            campaign = store.campaign_by_name("Webinar")
            assert campaign is not None
            ids.append(([r.id for r in results], campaign.sfdc_id))
            store.close()
        assert ids[0] == ids[1]
        assert ids[0][1] == "701000000000001AAA"
        assert len(set(ids[0][0])) == 5


class TestBatch:
    def test_one_result_per_operation_in_order(self, org: LocalOrg):
        ops: list[p.Operation] = [
            p.CreateLead("dan@example.com"),
            p.AddMember(ANN_ID, WEBINAR_ID, "Sent"),
            p.AddMember(ANN_ID, WEBINAR_ID, "Sent"),  # duplicate
            p.UpdateMemberStatus(ANN_ID, WEBINAR_ID, "Bogus"),
            p.UpdateMemberStatus(ANN_ID, WEBINAR_ID, "Attended"),
            p.CreateLead("eve@example.com", last_name=None),
            p.RemoveMember(ANN_ID, "701999999999999AAA"),
            p.RemoveMember(ANN_ID, WEBINAR_ID),
        ]
        results = org.execute(ops)
        assert len(results) == len(ops)
        assert [(r.ok, r.code) for r in results] == [
            (True, None),
            (True, None),
            (False, p.DUPLICATE_VALUE),
            (False, p.INVALID_STATUS),
            (True, None),
            (False, p.REQUIRED_FIELD_MISSING),
            (False, p.UNKNOWN_CAMPAIGN),
            (True, None),
        ]
        # a failure in the middle does not stop the operations after it
        assert status_of(org, "ann@example.com") is None

    def test_one_call_per_batch(self, org: LocalOrg):
        org.execute([p.CreateLead("dan@example.com"), p.AddMember(ANN_ID, WEBINAR_ID, "Sent")])
        org.execute([])
        assert org.calls == 2

    def test_set_campaign_statuses_and_fields(self, org: LocalOrg):
        statuses, fields = org.execute(
            [
                p.SetCampaignStatuses(WEBINAR_ID, ("Invited", "Attended"), "Invited", ("Attended",)),
                p.SetCampaignFields(WEBINAR_ID, "Webinar", 6200.0),
            ]
        )
        assert statuses.ok and fields.ok
        info = org.store.campaign_by_name("Webinar")
        assert info is not None
        assert (info.statuses, info.default_status, info.responded) == (
            ("Invited", "Attended"),
            "Invited",
            frozenset({"Attended"}),
        )
        assert (info.type, info.actual_cost) == ("Webinar", 6200.0)


def test_the_adapter_shares_the_mirror(org: LocalOrg):
    assert org.shares_mirror is True
    assert org.name == "local"
