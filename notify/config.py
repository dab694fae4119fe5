"""The notification config: channels, people, roles and routes (YAML, validated with pydantic).

Errors name the file, the line, the place in the file and the fix, like policy errors do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from greenlane.config.errors import GreenlaneError
from greenlane.config.yaml_errors import describe

ChannelType = Literal["wecom", "dingtalk", "feishu", "email", "webhook", "alertmanager"]
ROBOTS: frozenset[str] = frozenset({"wecom", "dingtalk", "feishu"})
# Documented per-robot limits: WeCom and DingTalk group robots 20 messages/min, Feishu custom
# bots 100/min (and 5/s).
DEFAULT_RATE_PER_MIN: dict[str, int] = {"wecom": 20, "dingtalk": 20, "feishu": 100}


class NotifyConfigError(GreenlaneError):
    """An invalid notification config: file, line, place, what is wrong and the fix."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid notification config {path}:\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(_Strict):
    """One endpoint: a group robot, an SMTP server, a webhook or an Alertmanager."""

    type: ChannelType
    url: str | None = None
    secret: str | None = None
    rate_per_min: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    on_uncertain: Literal["resend", "skip"] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=64)
    # e-mail
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str | None = None

    @model_validator(mode="after")
    def _required(self) -> ChannelConfig:
        if self.type == "email":
            if not self.host or not self.sender:
                raise ValueError("an email channel needs host and sender; fix: add both")
        elif not self.url:
            raise ValueError(f"a {self.type} channel needs url; fix: add the endpoint's url")
        return self

    @property
    def uncertain_rule(self) -> str:
        """After a crash between a send and its outcome: `resend` (webhook and Alertmanager
        deduplicate by key/labels; robots and e-mail may then show a marked duplicate) or
        `skip` (never a duplicate, but the message may be lost)."""
        return self.on_uncertain or "resend"

    @property
    def workers(self) -> int:
        """Sends in flight at once: one for robots (their order and rate), four otherwise."""
        return self.concurrency or (1 if self.type in ROBOTS else 4)

    @property
    def rate(self) -> int | None:
        """Messages per minute allowed on this endpoint (None: no limit)."""
        return self.rate_per_min or DEFAULT_RATE_PER_MIN.get(self.type)


class Endpoint(_Strict):
    """How to reach a person: a channel and, for e-mail, the address."""

    channel: str
    address: str | None = None


class Person(_Strict):
    """Someone named in the config (department head, branch leader, duty group)."""

    name: str
    via: list[Endpoint] = Field(min_length=1)


class RoleConfig(_Strict):
    """Where a role's people come from."""

    title: dict[str, str] = Field(default_factory=dict)
    account_manager: bool = False
    account_contacts: list[str] = Field(default_factory=list)
    via: list[str] = Field(default_factory=list)
    people: list[str] = Field(default_factory=list)
    people_by_region: dict[str, list[str]] = Field(default_factory=dict)


class Match(_Strict):
    """Which escalations a route applies to (absent: any). Services may use * wildcards."""

    rung: list[int] | None = None
    tier: list[str] | None = None
    service: list[str] | None = None
    region: list[str] | None = None


class Route(_Strict):
    """Roles for matching escalations: `roles` replaces the record's roles, `add_roles` adds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: Match = Match()
    roles: list[str] | None = None
    add_roles: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")


class NotifyConfig(_Strict):
    """The whole file."""

    version: int = 1
    lang: Literal["zh", "en"] = "zh"
    group_window_s: float = Field(default=60.0, ge=0)
    channels: dict[str, ChannelConfig] = Field(min_length=1)
    people: dict[str, Person] = Field(default_factory=dict)
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    fallback: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        problems: list[str] = []
        for key, person in self.people.items():
            for i, ep in enumerate(person.via):
                if ep.channel not in self.channels:
                    problems.append(f"people.{key}.via.{i}.channel: unknown channel {ep.channel!r}")
                elif self.channels[ep.channel].type == "email" and not ep.address:
                    problems.append(f"people.{key}.via.{i}.address: an e-mail endpoint needs it")
        for key, role in self.roles.items():
            for name in role.via:
                if name not in self.channels:
                    problems.append(f"roles.{key}.via: unknown channel {name!r}")
            for name in [*role.people, *(p for ps in role.people_by_region.values() for p in ps)]:
                if name not in self.people:
                    problems.append(f"roles.{key}: unknown person {name!r}")
        for i, route in enumerate(self.routes):
            for name in [*(route.roles or []), *route.add_roles]:
                if name not in self.roles:
                    problems.append(f"routes.{i}: unknown role {name!r}")
        for name in self.fallback:
            if name not in self.people:
                problems.append(f"fallback: unknown person {name!r}")
        if problems:
            raise ValueError(
                "; ".join(problems) + "; fix: define it under channels/people/roles or correct it"
            )
        return self


def _describe(error: Any, root: yaml.Node | None, path: Path) -> str:
    loc = tuple(error["loc"])
    if loc and loc[-1] in ("continue_",):
        loc = (*loc[:-1], "continue")
    return describe(error, root, path, loc, "config/notify.example.yaml")


def parse_config(text: str, path: Path) -> NotifyConfig:
    """Validate config text (`path` only names it in errors)."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise NotifyConfigError(path, [f"{path}:{line}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise NotifyConfigError(path, [f"{path}:1: (top level): write a mapping; fix: see example"])
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as exc:
        raise NotifyConfigError(path, [_describe(e, root, path) for e in exc.errors()]) from None


def load_config(path: Path) -> NotifyConfig:
    """Load and validate a notification config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"{path}: cannot read: {exc.strerror}; fix: check the path"
        raise NotifyConfigError(path, [problem]) from None
    return parse_config(text, path)
