"""Settings from the environment (prefix `GREENLANE_`, nested with `__`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_POLICY = Path(__file__).with_name("policies") / "green-channel.yaml"


class TopicSettings(BaseModel):
    """Topic names (CONTRACT.md defaults)."""

    model_config = {"frozen": True}

    orders: str = "greenlane.orders"
    tickets: str = "greenlane.tickets"
    provisioning: str = "greenlane.provisioning"
    accounts: str = "greenlane.accounts"
    ticks: str = "greenlane.ticks"
    sla_changes: str = "greenlane.sla-changes"
    escalations: str = "greenlane.escalations"
    deadletter: str = "greenlane.deadletter"


class Settings(BaseSettings):
    """Everything a worker needs; every field can be set as `GREENLANE_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="GREENLANE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    app_id: str = "greenlane"
    broker: str = Field(default="kafka://127.0.0.1:9092", description="Faust broker URL(s)")
    embedded_broker: bool = Field(
        default=False,
        description="The broker is the embedded Tansu: apply the workarounds of BROKER.md",
    )
    partitions: int = Field(default=4, ge=1)
    replication: int = Field(default=1, ge=1)
    topics: TopicSettings = TopicSettings()
    policy_file: Path = EXAMPLE_POLICY
    audit_url: str = "sqlite:///greenlane-audit.db"
    audit_in_worker: bool = Field(
        default=True,
        description="each worker also writes the output records to the audit store; off, "
        "`greenlane audit-writer` does it in a process of its own",
    )
    audit_app_id: str = Field(
        default="greenlane-audit",
        description="app id (consumer group) of the stand-alone `greenlane audit-writer`",
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    data_dir: Path = Path("var/worker")
    sweep_interval_s: float = Field(
        default=0.25,
        gt=0,
        description="how often each owned partition's due index is checked; a rung fires at "
        "most this much plus the processing queue after it is due (goal: p99 under 1 s)",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description="how long the broker may hold a consumer fetch that finds nothing new; "
        "a worker under load can wait this long for its next records (streams/faust_consumer.py)",
    )
    clock_idle_s: float = Field(
        default=5.0,
        gt=0,
        description="a lagging input topic-partition that delivers nothing this long no "
        "longer holds its partition's clock back (sla/clock.py)",
    )
    max_event_ahead_s: float = Field(
        default=86400.0,
        gt=0,
        description="an input event dated further ahead of the worker's clock is "
        "dead-lettered as future_time (the clock would hold it unjudged until then)",
    )
    at_risk_fraction: float = Field(default=0.75, gt=0, lt=1)
    log_level: str = "info"
    calendar_gap_at_start: Literal["refuse", "warn"] = Field(
        default="refuse",
        description="a calendar without an official schedule for today: refuse to start, or "
        "only warn (deadlines that need the missing year are still dead-lettered, never "
        "guessed); the demo and the test harness warn, so that they run on any date",
    )


def bootstrap_of(broker_url: str) -> str:
    """`host:port[,host:port]` from a Faust broker URL (`kafka://host:port;host:port`)."""
    return ",".join(part.split("://", 1)[-1] for part in broker_url.replace(";", ",").split(","))
