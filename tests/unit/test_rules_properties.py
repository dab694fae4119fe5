"""Hypothesis properties of the SLA rules over generated ticket and order lifecycles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker, apply_account, matching_sla, project
from greenlane.sla.records import Escalation, Record, Retraction, SlaChange
from greenlane.sla.state import AccountState, RequestState
from greenlane.streams.codec import Event, decode_event
from greenlane.streams.events import TIERS

# The rules are tested on 24x7 clocks, so expected instants are wall-clock arithmetic.
POLICY = load_policy(Path(__file__).parents[1] / "policies" / "clock-24x7.yaml")
T0 = datetime(2026, 9, 28, 2, 15, tzinfo=UTC)
ACCOUNT = "GOV-SZ-0042"
REQUEST = "REQ-1"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TICKET_STATES = (
    "acknowledged",
    "inProgress",
    "pending",
    "held",
    "resolved",
    "closed",
    "cancelled",
    "rejected",
)
ORDER_STATES = (
    "acknowledged",
    "inProgress",
    "pending",
    "held",
    "completed",
    "cancelled",
    "rejected",
    "failed",
)
MILESTONES = ("responded", "on_site", "restored")
STAGE_STATUSES = ("started", "completed", "blocked", "unblocked")
TERMINAL = ("met", "stopped", "cancelled")

Action = tuple[str, ...]  # ("state", s) | ("milestone", m) | ("stage", stage, status)


@dataclass(frozen=True)
class Story:
    """A request's lifecycle: created at T0, then actions after gaps (seconds)."""

    kind: str  # ticket | order
    what: str  # ticket category or order service
    tier: str | None  # None: the account is unknown
    steps: tuple[tuple[int, Action], ...]

    def events(self) -> list[Event]:
        """The decoded events, in strictly increasing event time."""
        out = [self._created()]
        at = T0
        for i, (gap, action) in enumerate(self.steps):
            at = at + timedelta(seconds=gap)
            out.append(self._event(f"e{i}", at, action))
        return out

    @property
    def account(self) -> AccountState | None:
        if self.tier is None:
            return None
        return apply_account(
            None,
            _decode(
                {
                    "event_id": "acct",
                    "event_type": "account.upserted",
                    "event_time": (T0 - timedelta(days=30)).isoformat(),
                    "account_id": ACCOUNT,
                    "data": {"name": "Key account", "tier": self.tier},
                }
            ),
        )

    def _created(self) -> Event:
        if self.kind == "ticket":
            data: dict[str, Any] = {"category": self.what, "severity": 1}
        else:
            data = {"service": self.what}
        return self._raw("c", f"{self.kind}.created", T0, data)

    def _event(self, event_id: str, at: datetime, action: Action) -> Event:
        if action[0] == "state":
            return self._raw(event_id, f"{self.kind}.state_changed", at, {"state": action[1]})
        if action[0] == "milestone":
            return self._raw(event_id, "ticket.milestone", at, {"name": action[1]})
        stage, status = action[1], action[2]
        data = {"stage": stage, "status": status, "department": POLICY.stages[stage].department}
        return self._raw(event_id, "provisioning.stage_changed", at, data)

    def _raw(self, event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> Event:
        return _decode(
            {
                "event_id": event_id,
                "event_type": event_type,
                "event_time": at.isoformat(),
                "account_id": ACCOUNT,
                "request_id": REQUEST,
                "data": data,
            }
        )


def _decode(raw: dict[str, Any]) -> Event:
    return decode_event(orjson.dumps(raw), key=raw["account_id"])


def _actions(kind: str, *, pause: bool = True) -> st.SearchStrategy[Action]:
    if kind == "ticket":
        states = [s for s in TICKET_STATES if pause or s != "pending"]
        return st.one_of(
            st.tuples(st.just("state"), st.sampled_from(states)),
            st.tuples(st.just("milestone"), st.sampled_from(MILESTONES)),
        )
    states = [s for s in ORDER_STATES if pause or s != "pending"]
    return st.one_of(
        st.tuples(st.just("state"), st.sampled_from(states)),
        st.tuples(
            st.just("stage"),
            st.sampled_from(POLICY.stage_order),
            st.sampled_from(STAGE_STATUSES),
        ),
    )


@st.composite
def stories(draw: st.DrawFn, *, pause: bool = True, max_steps: int = 7) -> Story:
    kind = draw(st.sampled_from(["ticket", "order"]))
    if kind == "ticket":
        what = draw(st.sampled_from(["fault", "complaint"]))
        gaps = st.integers(1, 3 * 3600)  # seconds: budgets are minutes to hours
    else:
        what = draw(st.sampled_from(["dedicated_line.new", "internet.new"]))
        gaps = st.integers(60, 3 * 86400)  # budgets are days
    tier = draw(st.none() | st.sampled_from(TIERS))
    steps = draw(st.lists(st.tuples(gaps, _actions(kind, pause=pause)), max_size=max_steps))
    return Story(kind, what, tier, tuple(steps))


# -- driving ----------------------------------------------------------------------------


class Run:
    """A fresh tracker on one story; collects what it emits and when."""

    def __init__(self, story: Story) -> None:
        self.tracker = Tracker(POLICY)
        self.account = story.account
        self.state: RequestState | None = None
        self.records: list[Record] = []
        self.emitted_at: list[datetime] = []

    def apply(self, ev: Event, now: datetime) -> tuple[Record, ...]:
        step = self.tracker.apply(self.state, ev, self.account, now)
        self.state = step.state
        self._keep(step.records, max(now, ev.event_time))
        return step.records

    def advance(self, now: datetime) -> tuple[Record, ...]:
        assert self.state is not None
        step = self.tracker.advance(self.state, now)
        self.state = step.state
        self._keep(step.records, now)
        return step.records

    def _keep(self, records: tuple[Record, ...], now: datetime) -> None:
        self.records.extend(records)
        self.emitted_at.extend([now] * len(records))

    def by_id(self) -> dict[str, dict[str, Any]]:
        out = {r.record_id: r.to_dict() for r in self.records}
        assert len(out) == len(self.records), "a record id was emitted twice"
        return out


def _in_order(story: Story, extra: timedelta) -> tuple[Run, datetime]:
    run = Run(story)
    events = story.events()
    for ev in events:
        run.apply(ev, ev.event_time)
    final = events[-1].event_time + extra
    run.advance(final)
    return run, final


def _changes(records: list[Record], sla_id: str) -> list[SlaChange]:
    return [r for r in records if isinstance(r, SlaChange) and r.sla_id == sla_id]


_extra = st.integers(0, 40 * 86400).map(lambda s: timedelta(seconds=s))


# -- duplicates ---------------------------------------------------------------------------


@SETTINGS
@given(stories(), st.data())
def test_a_duplicate_changes_nothing(story: Story, data: st.DataObject) -> None:
    events = story.events()
    k = data.draw(st.integers(1, len(events)), label="fed before the duplicate")
    again = data.draw(st.integers(0, k - 1), label="which event comes again")
    later = data.draw(_extra, label="how much later")

    plain, dup = Run(story), Run(story)
    for i, ev in enumerate(events):
        plain.apply(ev, ev.event_time)
        dup.apply(ev, ev.event_time)
        if i == k - 1:
            before = dup.state
            assert before is not None
            step = dup.tracker.apply(
                before, events[again], dup.account, events[k - 1].event_time + later
            )
            assert step.duplicate
            assert step.records == ()
            assert step.state == before
            # what the state projects is unchanged too
            now = events[k - 1].event_time + later
            assert project(step.state, POLICY, now) == project(before, POLICY, now)
    final = events[-1].event_time + later
    plain.advance(final)
    dup.advance(final)
    assert dup.by_id() == plain.by_id()
    assert dup.state == plain.state


# -- reordering ---------------------------------------------------------------------------


def _feed_all_before_the_clock_moves(
    story: Story, order: list[int], final: datetime
) -> tuple[Run, list[Event]]:
    events = story.events()
    run = Run(story)
    now = min(ev.event_time for ev in events)
    for i in order:
        run.apply(events[i], now)
    run.advance(final)
    return run, events


# A fault ticket answered at +5 min and resolved at +1 h, the resolution delivered first.
_LATE_RESPONSE = Story(
    "ticket",
    "fault",
    "important",
    ((300, ("milestone", "responded")), (3300, ("state", "resolved"))),
)


@SETTINGS
@example(_LATE_RESPONSE, [0, 2, 1], timedelta(days=1))
@given(
    st.shared(stories(), key="reorder"),
    st.shared(stories(), key="reorder").flatmap(lambda s: st.permutations(range(len(s.steps) + 1))),
    _extra,
)
def test_reordering_before_the_clock_moves_gives_the_same_records(
    story: Story, order: list[int], extra: timedelta
) -> None:
    """Delivery order does not matter as long as the clock has not moved.

    The guarantee: every event is applied with `now` equal to the earliest event time,
    then time advances once to a final `now`; any permutation of the events then yields
    exactly the records (same ids, same content) of delivering them in event-time order.
    Late events are folded in where they belong; records already published for an
    earlier clock are never retracted (so once the clock has moved, a late event can
    only add records).
    """
    final = story.events()[-1].event_time + extra
    in_order, _ = _feed_all_before_the_clock_moves(story, sorted(order), final)
    shuffled, _ = _feed_all_before_the_clock_moves(story, order, final)
    assert shuffled.by_id() == in_order.by_id()


@SETTINGS
@given(
    st.shared(stories(), key="reorder-weak"),
    st.shared(stories(), key="reorder-weak").flatmap(
        lambda s: st.permutations(range(len(s.steps) + 1))
    ),
    _extra,
)
def test_reordering_converges_on_the_same_projection(
    story: Story, order: list[int], extra: timedelta
) -> None:
    """Under any delivery order the final state and projection converge.

    The final state and its projection are the same; every record of the in-order feed
    is also published by the shuffled feed, and the in-order feed publishes exactly the
    final projection.
    """
    final = story.events()[-1].event_time + extra
    in_order, _ = _feed_all_before_the_clock_moves(story, sorted(order), final)
    shuffled, _ = _feed_all_before_the_clock_moves(story, order, final)
    assert in_order.state is not None and shuffled.state is not None
    assert shuffled.state.history == in_order.state.history
    assert shuffled.state.info == in_order.state.info
    p_in = project(in_order.state, POLICY, final)
    p_sh = project(shuffled.state, POLICY, final)
    assert p_sh == p_in
    assert in_order.by_id() == {r.record_id: r.to_dict() for r in p_in.records}
    assert set(in_order.by_id()) <= set(shuffled.by_id())
    assert shuffled.state.emitted >= in_order.state.emitted


# -- pausing never shortens an SLA --------------------------------------------------------


@st.composite
def paused_stories(draw: st.DrawFn) -> tuple[Story, Story]:
    """A story without pauses, and the same story with one pending → resume pair inserted.

    The pair sits strictly inside one gap, so no other event falls inside the pause. It is
    not put after a `resolved`/`closed` ticket state: that would be a reopen (see
    test_only_a_move_back_to_in_progress_reopens).
    """
    base = draw(stories(pause=False))
    closing = ("resolved", "closed") if base.kind == "ticket" else ()
    last_state: str | None = None
    allowed: list[int] = []
    for i in range(len(base.steps) + 1):
        if last_state not in closing:
            allowed.append(i)
        if i < len(base.steps) and base.steps[i][1][0] == "state":
            last_state = base.steps[i][1][1]

    def room(i: int) -> int:  # the gap before the next step, or plenty after the last one
        return base.steps[i][0] if i < len(base.steps) else 5 * 86400

    candidates = [i for i in allowed if room(i) >= 3]
    if not candidates:
        reject()
    at = draw(st.sampled_from(candidates), label="insert the pause after this many steps")
    lead = draw(st.integers(1, room(at) - 2), label="pause starts after")
    length = draw(st.integers(1, room(at) - 1 - lead), label="pause length")
    resume = draw(st.sampled_from(["acknowledged", "inProgress", "held"]))
    steps = list(base.steps)
    inserted = [(lead, ("state", "pending")), (length, ("state", resume))]
    if at < len(steps):
        gap, action = steps[at]
        steps[at] = (gap - lead - length, action)
    steps[at:at] = inserted
    return base, Story(base.kind, base.what, base.tier, tuple(steps))


def _last_due(changes: list[SlaChange]) -> datetime | None:
    dues = [c.due_at for c in changes if c.due_at is not None]
    return dues[-1] if dues else None


@SETTINGS
@given(paused_stories(), _extra)
def test_pausing_never_shortens_an_sla(pair: tuple[Story, Story], extra: timedelta) -> None:
    base, paused = pair
    # the same instants, apart from the two inserted events
    base_times = {ev.event_time for ev in base.events()}
    assert base_times <= {ev.event_time for ev in paused.events()}
    final = max(ev.event_time for ev in paused.events()) + extra
    plain, _ = _in_order(base, final - base.events()[-1].event_time)
    held, _ = _in_order(paused, final - paused.events()[-1].event_time)

    h_events = paused.events()
    k = next(i for i, ev in enumerate(h_events) if getattr(ev.data, "state", None) == "pending")
    resume_at = h_events[k + 1].event_time
    pause_len = int((resume_at - h_events[k].event_time).total_seconds())
    sla_ids = {r.sla_id for r in held.records}
    assert sla_ids == {r.sla_id for r in plain.records}
    for sla_id in sla_ids:
        p_changes, h_changes = _changes(plain.records, sla_id), _changes(held.records, sla_id)
        started = next(c for c in h_changes if c.kind == "started")
        assert started == next(c for c in p_changes if c.kind == "started")
        assert started.due_at is not None
        breached = False
        for prev, c in pairwise(h_changes):
            breached = breached or prev.kind == "breached"
            if c.kind == "resumed":
                assert c.due_at is not None and c.due_at >= started.due_at
                # only the inserted pair can pause: it resumes at `resume_at`, after `pause_len`
                assert prev.kind == "paused"
                assert c.at == resume_at
                assert c.paused_s == prev.paused_s + pause_len
                if not breached:  # (after a breach see test_due_stays_put_after_a_breach)
                    # every clock of the example policy is 24x7: the shift is the paused time
                    assert prev.due_at is not None
                    assert c.due_at == prev.due_at + timedelta(seconds=pause_len)
        # still open in both: the paused run's due is not earlier
        if p_changes[-1].kind not in TERMINAL and h_changes[-1].kind not in TERMINAL:
            h_due, p_due = _last_due(h_changes), _last_due(p_changes)
            assert h_due is not None and p_due is not None
            assert h_due >= p_due
        # a pause never turns a met SLA into a breach, nor brings a breach forward
        h_breach = [c for c in h_changes if c.kind == "breached"]
        p_breach = [c for c in p_changes if c.kind == "breached"]
        if h_breach:
            assert p_breach, f"{sla_id}: breached only because of a pause"
            assert h_breach[0].at >= p_breach[0].at
        # likewise for every rung
        p_rungs = {
            r.rung: r.fire_at
            for r in plain.records
            if isinstance(r, Escalation) and r.sla_id == sla_id
        }
        for r in held.records:
            if isinstance(r, Escalation) and r.sla_id == sla_id:
                assert r.rung in p_rungs
                assert r.fire_at >= p_rungs[r.rung]


# -- a stopped SLA stays quiet -------------------------------------------------------------


@SETTINGS
@given(stories(), st.lists(_extra, min_size=1, max_size=5))
def test_a_stopped_sla_never_breaches_or_escalates_later(
    story: Story, extras: list[timedelta]
) -> None:
    run = Run(story)
    events = story.events()
    for ev in events:
        run.apply(ev, ev.event_time)
    last = events[-1].event_time
    settled = {
        sla_id
        for sla_id in {r.sla_id for r in run.records}
        if _changes(run.records, sla_id)[-1].kind in ("met", "cancelled", "stopped")
    }
    assert run.state is not None
    for extra in sorted(extras):
        for r in run.advance(last + extra + timedelta(days=365)):
            assert r.sla_id not in settled, r
    # Throughout the history: after met/cancelled, nothing but a reopen.
    for sla_id in {r.sla_id for r in run.records}:
        closed = False
        for r in run.records:
            if r.sla_id != sla_id:
                continue
            if isinstance(r, SlaChange) and r.kind in ("met", "cancelled"):
                closed = True
            elif isinstance(r, SlaChange) and r.kind == "reopened":
                closed = False
            elif closed:
                raise AssertionError(f"{r} after {sla_id} was settled")


# -- rungs fire once, in order, never early ---------------------------------------------------


@SETTINGS
@given(
    stories(),
    st.lists(st.integers(0, 6 * 3600), max_size=6),
    st.lists(st.integers(0, 2 * 86400), min_size=1, max_size=12),
)
def test_each_rung_fires_at_most_once(story: Story, lags: list[int], ticks: list[int]) -> None:
    run = Run(story)
    events = story.events()
    for i, ev in enumerate(events):
        lag = lags[i % len(lags)] if lags else 0
        run.apply(ev, ev.event_time + timedelta(seconds=lag))
    now = max(run.emitted_at, default=events[-1].event_time)
    now = max(now, events[-1].event_time)
    for tick in ticks:
        now = now + timedelta(seconds=tick)
        for _ in range(2):
            run.advance(now)
    # Events read late are truly late facts: a rung may be retracted (a pause read late put
    # it off) and fire again later. What stands counts: each rung and breach at most once.
    retracted = {r.retracts for r in run.records if isinstance(r, Retraction)}
    escalations = [
        (r, at)
        for r, at in zip(run.records, run.emitted_at, strict=True)
        if isinstance(r, Escalation) and r.escalation_id not in retracted
    ]
    counts = Counter((r.sla_id, r.rung) for r, _ in escalations)
    assert all(n == 1 for n in counts.values()), counts
    breaches = Counter(
        r.sla_id
        for r in run.records
        if isinstance(r, SlaChange) and r.kind == "breached" and r.change_id not in retracted
    )
    assert all(n == 1 for n in breaches.values()), breaches
    ladder = POLICY.ladders["default"]
    for sla_id in {r.sla_id for r, _ in escalations}:
        mine = [(r, at) for r, at in escalations if r.sla_id == sla_id]
        assert [r.rung for r, _ in mine] == sorted(r.rung for r, _ in mine)
        for r, emitted in mine:
            assert r.fire_at <= emitted  # never early
            assert r.roles == ladder[r.rung - 1].roles
    run.by_id()  # ids unique


# -- a breach happens when the budget is used up ----------------------------------------------


@SETTINGS
@given(stories(), _extra)
def test_breach_elapsed_equals_the_budget(story: Story, extra: timedelta) -> None:
    run, _ = _in_order(story, extra + timedelta(days=20))
    assert run.state is not None and run.state.info is not None
    tier = run.state.info.tier
    assert tier == (story.tier or POLICY.default_tier)
    sla = matching_sla(POLICY, run.state.info)
    assert sla is not None
    budgets = {t.name: t.budget.for_tier(tier).seconds for t in sla.targets}
    for r in run.records:
        if isinstance(r, SlaChange) and r.kind == "breached":
            assert r.elapsed_s == budgets[r.target]
            assert r.due_at == r.at
            assert r.attribution is not None
        if isinstance(r, Escalation):
            rung = POLICY.ladders[sla.ladder][r.rung - 1]
            assert rung.fraction * budgets[r.target] > 0


# -- folds kept between events ------------------------------------------------------------


@SETTINGS
@given(
    st.shared(stories(), key="checkpoints"),
    st.shared(stories(), key="checkpoints").flatmap(
        lambda s: st.permutations(range(len(s.steps) + 1))
    ),
    st.lists(st.integers(-2 * 86400, 3 * 86400), min_size=8, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_keeping_folds_between_events_changes_nothing(
    story: Story, order: list[int], lags: list[int], ticks: list[bool]
) -> None:
    """A tracker that goes on from its in-memory folds publishes exactly what one that
    refolds every request's whole history does, step by step, whatever the delivery order
    and even when the clock goes back (another worker's clock, a late event)."""
    events = story.events()
    kept, fresh = Tracker(POLICY), Tracker(POLICY, checkpoints=0)
    a: RequestState | None = None
    b: RequestState | None = None
    for n, i in enumerate(order):
        now = events[i].event_time + timedelta(seconds=lags[n % len(lags)])
        step_a = kept.apply(a, events[i], story.account, now)
        step_b = fresh.apply(b, events[i], story.account, now)
        assert step_a.records == step_b.records
        assert step_a.state == step_b.state
        a, b = step_a.state, step_b.state
        if ticks[n % len(ticks)]:
            later = now + timedelta(hours=n + 1)
            tick_a, tick_b = kept.advance(a, later), fresh.advance(b, later)
            assert tick_a.records == tick_b.records
            assert tick_a.state == tick_b.state
            a, b = tick_a.state, tick_b.state


# -- the wake-up ---------------------------------------------------------------------------

EXAMPLE = load_policy(EXAMPLE_POLICY)


@SETTINGS
@given(stories(), st.integers(0, 20 * 86400), st.sampled_from(["24x7", "example"]))
def test_nothing_changes_before_the_next_wakeup(story: Story, lag: int, which: str) -> None:
    """Time alone changes nothing before a request's next wake-up (a late wake-up would
    miss a deadline), and a request with none is never changed by time again. Run on
    24x7 clocks and on the example policy's working calendars (nights, weekends, 调休)."""
    policy = POLICY if which == "24x7" else EXAMPLE
    tracker = Tracker(policy)
    events = story.events()
    now = events[-1].event_time + timedelta(seconds=lag)
    state: RequestState | None = None
    for ev in events:  # live: each event as it happens, then time passes to `now`
        state = tracker.apply(state, ev, story.account, ev.event_time).state
    assert state is not None
    state = tracker.advance(state, now).state
    wakeup = state.next_wakeup
    assert wakeup is None or wakeup > now
    quiet = (wakeup - timedelta(seconds=1)) if wakeup is not None else now + timedelta(days=60)
    later = Tracker(policy).advance(state, quiet)  # a fresh tracker refolds from scratch
    assert later.records == ()
    assert later.state.snapshots == state.snapshots
    if wakeup is not None and not any(s.predicted for s in state.snapshots):
        # ... and something does change at the wake-up: a rung, the breach, or at-risk.
        woken = tracker.advance(state, wakeup)
        assert woken.records or woken.state.snapshots != state.snapshots
