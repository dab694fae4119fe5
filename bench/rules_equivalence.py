"""A hash of everything the rules produce for a large simulated traffic: a speed change to
`greenlane.sla` must leave it exactly as it was.

Simulator traffic (backlog, then live windows) goes through a `Tracker` as a worker would
drive it: events of a window delivered in a shuffled order with the clock at the window's
end, sweeps of the due requests, producer duplicates and redeliveries, a clock that goes
back, a small checkpoint cache (refolds) beside the default one, and a changed policy for
the last windows (replans). Every step's records, republished records, duplicate flag and
new state (`to_dict`) are hashed, then the final states and `replay` of the same events.

    .venv/bin/python bench/rules_equivalence.py [--hours 24] [--rate 40] [--many]

Run it on the code before and after a change (e.g. with PYTHONPATH pointing at a copy of
the old package) and compare the printed hash. `--many` also drives two more trackers with
each request's events of a window grouped, one through `Tracker.apply_many` and one through
`apply` event by event, and says whether they hash the same (`many_equal_to_one_by_one`).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sim.traffic import Simulator
from greenlane.sla.calendar import CalendarGapError
from greenlane.sla.due_index import DueIndex
from greenlane.sla.engine import Step, Tracker, apply_account
from greenlane.sla.replay import replay
from greenlane.sla.state import AccountState, RequestState, request_key
from greenlane.streams.codec import decode_event
from greenlane.streams.events import Envelope

SHANGHAI = timezone(timedelta(hours=8))


class _Hash:
    def __init__(self) -> None:
        self.h = hashlib.blake2b(digest_size=16)
        self.records = 0
        self.steps = 0

    def add(self, obj: Any) -> None:
        self.h.update(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS))
        self.h.update(b"\n")

    def step(self, tag: str, key: str, step: Step) -> None:
        self.steps += 1
        self.records += len(step.records) + len(step.republish)
        self.add(
            [
                tag,
                key,
                step.duplicate,
                [r.to_dict() for r in step.records],
                [r.to_dict() for r in step.republish],
                step.state.to_dict(),
            ]
        )


class _Driver:
    """One worker's view: request and account state, the due index, a tracker."""

    def __init__(self, tracker: Tracker, out: _Hash, name: str) -> None:
        self.tracker = tracker
        self.out = out
        self.name = name
        self.requests: dict[str, RequestState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.index = DueIndex()
        self.stalled: set[str] = set()

    def lookup(self, account_id: str) -> AccountState | None:
        return self.accounts.get(account_id)

    def _store(self, tag: str, key: str, step: Step) -> None:
        self.out.step(tag, key, step)
        if not step.duplicate:
            self.requests[key] = step.state
            self.index.schedule(0, key, step.state.next_wakeup)

    def event(self, event: Envelope, now: datetime, delivery: str | None) -> None:
        if event.is_account_event:
            self.accounts[event.account_id] = apply_account(
                self.accounts.get(event.account_id), event
            )
            return
        assert event.request_id is not None
        key = request_key(event.account_id, event.request_id)
        if key in self.stalled:
            return
        try:
            step = self.tracker.apply(
                self.requests.get(key),
                event,
                self.accounts.get(event.account_id),
                now,
                lookup=self.lookup,
                delivery=delivery,
            )
        except CalendarGapError as gap:
            self.stalled.add(key)
            self.index.schedule(0, key, None)
            self.out.add([self.name, "gap", key, str(gap)])
            return
        self._store("apply", key, step)

    def sweep(self, now: datetime) -> None:
        for key in self.index.pop_due(0, now):
            try:
                step = self.tracker.advance(self.requests[key], now)
            except CalendarGapError as gap:
                self.stalled.add(key)
                self.out.add([self.name, "gap", key, str(gap)])
                continue
            self._store("advance", key, step)

    def batch(self, key: str, batch: list[tuple[Envelope, str]], now: datetime) -> None:
        """A request's events of one delivery window, through `apply_many`."""
        if key in self.stalled:
            return
        first = batch[0][0]
        try:
            applied = self.tracker.apply_many(
                self.requests.get(key),
                [e for e, _ in batch],
                self.accounts.get(first.account_id),
                now,
                lookup=self.lookup,
                deliveries=[w for _, w in batch],
            )
        except CalendarGapError as gap:
            self.stalled.add(key)
            self.index.schedule(0, key, None)
            self.out.add([self.name, "gap", key, str(gap)])
            return
        self.out.steps += 1
        for o in applied.outcomes:
            self.out.records += len(o.records) + len(o.republish)
            self.out.add(
                [
                    o.duplicate,
                    [r.to_dict() for r in o.records],
                    [r.to_dict() for r in o.republish],
                ]
            )
        self.out.add(applied.state.to_dict())
        self.requests[key] = applied.state
        self.index.schedule(0, key, applied.state.next_wakeup)

    def batch_one_by_one(self, key: str, batch: list[tuple[Envelope, str]], now: datetime) -> None:
        """`batch`, event by event through `apply`: the same hash is expected."""
        if key in self.stalled:
            return
        state = self.requests.get(key)
        outcomes = []
        try:
            for event, where in batch:
                step = self.tracker.apply(
                    state,
                    event,
                    self.accounts.get(event.account_id),
                    now,
                    lookup=self.lookup,
                    delivery=where,
                )
                outcomes.append(step)
                state = step.state
        except CalendarGapError as gap:
            self.stalled.add(key)
            self.index.schedule(0, key, None)
            self.out.add([self.name, "gap", key, str(gap)])
            return
        assert state is not None
        self.out.steps += 1
        for step in outcomes:
            self.out.records += len(step.records) + len(step.republish)
            self.out.add(
                [
                    step.duplicate,
                    [r.to_dict() for r in step.records],
                    [r.to_dict() for r in step.republish],
                ]
            )
        self.out.add(state.to_dict())
        self.requests[key] = state
        self.index.schedule(0, key, state.next_wakeup)

    def finish(self) -> None:
        for key in sorted(self.requests):
            self.out.add([self.name, key, self.requests[key].to_dict()])


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    sim = Simulator(
        seed=args.seed, now=start, accounts=args.accounts, requests_per_minute=args.rate
    )
    rng = random.Random(args.seed)  # a reproducible test, not security
    policy = load_policy(EXAMPLE_POLICY)
    changed = policy.model_copy(update={"version": policy.version + "+changed", "at_risk": "60%"})
    out = _Hash()
    default = _Driver(Tracker(policy), out, "default")
    small = _Driver(Tracker(policy, checkpoints=64), out, "small")
    drivers = [default, small]
    # A request's events of a window in one call (`--many`), against the same one by one.
    many = _Driver(Tracker(policy), _Hash(), "grouped")
    one_by_one = _Driver(Tracker(policy), _Hash(), "grouped")
    grouped = [many, one_by_one] if args.many else []
    everything: list[Envelope] = []

    def decode(raw: list[dict[str, Any]]) -> list[Envelope]:
        return [decode_event(orjson.dumps(e)) for e in raw]

    offset = 0

    def window(events: list[Envelope], now: datetime) -> None:
        nonlocal offset
        events = list(events)
        rng.shuffle(events)  # a window's events in any order, the clock past them all
        delivered: list[tuple[Envelope, str]] = []
        for event in events:
            offset += 1
            where = f"t:0:{offset}"
            for d in drivers:
                d.event(event, now, where)
            delivered.append((event, where))
            r = rng.random()
            if r < 0.02:  # a redelivery: same place, so what it produced comes again
                for d in drivers:
                    d.event(event, now, where)
                delivered.append((event, where))
            elif r < 0.04:  # a producer's duplicate, read elsewhere
                for d in drivers:
                    d.event(event, now, f"t:1:{offset}")
                delivered.append((event, f"t:1:{offset}"))
        for d in drivers:
            d.sweep(now)
        if grouped:
            by_request: dict[str, list[tuple[Envelope, str]]] = {}
            for event, where in delivered:
                if event.is_account_event:
                    for d in grouped:
                        d.event(event, now, where)
                    continue
                assert event.request_id is not None
                key = request_key(event.account_id, event.request_id)
                by_request.setdefault(key, []).append((event, where))
            for key, batch in by_request.items():
                many.batch(key, batch, now)
                one_by_one.batch_one_by_one(key, batch, now)
            for d in grouped:
                d.sweep(now)

    for event in decode(sim.accounts()):
        for d in drivers + grouped:
            d.event(event, start, None)
    backlog = decode(sim.backlog())
    everything += backlog
    for event in backlog:  # in event-time order, the clock at each event
        offset += 1
        for d in drivers:
            d.sweep(event.event_time)
            d.event(event, event.event_time, f"t:0:{offset}")
    clock = start
    windows = int(args.hours * 3600 / args.window)
    for n in range(windows):
        clock += timedelta(seconds=args.window)
        if n == windows * 3 // 4:  # the policy changes: open SLAs are replanned
            for d in drivers + grouped:
                d.tracker = Tracker(changed, checkpoints=d.tracker.max_checkpoints)
        events = decode(sim.advance(clock))
        everything += events
        late = rng.random() < 0.05
        # now and then the clock lags: events stamped after it wait for it
        now = clock - timedelta(seconds=args.window * 2) if late else clock
        window(events, now)
    for d in drivers + grouped:
        d.sweep(clock + timedelta(days=3))
        d.finish()
    replayed = 0
    for record in replay(Tracker(policy), everything, until=clock + timedelta(days=1)):
        replayed += 1
        out.add(record.to_dict())
    if grouped:
        extra = {
            "many_steps": many.out.steps,
            "many_records": many.out.records,
            "many_equal_to_one_by_one": many.out.h.hexdigest() == one_by_one.out.h.hexdigest(),
        }
    else:
        extra = {}
    return {
        **extra,
        "events": len(everything),
        "steps": out.steps,
        "records": out.records,
        "replayed_records": replayed,
        "hash": out.h.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=11)
    # 24 h is the run whose hash docs/benchmarks.md records (f90aac35...).
    parser.add_argument("--hours", type=float, default=24.0, help="simulated live traffic")
    parser.add_argument("--rate", type=float, default=40.0, help="new requests per minute")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--window", type=int, default=30, help="seconds per delivery window")
    parser.add_argument(
        "--many",
        action="store_true",
        help="also check Tracker.apply_many (each request's events of a window in one call) "
        "against apply one by one (not part of the hash: older code has no apply_many)",
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
