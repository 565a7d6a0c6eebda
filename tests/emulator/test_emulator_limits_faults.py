"""Limits, the Sforce-Limit-Info header, the daily quota, and injected faults."""

from __future__ import annotations

import time

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from engine.emulator.testing import EmulatorError, RunningEmulator


def test_limits_and_header(org: RunningEmulator, sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 99_999}
    assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 100_000
    sf.query("SELECT Id FROM Lead")
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 99_997
    response = org.session().get(
        f"{org.instance_url}/services/data/v59.0/sobjects/Lead/00Q8e0000009999",
        headers={"Authorization": f"Bearer {org.token}"},
    )
    assert response.status_code == 404
    assert response.headers["Sforce-Limit-Info"] == "api-usage=4/100000"


def test_quota_exceeded(org: RunningEmulator, sf: Salesforce) -> None:
    org.set_quota(maximum=3, used=0)
    for _ in range(3):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceRefusedRequest) as excinfo:
        sf.Lead.create({"LastName": "Lee", "Company": "Acme"})
    assert excinfo.value.status == 403
    assert excinfo.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert org.stats()["api_usage"] == {"max": 3, "used": 3, "remaining": 0}
    org.set_quota(maximum=10)
    assert sf.limits()["DailyApiRequests"] == {"Max": 10, "Remaining": 6}


def test_quota_resets_with_the_day(org: RunningEmulator, sf: Salesforce) -> None:
    org.set_quota(maximum=1, used=1)
    with pytest.raises(SalesforceRefusedRequest):
        sf.limits()
    org.advance_clock(24 * 3600)
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 0  # this call was the day's only one


def test_error_faults_look_like_salesforce(org: RunningEmulator, sf: Salesforce) -> None:
    org.set_faults(error_rate=1.0, error_statuses=[503], error_limit=2)
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as excinfo:
            sf.query("SELECT Id FROM Lead")
        assert excinfo.value.status == 503
        assert excinfo.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0  # the limit is spent

    org.set_faults(error_rate=1.0, error_statuses=[500], endpoints=["sobjects/Lead"])
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0  # not a matching endpoint
    with pytest.raises(SalesforceGeneralError) as excinfo:
        sf.Lead.create({"LastName": "Lee", "Company": "Acme"})
    assert excinfo.value.status == 500
    error = excinfo.value.content[0]
    assert error["errorCode"] == "UNKNOWN_EXCEPTION" and "ErrorId" in error["message"]
    org.clear_faults()
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0  # the failed call did nothing
    stats = org.stats()["faults"]["injected"]
    assert stats["errors"] == 3 and stats["errors_by_status"] == {"500": 1, "503": 2}


def test_error_rate_is_repeatable_with_a_seed(org: RunningEmulator, sf: Salesforce) -> None:
    def pattern() -> list[bool]:
        org.set_faults(error_rate=0.3, seed=42)
        outcome = []
        for _ in range(40):
            try:
                sf.limits()
                outcome.append(True)
            except SalesforceGeneralError:
                outcome.append(False)
        return outcome

    first = pattern()
    assert 3 <= first.count(False) <= 25
    assert pattern() == first


def test_latency(org: RunningEmulator, sf: Salesforce) -> None:
    org.set_faults(latency_ms=150)
    started = time.monotonic()
    sf.limits()
    assert time.monotonic() - started >= 0.15


def test_latency_only_on_the_endpoints_named(org: RunningEmulator, sf: Salesforce) -> None:
    org.set_faults(latency_ms=400, endpoints=["composite"])
    started = time.monotonic()
    sf.query("SELECT Id FROM Lead")
    assert time.monotonic() - started < 0.4  # a query is not a composite call
    started = time.monotonic()
    lead = {"attributes": {"type": "Lead"}, "LastName": "L", "Company": "C"}
    sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [lead]})
    assert time.monotonic() - started >= 0.4


def test_lock_fault_on_a_single_write(org: RunningEmulator, sf: Salesforce) -> None:
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    org.set_faults(lock_rate=1.0, lock_limit=1)
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.update(lead_id, {"Company": "Other"})
    assert excinfo.value.content == [
        {
            "message": f"unable to obtain exclusive access to this record or 1 records: {lead_id}",
            "errorCode": "UNABLE_TO_LOCK_ROW",
            "fields": [],
        }
    ]
    assert sf.Lead.get(lead_id)["Company"] == "Acme"
    assert sf.Lead.update(lead_id, {"Company": "Other"}) == 204


def test_stats_and_admin_validation(org: RunningEmulator, sf: Salesforce) -> None:
    sf.Lead.create({"LastName": "Lee", "Company": "Acme"})
    sf.query("SELECT Id FROM Lead")
    sf.query("SELECT Id FROM Lead")
    stats = org.stats()
    assert stats["calls"] == {"GET query": 2, "POST sobjects/Lead": 1}
    assert stats["total_calls"] == 3
    assert stats["records"]["Lead"] == 1 and stats["records"]["User"] == 1
    with pytest.raises(EmulatorError, match="unknown fault settings: error_rat"):
        org.set_faults(error_rat=0.5)
    with pytest.raises(EmulatorError, match="error_statuses"):
        org.set_faults(error_statuses=[404])
    with pytest.raises(EmulatorError):
        org.admin("quota", {"max": -1})
