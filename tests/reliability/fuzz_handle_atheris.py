"""Coverage-guided fuzzing (atheris/libFuzzer) of `TrackerService.handle_safely`, time-bounded.

The same property as the hypothesis tests (`fuzz_model.check_one`): nothing raises, every
rejected input is dead-lettered with a reason from `codec.REASONS`, a valid event is never a
`processing_error`. The corpus is seeded with every contract example event.

    .venv/bin/python tests/reliability/fuzz_handle_atheris.py -max_total_time=60 [-runs=N]

`pip install atheris` first (not a project dependency). Exit status 0: no failing input found.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import orjson

    from greenlane.streams import codec, events  # noqa: F401  (instrumented for coverage)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `reliability`
from reliability.fuzz_model import INPUT_TOPICS, check_one, fresh_service

SEEDS = [
    {"event_type": "account.upserted", "data": {"name": "某集团", "tier": "group"}},
    {"event_type": "order.created", "request_id": "R-1", "data": {"service": "internet.new"}},
    {"event_type": "order.state_changed", "request_id": "R-1", "data": {"state": "pending"}},
    {
        "event_type": "ticket.created",
        "request_id": "T-1",
        "data": {"category": "fault", "severity": 1},
    },
    {"event_type": "ticket.milestone", "request_id": "T-1", "data": {"name": "responded"}},
    {
        "event_type": "provisioning.stage_changed",
        "request_id": "R-1",
        "data": {"stage": "survey", "status": "started", "department": "ops"},
    },
]
KEY = b"GOV-SZ-0042"


def one_input(data: bytes) -> None:
    """First byte: topic and key choice; the rest: the message value."""
    if not data:
        return
    mode, value = data[0], data[1:]
    key = (KEY, None, b"other", value[:8])[mode & 3]
    topic = INPUT_TOPICS[(mode >> 2) % len(INPUT_TOPICS)]
    service = fresh_service()
    check_one(service, topic, 0, key, value)
    check_one(service, topic, 1, key, value)  # a redelivery as well


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="greenlane-fuzz-"))
    for n, seed in enumerate(SEEDS):
        body = {
            "event_id": f"e-{n}",
            "event_time": "2026-11-02T09:00:00+08:00",
            "account_id": KEY.decode(),
            **seed,
        }
        (corpus / f"seed-{n}").write_bytes(bytes([0]) + orjson.dumps(body))
    argv = [*sys.argv, str(corpus)]
    if not any(a.startswith(("-max_total_time", "-runs")) for a in argv):
        argv.insert(1, "-max_total_time=30")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
