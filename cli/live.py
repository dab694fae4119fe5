"""`greenlane live`: what a running worker would publish for events in arrival order.

Each line is an input event (the contract's envelope), in the order the events reached
Kafka, or `{"appended_at": ..., "read_at": ..., "event": {...}}` to say when it reached
Kafka and when the worker read it. By default an event reached Kafka at its event time and
is read `--lag` seconds later; `--down-until` has the worker down until then (it reads the
backlog at that instant). The records are printed as the worker would send them,
retractions included; a summary goes to stderr. Replay stays the reference: the effective
records equal replay's (`greenlane.sla.revision.effective`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from greenlane.agents.offline import Arrival, OfflineWorker, records_of
from greenlane.config.errors import PolicyError
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY, TopicSettings
from greenlane.sla.engine import Tracker
from greenlane.streams.codec import encode_record
from greenlane.streams.topics import input_topic_for


class InputError(ValueError):
    """A line the command cannot place in time (bad JSON, or a time without an offset)."""


def _instant(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(f"{where}: expected an RFC 3339 instant, got {value!r}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where}: {value!r} is not an RFC 3339 instant") from None
    if at.tzinfo is None:
        raise InputError(f"{where}: {value!r} has no UTC offset; fix: add one, e.g. +08:00")
    return at


def arrivals_of(
    lines: list[bytes],
    source: str,
    topics: TopicSettings,
    lag: timedelta,
    down_until: datetime | None,
) -> list[Arrival]:
    """The arrivals the lines describe (see the module's docstring)."""
    out: list[Arrival] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{where}: bad JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InputError(f"{where}: expected a JSON object")
        event = body.get("event", body)
        if not isinstance(event, dict):
            raise InputError(f"{where}: `event` must be an object")
        appended = _instant(body.get("appended_at", event.get("event_time")), where)
        read = _instant(body["read_at"], where) if "read_at" in body else appended + lag
        if down_until is not None and read < down_until:
            read = down_until
        try:
            topic = input_topic_for(str(event.get("event_type")), topics)
        except KeyError:
            raise InputError(f"{where}: unknown event_type {event.get('event_type')!r}") from None
        key = str(event.get("account_id", "")).encode()
        out.append(Arrival(topic, key, orjson.dumps(event), appended, read))
    return out


def run_live(
    events_path: Path,
    policy_path: Path | None,
    until: str | None,
    lag_s: float,
    down_until: str | None,
    partitions: int,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run the offline worker over an event file; returns the exit status (0, or 2)."""
    try:
        policy = load_policy(policy_path or EXAMPLE_POLICY)
        end = _instant(until, "--until") if until is not None else None
        down = _instant(down_until, "--down-until") if down_until is not None else None
        lines = events_path.read_bytes().splitlines()
        topics = TopicSettings()
        arrivals = arrivals_of(lines, str(events_path), topics, timedelta(seconds=lag_s), down)
    except (PolicyError, InputError) as exc:
        err.write(f"{exc}\n")
        return 2
    except OSError as exc:
        err.write(f"{events_path}: {exc.strerror}\n")
        return 2
    worker = OfflineWorker(Tracker(policy), topics, partitions=partitions)
    outputs = worker.run(arrivals, end)
    counts: dict[str, int] = {}
    for value in (o.value for o in outputs):
        kind = str(value.get("record_type"))
        counts[kind] = counts.get(kind, 0) + 1
    for value in records_of(outputs):
        out.write(encode_record(value).decode("utf-8") + "\n")
    summary = ", ".join(f"{counts[k]} {k}" for k in sorted(counts)) or "nothing"
    err.write(f"{len(arrivals)} events read; published {summary}\n")
    return 0
