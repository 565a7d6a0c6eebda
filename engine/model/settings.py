"""Settings from the environment (SMARTCAMPAIGN_*) or a settings file (.env format), with pydantic-settings.

Secrets are `SecretStr`: they print as `**********` and never reach logs or error messages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SalesforceSettings(BaseSettings):
    """How to reach Salesforce. One of three ways to authenticate:

    - username + password (+ security_token, + domain: `login`, `test` or a My Domain);
    - instance_url + session_id (an access token from elsewhere);
    - client_id + client_secret (OAuth client credentials; `login_url` is the My Domain URL).
    """

    model_config = SettingsConfigDict(env_prefix="SMARTCAMPAIGN_SFDC_", extra="ignore", env_file=None)

    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    domain: str = "login"
    instance_url: str | None = None
    session_id: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    login_url: str | None = Field(
        default=None, description="OAuth token endpoint base, e.g. https://acme.my.salesforce.com"
    )
    api_version: str = "59.0"
    ca_file: str | None = Field(default=None, description="A CA bundle to trust (the emulator's cert.pem)")
    timeout: float = 30.0
    batch_size: int = Field(default=200, ge=1, le=200)
    max_retries: int = Field(default=6, ge=1, le=20)
    concurrency: int = Field(default=4, ge=1, le=16, description="Collection requests in flight at once")
    status_ttl: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds the member statuses read from Salesforce are trusted before a write reads them again "
        "(0: every batch reads them); a status missing from what was read is always read again before refusing",
    )

    @field_validator("instance_url", "login_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError("an https:// URL (Salesforce is only reached over HTTPS)")
        return value.rstrip("/")

    @property
    def auth_method(self) -> Literal["password", "session", "client_credentials", "none"]:
        if self.session_id is not None and self.instance_url:
            return "session"
        if self.client_id and self.client_secret is not None:
            return "client_credentials"
        if self.username and self.password is not None:
            return "password"
        return "none"

    def describe(self) -> str:
        """Where and how, without secrets."""
        where = self.instance_url or self.login_url or f"{self.domain}.salesforce.com"
        who = f" as {self.username}" if self.username else ""
        return f"{where}{who} ({self.auth_method.replace('_', ' ')} authentication)"


class EngineSettings(BaseSettings):
    """The engine's own switches."""

    model_config = SettingsConfigDict(env_prefix="SMARTCAMPAIGN_", extra="ignore", env_file=None)

    campaign_sync: bool = True
    sync_disabled_programs: list[str] = Field(default_factory=list)
    max_depth: int = Field(default=10, ge=0)


def load_salesforce_settings(env_file: str | None = None) -> SalesforceSettings:
    return SalesforceSettings(_env_file=env_file)  # type: ignore[call-arg]


def load_engine_settings(env_file: str | None = None) -> EngineSettings:
    return EngineSettings(_env_file=env_file)  # type: ignore[call-arg]
