"""The notifier's own settings (prefix `GREENLANE_NOTIFY_`).

Broker, topics, partitions and the audit database URL come from the worker's `Settings`
(`GREENLANE_*`): the notifier reads the same topics and keeps its ledger in the same database.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "notify.example.yaml"


class NotifySettings(BaseSettings):
    """Every field can be set as `GREENLANE_NOTIFY_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="GREENLANE_NOTIFY_", frozen=True, extra="ignore")

    config_file: Path = Field(default=EXAMPLE_CONFIG, description="routing and channels (YAML)")
    app_id: str = "greenlane-notifier"
    web_port: int = Field(default=6067, ge=0, le=65535)
    deadletter_topic: str = "greenlane.notify-deadletter"
    data_dir: Path = Path("var/notifier")
    timeline_base_url: str = Field(
        default="http://127.0.0.1:3000/requests",
        description="audit timeline of a request: <base>/<request_id>",
    )
    ack_base_url: str = Field(
        default="http://127.0.0.1:6067", description="how recipients reach this notifier's /ack"
    )
    ack_secret: str = Field(default="change-me", description="HMAC key of acknowledgement links")
    lang: str | None = Field(default=None, description="zh or en (default: the config file's)")
    group_window_s: float | None = Field(default=None, ge=0)
    dispatch_interval_s: float = Field(default=0.2, gt=0)
    send_timeout_s: float = Field(default=10.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    # Test-only: after a successful send on this channel (by name), the process exits at once,
    # before the ledger records the outcome (simulates kill -9 between send and ledger write).
    test_exit_after_send: str | None = None
