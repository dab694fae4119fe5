"""Settings of the audit queries and their HTTP API (environment prefix `GREENLANE_AUDIT_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuditSettings(BaseSettings):
    """Every field can be set as `GREENLANE_AUDIT_<NAME>`; `GREENLANE_AUDIT_URL` is shared with
    the worker's settings, so the queries read the database the worker writes."""

    model_config = SettingsConfigDict(env_prefix="GREENLANE_AUDIT_", frozen=True, extra="ignore")

    url: str = "sqlite:///greenlane-audit.db"
    token: SecretStr | None = Field(
        default=None,
        description="bearer token the HTTP API requires; the API refuses to start without one",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=6067, ge=0, le=65535)
    page_size: int = Field(default=100, ge=1)
    max_page_size: int = Field(default=5000, ge=1)
    timezone: str = "Asia/Shanghai"
    # Account health (churn early warning).
    window_days: int = Field(default=90, ge=1, description="rolling window of account health")
    near_miss_rung: int = Field(
        default=2, ge=1, description="the ladder's 75 % rung: fired on a met SLA, a near miss"
    )
    near_miss_weight: float = Field(default=0.5, ge=0)
    churn_threshold: float = Field(
        default=3.0,
        gt=0,
        description="risk score (breaches + weight x near misses) that flags churn risk",
    )
