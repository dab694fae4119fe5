"""What the decoder fuzzers share: one service to drive, and the property every input must keep.

Used by `test_decoder_fuzz.py` (hypothesis) and `fuzz_handle_atheris.py` (libFuzzer, bounded).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from greenlane.agents.metrics import WorkerMetrics
from greenlane.agents.tracking import Output, TrackerService
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY, TopicSettings
from greenlane.sla.engine import Tracker
from greenlane.streams.codec import REASONS, DecodeError, decode_event

TOPICS = TopicSettings()
INPUT_TOPICS = (TOPICS.orders, TOPICS.tickets, TOPICS.provisioning, TOPICS.accounts)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TRACKER = Tracker(load_policy(EXAMPLE_POLICY))  # calendars built once, services are fresh


def fresh_service(metrics: WorkerMetrics | None = None) -> TrackerService:
    """A tracker service on plain dicts, as the unit tests build it, owning every partition."""
    service = TrackerService(
        TRACKER,
        {},
        {},
        metrics or WorkerMetrics(),
        sla_changes_topic=TOPICS.sla_changes,
        escalations_topic=TOPICS.escalations,
        deadletter_topic=TOPICS.deadletter,
        accounts_topic=TOPICS.accounts,
        ticks_topic=TOPICS.ticks,
        clock=lambda: NOW,
    )
    service.rebuild({0, 1, 2, 3})
    return service


def rejection(key: bytes | None, value: bytes | None) -> str | None:
    """The decoder's reason for rejecting this message, or None if it accepts it."""
    try:
        decode_event(value, key)
    except DecodeError as error:
        return error.reason
    return None


def check_one(
    service: TrackerService, topic: str, offset: int, key: bytes | None, value: bytes | None
) -> list[Output]:
    """Hand one message to `handle_safely` and check the property; returns its outputs.

    - it never raises;
    - a message the decoder rejects yields exactly one dead letter, with the decoder's reason
      (one of REASONS), the original bytes and where they came from;
    - a message the decoder accepts is never dead-lettered as `processing_error` (that would
      be a bug in the rules); `calendar_gap` is allowed (a year with no official schedule).
    """
    outputs = service.handle_safely(topic, 1, offset, key, value)
    assert isinstance(outputs, list)
    dead = [o for o in outputs if o.topic == TOPICS.deadletter]
    reason = rejection(key, value)
    if reason is not None:
        assert len(dead) == 1 and len(outputs) == 1, outputs
        record: dict[str, Any] = dead[0].value
        assert record["reason"] == reason
        assert record["reason"] in REASONS
        assert base64.b64decode(record["value_b64"]) == (value or b"")
        assert (record["source_topic"], record["source_offset"]) == (topic, offset)
    else:
        for d in dead:
            assert d.value["reason"] in REASONS
            assert d.value["reason"] != "processing_error", d.value["detail"]
    return outputs
