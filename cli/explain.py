"""`greenlane policy explain`: why a request's due times and rungs are what they are."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from greenlane.config.loader import load_policy
from greenlane.sla.engine import Tracker, apply_account
from greenlane.sla.explain import Explanation, explain
from greenlane.sla.state import AccountState, RequestState
from greenlane.streams.codec import DecodeError, decode_event

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _local(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S %a") if moment else "-"


def _hours(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def build_explanation(
    request_id: str, events_path: Path, policy_path: Path, until: datetime | None
) -> Explanation | None:
    """Replay the request's events (and every account's) and explain it at `until`."""
    events = []
    for line in events_path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except DecodeError:
            continue  # `greenlane replay` reports bad lines; explain looks at the good ones
    events.sort(key=lambda e: e.event_time)
    policy = load_policy(policy_path)
    tracker = Tracker(policy)
    accounts: dict[str, AccountState] = {}
    state: RequestState | None = None
    for event in events:
        if event.is_account_event:
            accounts[event.account_id] = apply_account(accounts.get(event.account_id), event)
        elif event.request_id == request_id:
            state = tracker.apply(
                state, event, accounts.get(event.account_id), event.event_time, accounts.get
            ).state
    if state is None:
        return None
    end = until or max(e.at for e in state.history)
    return explain(state, policy, end, tracker.calendars)


def render(explanation: Explanation, console: Console) -> None:
    """Print an explanation for an operator (times in Asia/Shanghai)."""
    e = explanation
    console.print(
        f"[bold]{e.request_id}[/bold] of {e.account_id}: tier {e.tier} ({e.tier_source}),"
        f" SLA {e.sla or 'none matches'}, policy {e.policy_version}"
    )
    for t in e.targets:
        table = Table(title=f"{t.target} — {t.outcome}", show_header=False, title_justify="left")
        table.add_row("calendar", t.calendar)
        table.add_row("budget", t.budget)
        table.add_row("started", _local(t.started_at))
        table.add_row("due when started", _local(t.first_due_at))
        table.add_row("due now", _local(t.due_at))
        table.add_row("business time used", _hours(t.elapsed_s))
        table.add_row("paused (customer)", _hours(t.paused_s))
        table.add_row("held (our shortfall)", _hours(t.held_s))
        for start, end, reason in t.pauses:
            table.add_row("pause", f"{_local(start)} → {_local(end)}  {reason or ''}")
        for day, why in t.days_off:
            table.add_row("not counted" if "make-up" not in why else "counted", f"{day}  {why}")
        for rung, fire_at, roles, folded in t.rungs:
            extra = f"  (with rungs {', '.join(map(str, folded))})" if folded else ""
            table.add_row(f"rung {rung}", f"{_local(fire_at)}  → {', '.join(roles)}{extra}")
        for stage, department, over in t.attribution:
            table.add_row("held up by", f"{stage} / {department}: {_hours(over)} over budget")
        console.print(table)
