"""The tracker service: raw input messages → rules → state, outputs, index and metrics.

Faust-free on purpose: the Faust agent hands it each message with its topic, partition
and offset, and it uses plain mappings for state, so tests can drive it directly.
"""

from __future__ import annotations

import base64
import heapq
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from greenlane.agents.metrics import Tally, WorkerMetrics
from greenlane.sla.accounts import AccountLookup, merged_contacts, resolve_tier
from greenlane.sla.calendar import CalendarGapError
from greenlane.sla.clock import DEFAULT_IDLE_S, PartitionClock
from greenlane.sla.due_index import DueIndex
from greenlane.sla.engine import Batch, Step, apply_account
from greenlane.sla.fastinit import fast_init
from greenlane.sla.records import Escalation, Published, Retraction, SlaChange
from greenlane.sla.state import AccountState, RequestStanding, RequestState, request_key
from greenlane.streams.codec import DecodeError, Event, decode_event

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Behind = Callable[[str, int, int | None], bool | None]
"""Whether records wait in Kafka on (topic, partition) beyond the last offset the tracker
has handled there (None: none yet in this assignment); None when it is not known."""
# A rung or breach published this long after its instant carries `published_late_s`.
LATE_PUBLISH_S = 60
Put = Callable[[str, int, Any], None]
SWEEP_RETRY = timedelta(hours=1)
# The rules' `now` for a partition whose clock is not known yet: every event waits.
NOT_YET = datetime(1970, 1, 1, tzinfo=UTC)
TICK_MEMOS = 8  # ticks per partition whose outputs can be published again on redelivery
# An event dated further ahead of the wall clock than this is refused (`future_time`): the
# clock would hold it unjudged until then (a year 9999 forever), counted but never published.
DEFAULT_MAX_AHEAD_S = 86400.0
# Table key of a partition's tick memo. Request keys begin with an account id, which the
# decoder strips of leading whitespace: a key beginning with a space is never a request's.
TICK_MEMO_PREFIX = " ticks/"


def tick_memo_key(partition: int) -> str:
    """The requests table's key for `partition`'s memo of recent ticks."""
    return f"{TICK_MEMO_PREFIX}{partition}"


class MessageLike(Protocol):
    """What `handle_batch` reads of a message (Faust's own messages have it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class Rules(Protocol):
    """What the service asks of the rules: `sla.engine.Tracker`'s methods. (A protocol, not
    the class: this module is compiled, and a compiled attribute of a class type accepts
    only that class, while tests hand the service a stand-in that fails on purpose.)"""

    def apply(
        self,
        state: RequestState | None,
        event: Event,
        account: AccountState | None,
        now: datetime,
        lookup: AccountLookup | None = None,
        delivery: str | None = None,
    ) -> Step: ...

    def apply_many(
        self,
        state: RequestState | None,
        events: Sequence[Event],
        account: AccountState | None,
        now: datetime,
        lookup: AccountLookup | None = None,
        deliveries: Sequence[str | None] | None = None,
    ) -> Batch: ...

    def advance(self, state: RequestState, now: datetime, delivery: str | None = None) -> Step: ...

    def redelivered_tick(
        self, state: RequestState, delivery: str, now: datetime
    ) -> tuple[Published, ...]: ...

    def rejudge(
        self,
        state: RequestState,
        account: AccountState,
        now: datetime,
        lookup: AccountLookup | None = None,
    ) -> Step | None: ...

    def ended_targets(self, state: RequestState) -> frozenset[str]: ...


class Received(NamedTuple):
    """A message as `handle_safely` is given it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _fields(m: MessageLike) -> tuple[str, int, int, bytes | None, bytes | None]:
    return m.topic, m.partition, m.offset, m.key, m.value


def _where(m: MessageLike) -> str:
    return f"{m.topic}:{m.partition}:{m.offset}"


def partitioned_put(table: MutableMapping[str, Any]) -> Put:
    """How to write `table` to a given partition: its own `put(key, partition, value)` when it
    has one (a Faust table, whose changelog partition must not depend on the event that
    happens to be current in a batch), else a plain assignment (dicts in tests)."""
    put: Put | None = getattr(table, "put", None)
    if put is not None:
        return put

    def assign(key: str, partition: int, value: Any) -> None:
        table[key] = value

    return assign


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Output:
    """A record to publish: where, with which key, and what."""

    topic: str
    key: str
    value: dict[str, Any]

    def __init__(self, topic: str, key: str, value: dict[str, Any]) -> None:
        # Written out (not generated) so that mypyc compiles it: the generated one stayed
        # interpreted, about 2.5 % of the worker's own instructions. Pure Python runs
        # `fast_init`'s instead. Same signature as the dataclass's own.
        self.topic = topic  # type: ignore[misc]
        self.key = key  # type: ignore[misc]
        self.value = value  # type: ignore[misc]


fast_init(Output)  # not a decorator: a decorated class is not compiled


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: DecodeError,
    now: datetime,
) -> dict[str, Any]:
    """The dead-letter record: the original bytes, where they came from and why rejected."""
    return {
        "record_type": "dead_letter",
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "reason": error.reason,
        "detail": error.detail,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "value_b64": base64.b64encode(value or b"").decode("ascii"),
        "rejected_at": now.isoformat(),
    }


_FIRST = datetime.min.replace(tzinfo=UTC)


def _event_time(item: tuple[MessageLike, Event | DecodeError | None]) -> datetime:
    found = item[1]
    return found.event_time if isinstance(found, Event) else _FIRST


def in_time_order(
    read: list[tuple[MessageLike, Event | DecodeError | None]],
) -> list[tuple[MessageLike, Event | DecodeError | None]]:
    """A batch's messages in event-time order across topic-partitions, each topic-partition's
    kept in offset order (Kafka Streams' timestamp-synchronised processing): an account
    event read in the same batch as its request's events, but fetched after them, applies
    first when it is earlier. Ticks stay where they are (time passes there); a message
    without an event time goes as soon as it is at the head of its topic-partition."""
    topics = {m.topic for m, found in read if found is not None}
    if len(topics) <= 1:
        return read  # one input topic: each partition's messages are in offset order already
    out: list[tuple[MessageLike, Event | DecodeError | None]] = []
    lanes: dict[tuple[str, int], list[tuple[MessageLike, Event | DecodeError | None]]] = {}

    def merge() -> None:
        if len(lanes) == 1:
            out.extend(next(iter(lanes.values())))
        elif lanes:
            out.extend(heapq.merge(*lanes.values(), key=_event_time))
        lanes.clear()

    for item in read:
        if item[1] is None:  # a tick
            merge()
            out.append(item)
        else:
            lanes.setdefault((item[0].topic, item[0].partition), []).append(item)
    merge()
    return out


class TrackerService:
    """Handles every message on the tracker's partitions."""

    def __init__(
        self,
        tracker: Rules,
        requests: MutableMapping[str, Any],
        accounts: MutableMapping[str, Any],
        metrics: WorkerMetrics,
        *,
        sla_changes_topic: str,
        escalations_topic: str,
        deadletter_topic: str,
        accounts_topic: str,
        ticks_topic: str,
        clock: Clock = utc_now,
        behind: Behind | None = None,
        input_topics: Iterable[str] = (),
        monotonic: Callable[[], float] = time.monotonic,
        idle_s: float = DEFAULT_IDLE_S,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
    ) -> None:
        """:param clock: the wall clock.
        :param behind: how the worker knows whether an input topic-partition lags (from
            the consumer); without it, every partition's clock is the wall clock.
        :param input_topics: the input topics whose lag holds a partition's clock back.
        """
        self.tracker = tracker
        self.requests = requests
        self.accounts = accounts
        self.metrics = metrics
        self.index = DueIndex()
        self.clock = clock
        self.behind = behind
        self.input_topics = tuple(input_topics)
        self.monotonic = monotonic
        self.idle_s = idle_s
        self.max_ahead = timedelta(seconds=max_ahead_s)
        # Per partition: its clock, and the last offset handled per input topic.
        self.clocks: dict[int, PartitionClock] = {}
        self._handled: dict[tuple[str, int], int] = {}
        # Per account: its requests' keys (for a late account's re-judging).
        self.by_account: dict[str, set[str]] = {}
        self._put_request = partitioned_put(requests)
        self._put_account = partitioned_put(accounts)
        # Within a batch, request states live here and are written once per request at its
        # end: five events of one request make one changelog record, not five.
        self._batch: dict[str, tuple[int, RequestState]] | None = None
        self._dirty: set[str] = set()
        # Within a batch, each request's state before the batch (for the open-SLA gauge,
        # updated once per request at the end) and its counter increments so far.
        self._before: dict[str, RequestState | None] = {}
        self._tally: Tally | None = None
        self._contexts: dict[str, dict[str, Any] | None] = {}
        self.topics = {
            "sla_change": sla_changes_topic,
            "escalation": escalations_topic,
            "deadletter": deadletter_topic,
            "accounts": accounts_topic,
            "ticks": ticks_topic,
        }

    # -- state access (table values are plain JSON-able dicts) ----------------------------
    def _load(self, key: str) -> tuple[int | None, RequestState | None]:
        if self._batch is not None and (held := self._batch.get(key)) is not None:
            return held
        raw = self.requests.get(key)
        if raw is None:
            return None, None
        return int(raw["p"]), RequestState.from_dict(raw["s"])

    def _store(self, partition: int, before: RequestState | None, state: RequestState) -> None:
        if self._batch is not None:
            self._batch[state.key] = (partition, state)
            self._dirty.add(state.key)
            if state.key not in self._before:
                self._before[state.key] = before
        else:
            self._write(state.key, partition, state)
            self.metrics.open_slas.update(partition, before, state)
        self.index.schedule(partition, state.key, state.next_wakeup)
        keys = self.by_account.get(state.account_id)
        if keys is None:
            keys = self.by_account[state.account_id] = set()
        keys.add(state.key)

    def _count(self, topic: str, event_type: str, outcome: str) -> None:
        """Count an input event: at once, or at the end of the batch being handled."""
        self.metrics.count_events(topic, event_type, outcome, self._tally)

    def _write(self, key: str, partition: int, state: RequestState) -> None:
        self._put_request(key, partition, {"p": partition, "s": state.to_dict()})

    def _outputs(
        self,
        records: tuple[Published, ...],
        count: bool = True,
        state: RequestState | None = None,
    ) -> list[Output]:
        """The records to publish, as outputs. A rung or a breach published over a minute
        after its instant (a backlog, a late fact) says how late; a rung of an SLA that the
        events read so far show ended (`state`'s, not yet reached by the clock) is quiet:
        the notifier records it and pages nobody."""
        published = self.clock().timestamp()  # the wall clock (simulated offline)
        out = []
        ended: frozenset[str] | None = None
        for record in records:
            if count:
                self.metrics.record_published(record, published, self._tally)
            value = record.to_dict()
            if isinstance(record, Retraction):
                topic = self.topics[record.retracted_type]
                out.append(Output(topic, record.account_id, value))
                continue
            instant = None
            if isinstance(record, Escalation):
                # Whoever is notified needs the account's people: carry them with the rung.
                value["account"] = self._account_context(record.account_id)
                instant = record.fire_at
                if ended is None:
                    ended = self._ended_targets(state)
                if record.target in ended:
                    value["quiet"] = True
            elif isinstance(record, SlaChange) and record.kind == "breached":
                instant = record.at
            if instant is not None:
                late = published - instant.timestamp()
                if late > LATE_PUBLISH_S:
                    value["published_late_s"] = int(late)
            out.append(Output(self.topics[record.record_type], record.account_id, value))
        return out

    def _ended_targets(self, state: RequestState | None) -> frozenset[str]:
        """Targets that events already read end, though the clock has not reached them."""
        if state is None or not state.history or state.judged_at is None:
            return frozenset()
        if state.history[-1].at <= state.judged_at:
            return frozenset()
        return self.tracker.ended_targets(state)

    # -- the partition clock --------------------------------------------------------------
    def _partition_clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = PartitionClock(self.idle_s)
        return clock

    def _read(self, m: MessageLike, event: Event | None) -> None:
        """Feed a handled input message to its partition's clock."""
        self._handled[(m.topic, m.partition)] = m.offset
        moment = event.event_time if event is not None else None
        self._partition_clock(m.partition).read(m.topic, moment, self.monotonic())

    def now_of(self, partition: int) -> datetime | None:
        """The clock the rules judge `partition` at (see `greenlane.sla.clock`): None until
        it is known (after a start or a rebalance, while a lagging input has delivered
        nothing yet); then deadlines wait and events are kept, not judged."""
        wall = self.clock()
        if self.behind is None:
            return wall
        clock = self._partition_clock(partition)
        at_s = self.monotonic()
        for topic in self.input_topics:
            lagging = self.behind(topic, partition, self._handled.get((topic, partition)))
            clock.behind(topic, bool(lagging), at_s)
        return clock.advance(wall, at_s)

    def _judging_now(self, partition: int) -> datetime:
        now = self.now_of(partition)
        return now if now is not None else NOT_YET

    def _account(self, account_id: str) -> AccountState | None:
        raw = self.accounts.get(account_id)
        return AccountState.from_dict(raw) if raw is not None else None

    def _account_context(self, account_id: str) -> dict[str, Any] | None:
        # Within a batch an account's context is built once (a backlog can put dozens of one
        # account's rungs in a batch); any account write in the batch drops what was built.
        if self._batch is not None and account_id in self._contexts:
            return self._contexts[account_id]
        context = self._build_account_context(account_id)
        if self._batch is not None:
            self._contexts[account_id] = context
        return context

    def _build_account_context(self, account_id: str) -> dict[str, Any] | None:
        account = self._account(account_id)
        if account is None:
            return None
        tier, _ = resolve_tier(account, self._account, "standard")
        return {
            "name": account.name,
            "tier": tier,
            "region": account.region,
            "parent_id": account.parent_id,
            "billing_parent_id": account.billing_parent_id,
            **{k: account.extra.get(k) for k in ("industry", "account_manager")},
            "contacts": merged_contacts(account, self._account),
        }

    # -- messages -------------------------------------------------------------------------
    def handle(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Output]:
        """Process one message from an input or tick topic; returns what to publish."""
        if topic == self.topics["ticks"]:
            return self.sweep(partition, tick=f"{topic}:{partition}:{offset}")
        try:
            event = decode_event(value, key)
            self._check_not_ahead(event, self.clock())
        except DecodeError as error:
            self._read(Received(topic, partition, offset, key, value), None)
            return self._rejected(topic, partition, offset, key, value, error)
        self._read(Received(topic, partition, offset, key, value), event)
        now = self._judging_now(partition)
        if event.is_account_event:
            return self._apply_account_event(topic, partition, event, now)
        return self._apply_request_event(topic, partition, offset, event, now)

    def _check_not_ahead(self, event: Event, wall: datetime) -> None:
        """Refuse an event dated beyond `max_ahead` of the wall clock (`future_time`)."""
        if event.event_time > wall + self.max_ahead:
            ahead = int((event.event_time - wall).total_seconds())
            raise DecodeError(
                "future_time",
                f"event_time {event.event_time.isoformat()} is {ahead} s ahead of the worker's "
                f"clock (at most {int(self.max_ahead.total_seconds())} s, "
                "GREENLANE_MAX_EVENT_AHEAD_S); fix: the producer's clock or the event's time",
            )

    def _rejected(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: DecodeError,
    ) -> list[Output]:
        log.warning("dead letter %s[%s] offset=%s: %s", topic, partition, offset, error)
        self.metrics.dead_letters.labels(error.reason).inc()
        self._count(topic, "unknown", "dead_letter")
        record = dead_letter(topic, partition, offset, key, value, error, self.clock())
        dl_key = key.decode("utf-8", "replace") if key else ""
        return [Output(self.topics["deadletter"], dl_key, record)]

    def _apply_account_event(
        self, topic: str, partition: int, event: Event, now: datetime
    ) -> list[Output]:
        """Keep the account's new version; its requests created after this version's event
        time but judged without it (read before it) are judged again."""
        before_raw = self.accounts.get(event.account_id)
        before = AccountState.from_dict(before_raw) if before_raw else None
        after = apply_account(before, event)
        outcome = "processed" if after is not before else "duplicate"
        outputs: list[Output] = []
        if after is not before:
            self._put_account(event.account_id, partition, after.to_dict())
            self._contexts.clear()  # a group's change reaches its branches' contexts
            outputs = self._rejudge(event.account_id, after, now)
        self._count(topic, event.event_type, outcome)
        return outputs

    def _rejudge(self, account_id: str, account: AccountState, now: datetime) -> list[Output]:
        outputs: list[Output] = []
        for key in sorted(self.by_account.get(account_id, ())):
            partition, state = self._load(key)
            if state is None or partition is None:
                continue
            step = self.tracker.rejudge(state, account, now, lookup=self._account)
            if step is None:
                continue
            self._store(partition, state, step.state)
            outputs.extend(self._outputs(step.records, state=step.state))
        return outputs

    def _apply_request_event(
        self, topic: str, partition: int, offset: int, event: Event, now: datetime
    ) -> list[Output]:
        assert event.request_id is not None
        _, state = self._load(request_key(event.account_id, event.request_id))
        step = self.tracker.apply(
            state,
            event,
            self._account(event.account_id),
            now,
            lookup=self._account,
            delivery=f"{topic}:{partition}:{offset}",
        )
        self._count(topic, event.event_type, "duplicate" if step.duplicate else "processed")
        if step.duplicate:
            # A redelivery after a crash: what this message produced may never have left.
            return self._outputs(step.republish, count=False)
        self._store(partition, state, step.state)
        return self._outputs(step.records, state=step.state)

    def _apply_request_events(
        self, now: datetime, pending: list[tuple[MessageLike, Event]]
    ) -> list[list[Output]]:
        """Several events of one request, in order, in one `Tracker.apply_many`: what each
        message produced, as `handle_safely` one by one would have."""
        if len(pending) > 1:
            first = pending[0][1]
            assert first.request_id is not None
            _, state = self._load(request_key(first.account_id, first.request_id))
            try:
                folded = self.tracker.apply_many(
                    state,
                    [event for _, event in pending],
                    self._account(first.account_id),
                    now,
                    lookup=self._account,
                    deliveries=[f"{m.topic}:{m.partition}:{m.offset}" for m, _ in pending],
                )
                outcomes = folded.outcomes
                produced = [
                    self._outputs(
                        o.republish if o.duplicate else o.records, count=False, state=folded.state
                    )
                    for o in outcomes
                ]
            except Exception:
                # Nothing was kept or counted: one by one, the events before the failing one
                # apply and it alone goes to the dead-letter topic.
                log.debug("apply_many failed; the request's events go one by one", exc_info=True)
            else:
                published = self.clock().timestamp()
                for (m, event), outcome in zip(pending, outcomes, strict=True):
                    if outcome.duplicate:
                        self._count(m.topic, event.event_type, "duplicate")
                        continue
                    self._count(m.topic, event.event_type, "processed")
                    for record in outcome.records:
                        self.metrics.record_published(record, published, self._tally)
                if not all(outcome.duplicate for outcome in outcomes):
                    self._store(pending[0][0].partition, state, folded.state)
                return produced
        return [
            self._safely(m, self._apply_request_event, m.topic, m.partition, m.offset, event, now)
            for m, event in pending
        ]

    def handle_safely(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Output]:
        """`handle`, except that an unexpected error dead-letters the message, not the worker.

        Decoding has already accepted such a message, so the error is ours; the event is kept
        in the dead-letter topic (reason `processing_error`) to be replayed once fixed.
        """
        message = Received(topic, partition, offset, key, value)
        return self._safely(message, self.handle, *message)

    def _safely(
        self, m: MessageLike, work: Callable[..., list[Output]], *args: Any
    ) -> list[Output]:
        """`work(*args)` on behalf of message `m`; a failure dead-letters `m`."""
        try:
            return work(*args)
        except CalendarGapError as gap:
            # Never guessed: the event waits in the dead-letter topic until the year's
            # official schedule is in the policy, then it is replayed.
            log.error("calendar gap %s[%s] offset=%s: %s", m.topic, m.partition, m.offset, gap)
            error = DecodeError("calendar_gap", str(gap))
        except Exception as exc:
            log.exception("processing failed %s[%s] offset=%s", m.topic, m.partition, m.offset)
            error = DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
        self.metrics.dead_letters.labels(error.reason).inc()
        self._count(m.topic, "unknown", "dead_letter")
        record = dead_letter(m.topic, m.partition, m.offset, m.key, m.value, error, self.clock())
        dl_key = m.key.decode("utf-8", "replace") if m.key else ""
        return [Output(self.topics["deadletter"], dl_key, record)]

    def handle_batch(self, messages: Iterable[MessageLike]) -> list[Output]:
        """`handle_safely` for each message in order, with each request's events folded
        together and its state written once.

        Each partition is judged at its clock after the whole batch is read (a batch is
        judged as a whole: what it publishes is the difference between the projections
        before and after it). The messages are taken in event-time order across
        topic-partitions (`in_time_order`), and outputs come in that order. Between two
        ticks or account events (either may change what every request sees), a request's
        events are applied in one `Tracker.apply_many` call. The states are written before
        this returns (the caller sends their changelog records with the outputs). The
        open-SLA gauge and the counters are updated once per request and per series, at
        the end.
        """
        self._batch, self._dirty, self._before, self._tally = {}, set(), {}, Tally()
        self._contexts.clear()
        outputs: list[Output] = []
        ticks = self.topics["ticks"]
        # Read first: the clocks move with the whole batch.
        read: list[tuple[MessageLike, Event | DecodeError | None]] = []
        # Per topic-partition: the last message read and the latest event time read (the
        # clock is fed once per topic-partition of the batch, not once per message).
        reached: dict[tuple[str, int], tuple[MessageLike, datetime | None]] = {}
        wall = self.clock()
        for m in messages:
            if m.topic == ticks:
                read.append((m, None))
                continue
            event: Event | DecodeError
            try:
                decoded = decode_event(m.value, m.key)
                self._check_not_ahead(decoded, wall)
                event = decoded
            except DecodeError as error:
                event = error
            where = (m.topic, m.partition)
            latest = reached[where][1] if where in reached else None
            if not isinstance(event, DecodeError) and (latest is None or event.event_time > latest):
                latest = event.event_time
            reached[where] = (m, latest)
            read.append((m, event))
        if reached:
            at_s = self.monotonic()
            for (topic, partition), (last, latest) in reached.items():
                self._handled[(topic, partition)] = last.offset
                self._partition_clock(partition).read(topic, latest, at_s)
        read = in_time_order(read)
        nows = {p: self._judging_now(p) for p in {m.partition for m, _ in read}}
        # Since the last tick or account event: each message's outputs (None until its
        # request's events are applied) and each request's waiting events, by first arrival.
        slots: list[list[Output] | None] = []
        waiting: dict[str, list[tuple[int, MessageLike, Event]]] = {}

        def apply_waiting() -> None:
            for pending in waiting.values():
                now = nows[pending[0][1].partition]
                produced = self._apply_request_events(now, [(m, ev) for _, m, ev in pending])
                for (slot, _, _), out in zip(pending, produced, strict=True):
                    slots[slot] = out
            for slot_outputs in slots:
                assert slot_outputs is not None
                outputs.extend(slot_outputs)
            slots.clear()
            waiting.clear()

        try:
            for m, found in read:
                if found is None:  # a tick
                    apply_waiting()
                    outputs.extend(self._safely(m, self.sweep, m.partition, _where(m)))
                    continue
                if isinstance(found, DecodeError):
                    slots.append(self._rejected(*_fields(m), found))
                    continue
                if found.is_account_event:
                    apply_waiting()
                    work = self._apply_account_event
                    now = nows[m.partition]
                    outputs.extend(self._safely(m, work, m.topic, m.partition, found, now))
                    continue
                assert found.request_id is not None
                request = request_key(found.account_id, found.request_id)
                waiting.setdefault(request, []).append((len(slots), m, found))
                slots.append(None)
            apply_waiting()
        finally:
            batch, dirty, before, tally = self._batch, self._dirty, self._before, self._tally
            self._batch, self._dirty, self._before, self._tally = None, set(), {}, None
            gauge = self.metrics.open_slas
            for request in sorted(dirty):
                partition, state = batch[request]
                self._write(request, partition, state)
                gauge.update(partition, before.get(request), state)
            if tally is not None:
                self.metrics.add_tally(tally)
        return outputs

    def sweep(self, partition: int, tick: str | None = None) -> list[Output]:
        """Let time pass, to the partition's clock, for the requests on `partition` whose
        wake-up has come.

        :param tick: where the tick asking for this sweep was read. The requests it advanced
            are remembered with it (in the table, ahead of their states), so that the same
            tick read again after a crash publishes again what it produced: its state writes
            may have reached the changelog while its outputs never left.
        """
        clock = self.now_of(partition)
        now = clock if clock is not None else NOT_YET
        outputs: list[Output] = []
        memos: dict[str, list[str]] = {}
        if tick is not None:
            memos = self._tick_memos(partition)
            # If this tick is read again, what it produced may never have left.
            for key in memos.get(tick, ()):
                _, state = self._load(key)
                if state is not None:
                    again = self.tracker.redelivered_tick(state, tick, now)
                    outputs.extend(self._outputs(again, count=False, state=state))
        if clock is None:
            return outputs
        steps: list[tuple[int, RequestState, Step]] = []
        for key in self.index.pop_due(partition, now):
            stored_partition, state = self._load(key)
            if state is None or stored_partition is None:
                continue
            try:
                step = self.tracker.advance(state, now, delivery=tick)
            except CalendarGapError as gap:
                # Fail closed, loudly, and look again later: once the year's schedule is in
                # the policy (and the worker restarted), the request carries on.
                log.error("calendar gap for %s: %s", key, gap)
                self.metrics.dead_letters.labels("calendar_gap").inc()
                self.index.schedule(partition, key, now + SWEEP_RETRY)
                continue
            steps.append((stored_partition, state, step))
        swept = [step.state.key for _, _, step in steps if step.records]
        if tick is not None and swept:
            self._remember_tick(partition, memos, tick, swept)
        for stored_partition, state, step in steps:
            self._store(stored_partition, state, step.state)
            outputs.extend(self._outputs(step.records, state=step.state))
        return outputs

    def _tick_memos(self, partition: int) -> dict[str, list[str]]:
        """The latest ticks of `partition` that produced outputs: where each was read → the
        requests it advanced (oldest first)."""
        raw = self.requests.get(tick_memo_key(partition))
        return {where: keys for where, keys in raw["t"]} if raw is not None else {}

    def _remember_tick(
        self, partition: int, memos: dict[str, list[str]], tick: str, swept: list[str]
    ) -> None:
        # Written at once, ahead of the swept states (held to the batch's end), on the same
        # changelog partition: if any of them reached the changelog before a crash, so did
        # this, and the tick read again finds what to publish again.
        before = memos.pop(tick, [])
        keys = before + [key for key in swept if key not in before]
        kept = list(memos.items())[-(TICK_MEMOS - 1) :]
        entries = [[where, ks] for where, ks in kept] + [[tick, keys]]
        self._put_request(tick_memo_key(partition), partition, {"p": partition, "t": entries})

    def due_partitions(self, partitions: set[int]) -> list[int]:
        """Owned partitions with a wake-up at or before their clock."""
        due = []
        for p in sorted(partitions):
            wakeup = self.index.next_due(p)
            if wakeup is not None and (now := self.now_of(p)) is not None and wakeup <= now:
                due.append(p)
        return due

    def rebuild(self, partitions: set[int]) -> None:
        """Rebuild the due index and the open-SLA gauges from the table after recovery."""
        self.index = DueIndex()
        self.by_account = {}
        # A new assignment: what was handled and read before says nothing of it.
        self.clocks = {}
        self._handled = {}
        self.metrics.open_slas.reset(partitions)
        # One state decoded at a time: decoding the whole table at once would double the
        # worker's memory at its peak (and RSS rarely shrinks back).
        for key in list(self.requests):
            raw = self.requests.get(key)
            if raw is None or key.startswith(TICK_MEMO_PREFIX):
                continue
            partition = int(raw["p"])
            if partition not in partitions:
                continue
            # Only where its SLAs stand: its history is decoded when an event or a sweep
            # next needs it (decoding all of it here was 40 % of the rebuild).
            standing = RequestStanding.from_dict(raw["s"])
            self.index.schedule(partition, key, standing.next_wakeup)
            account_id = raw["s"]["account_id"]
            keys = self.by_account.get(account_id)
            if keys is None:
                keys = self.by_account[account_id] = set()
            keys.add(key)
            self.metrics.open_slas.add(partition, standing)
        log.info(
            "recovered %d requests, %d awaiting a deadline", len(self.requests), len(self.index)
        )
