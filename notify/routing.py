"""Routing, pure: an escalation → roles → people → (channel, address) targets, and the plan
of one account's window of escalations: one message per target, minus acknowledged roles.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenlane.notify.config import ROBOTS, NotifyConfig
from greenlane.sla.records import stable_id


@dataclass(frozen=True, slots=True)
class Contact:
    """A person reached on one channel. `address` is empty for group robots, webhooks and
    Alertmanager (the endpoint itself is the address)."""

    name: str
    role: str
    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message to one target covering one or more escalations of one account."""

    message_id: str
    channel: str
    recipient: str
    escalation_ids: tuple[str, ...]
    names: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]  # escalation id → the roles this target holds in it


@dataclass(frozen=True, slots=True)
class Skipped:
    """A (escalation, target) not sent, and why."""

    escalation_id: str
    channel: str
    recipient: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    messages: tuple[PlannedMessage, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    unrouted: tuple[str, ...] = field(default=())  # escalation ids nobody could be found for


def recipient_key(channel_type: str, address: str) -> str:
    """The ledger's recipient: the address, or `group` for an endpoint that is its own target."""
    return address if address else "group"


def _region(record: Mapping[str, Any]) -> str | None:
    account = record.get("account") or {}
    region = account.get("region") if isinstance(account, dict) else None
    return str(region) if region else None


def roles_for(record: Mapping[str, Any], config: NotifyConfig) -> list[str]:
    """The roles to notify: the record's roles, changed by the first matching route(s)."""
    roles = [str(r) for r in record.get("roles") or []]
    rung, tier, service = record.get("rung"), record.get("tier"), str(record.get("service", ""))
    region = _region(record)
    for route in config.routes:
        m = route.match
        if m.rung is not None and rung not in m.rung:
            continue
        if m.tier is not None and tier not in m.tier:
            continue
        if m.service is not None and not any(fnmatch.fnmatchcase(service, p) for p in m.service):
            continue
        if m.region is not None and region not in m.region:
            continue
        if route.roles is not None:
            roles = list(route.roles)
        roles.extend(r for r in route.add_roles if r not in roles)
        if not route.continue_:
            break
    return roles


def _account_people(
    record: Mapping[str, Any], role_name: str, config: NotifyConfig
) -> list[tuple[str, str]]:
    """(name, contact) pairs the record's account names for this role."""
    role = config.roles.get(role_name)
    account = record.get("account")
    if role is None or not isinstance(account, dict):
        return []
    out: list[tuple[str, str]] = []
    if role.account_manager:
        am = account.get("account_manager")
        if isinstance(am, dict) and am.get("name"):
            out.append((str(am["name"]), str(am.get("contact") or "")))
    contacts = account.get("contacts")
    if isinstance(contacts, dict):
        for key in role.account_contacts:
            for c in contacts.get(key) or []:
                if isinstance(c, dict) and c.get("name"):
                    out.append((str(c["name"]), str(c.get("contact") or "")))
    return out


def resolve(record: Mapping[str, Any], role_name: str, config: NotifyConfig) -> list[Contact]:
    """A role's contacts for this escalation: from the account, then from the config."""
    role = config.roles.get(role_name)
    if role is None:
        return []
    found: list[Contact] = []
    for name, contact in _account_people(record, role_name, config):
        for channel in role.via:
            kind = config.channels[channel].type
            if kind == "email":
                if "@" in contact:
                    found.append(Contact(name, role_name, channel, contact))
            else:
                found.append(Contact(name, role_name, channel, ""))
    region = _region(record)
    people = list(role.people)
    if role.people_by_region:
        people += role.people_by_region.get(region or "", role.people_by_region.get("*", []))
    for key in people:
        person = config.people[key]
        for ep in person.via:
            address = ep.address or "" if config.channels[ep.channel].type == "email" else ""
            found.append(Contact(person.name, role_name, ep.channel, address))
    return found


def _fallback(config: NotifyConfig, role: str) -> list[Contact]:
    out = []
    for key in config.fallback:
        person = config.people[key]
        for ep in person.via:
            address = ep.address or "" if config.channels[ep.channel].type == "email" else ""
            out.append(Contact(person.name, role, ep.channel, address))
    return out


def plan(
    records: Sequence[Mapping[str, Any]],
    config: NotifyConfig,
    acknowledged: Iterable[tuple[str, str]] = (),
) -> Plan:
    """Plan one account's window of escalations: one message per (channel, recipient).

    A role acknowledged for the escalation's SLA (`(sla_id, role)` in `acknowledged`) is not
    notified again; the targets that only that role would have reached are `Skipped` with
    reason `acknowledged`. A role nobody can be found for goes to the config's `fallback`.
    """
    acked = set(acknowledged)
    # (channel, recipient) → escalation id → roles ; names
    wanted: dict[tuple[str, str], dict[str, list[str]]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    blocked: dict[tuple[str, str], set[str]] = {}
    unrouted: list[str] = []
    for record in records:
        eid, sla_id = str(record["escalation_id"]), str(record.get("sla_id", ""))
        reached = False
        for role in roles_for(record, config):
            contacts = resolve(record, role, config) or _fallback(config, role)
            for c in contacts:
                target = (c.channel, recipient_key(config.channels[c.channel].type, c.address))
                if (sla_id, role) in acked:
                    blocked.setdefault(target, set()).add(eid)
                    continue
                reached = True
                roles = wanted.setdefault(target, {}).setdefault(eid, [])
                if role not in roles:
                    roles.append(role)
                # robots post in a group: list who is meant; e-mail goes to one person
                label = c.name
                if label not in names.setdefault(target, []):
                    names[target].append(label)
        if not reached and not any(eid in s for s in blocked.values()):
            unrouted.append(eid)
    messages = []
    for target, per_escalation in sorted(wanted.items()):
        ids = tuple(sorted(per_escalation))
        channel, recipient = target
        messages.append(
            PlannedMessage(
                message_id=stable_id("notify", channel, recipient, *ids),
                channel=channel,
                recipient=recipient,
                escalation_ids=ids,
                names=tuple(names.get(target, [])),
                roles={e: tuple(r) for e, r in per_escalation.items()},
            )
        )
    skipped = [
        Skipped(eid, channel, recipient, "acknowledged")
        for (channel, recipient), ids in sorted(blocked.items())
        for eid in sorted(ids)
        if eid not in wanted.get((channel, recipient), {})
    ]
    return Plan(tuple(messages), tuple(skipped), tuple(unrouted))


def is_robot(config: NotifyConfig, channel: str) -> bool:
    return config.channels[channel].type in ROBOTS
