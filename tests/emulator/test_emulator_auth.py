"""Logins (OAuth password / client credentials, SOAP), bad and expired sessions, admin authentication."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from engine.emulator.testing import RunningEmulator


def test_oauth_token_endpoint_wire_format(org: RunningEmulator) -> None:
    response = org.session().post(
        f"{org.instance_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "key",
            "client_secret": "secret",
            "username": "admin@emulator.local",
            "password": "pw",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert body["token_type"] == "Bearer" and body["instance_url"] == org.instance_url
    assert body["issued_at"].isdigit()
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")
    sf = org.client(token=body["access_token"])
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0

    refused = org.session().post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "refresh_token"})
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"


def test_simple_salesforce_oauth_logins(org: RunningEmulator) -> None:
    password_grant = Salesforce(
        username="admin@emulator.local",
        password="pw",
        consumer_key="key",
        consumer_secret="secret",
        domain=org.login_domain,
        session=org.session(),
    )
    assert password_grant.sf_instance == org.instance_url.removeprefix("https://")
    assert password_grant.Lead.create({"LastName": "Lee", "Company": "Acme"})["success"] is True
    client_credentials = Salesforce(
        consumer_key="key", consumer_secret="secret", domain=org.login_domain, session=org.session()
    )
    assert client_credentials.query("SELECT COUNT() FROM Lead")["totalSize"] == 1


def test_soap_login(org: RunningEmulator) -> None:
    sf = org.password_client()
    assert sf.sf_instance == org.instance_url.removeprefix("https://")
    assert sf.session_id != org.token
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    assert sf.Campaign.get(campaign_id)["Name"] == "Webinar"


def test_inactive_users_cannot_log_in(org: RunningEmulator, sf: Salesforce) -> None:
    sf.User.create({"Username": "gone@acme.test", "LastName": "Gone", "Email": "gone@acme.test", "IsActive": False})
    with pytest.raises(SalesforceAuthenticationFailed) as excinfo:
        org.password_client(username="gone@acme.test")
    assert excinfo.value.code == "INVALID_LOGIN"
    with pytest.raises(SalesforceAuthenticationFailed) as excinfo:
        Salesforce(
            username="gone@acme.test",
            password="pw",
            consumer_key="key",
            consumer_secret="secret",
            domain=org.login_domain,
            session=org.session(),
        )
    assert excinfo.value.code == "invalid_grant"


def test_bad_token_is_invalid_session(org: RunningEmulator) -> None:
    sf = org.client(token="not-the-token")
    with pytest.raises(SalesforceExpiredSession) as excinfo:
        sf.query("SELECT Id FROM Lead")
    assert excinfo.value.status == 401
    assert excinfo.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    response = org.session().get(f"{org.instance_url}/services/data/v59.0/limits")  # no Authorization at all
    assert response.status_code == 401 and response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert org.stats()["api_usage"]["used"] == 0  # refused calls don't count


def test_session_expiry_fault(org: RunningEmulator) -> None:
    direct = org.client()
    logged_in = org.password_client()
    old_session = logged_in.session_id
    org.set_faults(expire_sessions=True)
    with pytest.raises(SalesforceExpiredSession):
        direct.query("SELECT Id FROM Lead")
    # simple-salesforce logs in again on INVALID_SESSION_ID when it has credentials
    assert logged_in.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    assert logged_in.session_id != old_session
    assert org.stats()["faults"]["injected"]["sessions_expired"] == 2
    org.clear_faults()  # the --token session is accepted again once the fault is cleared
    assert direct.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    with pytest.raises(SalesforceExpiredSession):
        org.client(token=old_session).query("SELECT Id FROM Lead")


def test_admin_needs_the_token(org: RunningEmulator) -> None:
    url = f"{org.instance_url}/_emulator/stats"
    assert org.session().get(url).status_code == 401
    issued = org.password_client().session_id
    assert org.session().get(url, headers={"Authorization": f"Bearer {issued}"}).status_code == 401
    response = org.session().get(url, headers={"Authorization": f"Bearer {org.token}"})
    assert response.status_code == 200 and "calls" in response.json()


def test_certificate_is_verified(org: RunningEmulator) -> None:
    plain = requests.Session()
    plain.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(f"{org.instance_url}/services/data/", timeout=10)
    assert org.session().get(f"{org.instance_url}/services/data/", timeout=10).json()[-1]["version"] == "59.0"


def test_identity_and_userinfo(org: RunningEmulator) -> None:
    token = (
        org.session()
        .post(
            f"{org.instance_url}/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "key", "client_secret": "secret"},
        )
        .json()
    )
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    identity = org.session().get(token["id"], headers=headers).json()
    assert identity["username"] == "admin@emulator.local" and identity["user_id"].startswith("005")
    userinfo = org.client().oauth2("userinfo")
    assert userinfo["user_id"] == identity["user_id"] and userinfo["preferred_username"] == "admin@emulator.local"
    assert org.session().get(token["id"]).status_code == 403


def test_requests_ca_bundle_does_not_get_in_the_way(org: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # a bundle without the emulator's CA
    assert org.client().query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    naive = requests.Session()
    naive.verify = org.ca_file  # trust_env left True: requests prefers the environment's bundle
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(f"{org.instance_url}/services/data/", timeout=10)
