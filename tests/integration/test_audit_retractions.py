"""Retractions in the audit store, on SQLite and a real PostgreSQL: the retracted record stays in
the log and the timeline, every figure counts the effective records only, in any arrival order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text

from greenlane.audit.api import create_api
from greenlane.audit.queries import AuditQueries, Window
from greenlane.audit.store import AuditStore, RequestRow, SlaInstanceRow
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sla.engine import Tracker
from greenlane.sla.records import (
    Attribution,
    Escalation,
    Retraction,
    SlaChange,
    retraction_id,
    stable_id,
)
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

pytestmark = pytest.mark.integration

FAULT = Path(__file__).parents[1] / "scenarios" / "fault.jsonl"
RESPOND = "GOV-1/TT-1/respond"
ON_SITE = "GOV-1/TT-1/on_site"


def replayed() -> list[SlaChange | Escalation]:
    events = [decode_event(line) for line in FAULT.read_bytes().splitlines() if line.strip()]
    out = []
    for record in replay(Tracker(load_policy(EXAMPLE_POLICY)), events):
        assert isinstance(record, SlaChange | Escalation)
        out.append(record)
    return out


RECORDS = replayed()
MET = next(
    r for r in RECORDS if isinstance(r, SlaChange) and r.sla_id == RESPOND and r.kind == "met"
)
# A breach the worker published and later found untrue (a late `responded` milestone).
FALSE_BREACH = dataclasses.replace(
    MET,
    change_id=stable_id(RESPOND, "breached", 1),
    kind="breached",
    due_at=MET.at,
    attribution=(Attribution("dispatch", "field-ops", 300),),
)


def retraction_of(record: SlaChange | Escalation) -> Retraction:
    is_change = isinstance(record, SlaChange)
    return Retraction(
        retraction_id=retraction_id(record.record_id),
        retracts=record.record_id,
        retracted_type="sla_change" if is_change else "escalation",
        sla_id=record.sla_id,
        account_id=record.account_id,
        request_id=record.request_id,
        target=record.target,
        reason="late_event",
        at=MET.at + timedelta(hours=1),
        kind=record.kind if isinstance(record, SlaChange) else str(record.rung),
    )


RETRACTION = retraction_of(FALSE_BREACH)


def wire(*records: Any) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


@pytest.fixture
def store(audit_url: str) -> Iterator[AuditStore]:
    s = AuditStore(audit_url)
    s.create_schema()
    yield s
    s.close()


def derived(store: AuditStore) -> dict[str, list[bytes]]:
    """The derived tables without their bookkeeping times."""
    out = {}
    for model in (SlaInstanceRow, RequestRow):
        table = model.__table__
        cols = [c for c in table.columns if c.name != "updated_at"]
        with store.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(*table.primary_key.columns)).all()
        out[table.name] = [orjson.dumps([str(v) for v in r]) for r in rows]
    return out


def outcome(store: AuditStore, sla_id: str) -> str | None:
    return store.sla_outcomes().get(sla_id, {}).get("outcome")


def important(store: AuditStore) -> dict[str, Any]:
    rows = AuditQueries(store.engine).compliance(Window(), ["tier"], "all").rows
    return next(r for r in rows if r["tier"] == "important")


def test_a_retracted_breach_is_kept_but_counts_as_met_everywhere(store: AuditStore) -> None:
    store.write(wire(*RECORDS))
    assert important(store)["breached"] == 0
    store.write(wire(FALSE_BREACH))
    queries = AuditQueries(store.engine)
    assert outcome(store, RESPOND) == "breached" and important(store)["breached"] == 1
    assert [r["sla_id"] for r in queries.breaches(Window()).rows] == [RESPOND]
    assert queries.departments(Window()).rows
    assert queries.accounts(as_of=MET.at + timedelta(days=1)).rows[0]["breached"] == 1

    assert store.write(wire(RETRACTION)) == 1
    assert outcome(store, RESPOND) == "met"
    figures = important(store)
    assert (figures["met"], figures["breached"], figures["attainment_pct"]) == (3, 0, 100.0)
    assert queries.breaches(Window()).rows == []
    assert queries.departments(Window()).rows == []
    assert queries.accounts(as_of=MET.at + timedelta(days=1)).rows[0]["breached"] == 0
    with store.engine.connect() as conn:  # the Grafana views read the effective figures too
        breached = conn.execute(text("SELECT sum(breached) FROM audit_compliance_monthly"))
        assert int(breached.scalar_one()) == 0
    # The log keeps what was said, and the correction.
    assert store.count("sla_changes") == sum(isinstance(r, SlaChange) for r in RECORDS) + 1
    assert store.count("retractions") == 1

    rows = queries.timeline("TT-1").rows
    breach = [r for r in rows if r["event"] == "breached"]
    assert len(breach) == 1 and breach[0]["retraction"] == "late_event"
    assert breach[0]["retracted_at"] is not None
    undo = [r for r in rows if r["record"] == "retraction"]
    assert len(undo) == 1 and undo[0]["event"] == "retracts breached"
    assert all(r["retracted_at"] is None for r in rows if r is not breach[0])


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([[RETRACTION], [FALSE_BREACH]], id="retraction-first"),
        pytest.param([[RETRACTION, FALSE_BREACH]], id="same-batch-retraction-first"),
        pytest.param([[FALSE_BREACH, RETRACTION]], id="same-batch-record-first"),
        pytest.param([[FALSE_BREACH], [RETRACTION]], id="record-first"),
    ],
)
def test_arrival_order_does_not_matter_and_redelivery_changes_nothing(
    store: AuditStore, audit_url: str, batches: list[list[Any]]
) -> None:
    store.write(wire(*RECORDS))
    untouched = derived(store)
    for batch in batches:
        store.write(wire(*batch))
    assert outcome(store, RESPOND) == "met"
    assert derived(store) == untouched
    # Redelivery of both (and of everything): nothing new, nothing changes.
    assert store.write(wire(FALSE_BREACH, RETRACTION)) == 0
    assert store.write(wire(*RECORDS, RETRACTION, FALSE_BREACH)) == 0
    assert store.count("retractions") == 1
    assert derived(store) == untouched


def test_a_retracted_rung_no_longer_counts_and_a_fully_retracted_sla_disappears(
    store: AuditStore,
) -> None:
    store.write(wire(*RECORDS))
    rung2 = next(
        r for r in RECORDS if isinstance(r, Escalation) and r.sla_id == ON_SITE and r.rung == 2
    )
    store.write(wire(retraction_of(rung2)))
    table = SlaInstanceRow.__table__
    with store.engine.connect() as conn:
        instance = conn.execute(select(table).where(table.c.sla_id == ON_SITE)).mappings().one()
    assert instance["rungs"] == [1] and instance["max_rung"] == 1
    timeline = AuditQueries(store.engine).timeline("TT-1").rows
    assert any(r["event"] == "retracts rung 2" for r in timeline)

    own = [r for r in RECORDS if r.sla_id == RESPOND]
    store.write(wire(*(retraction_of(r) for r in own)))
    assert RESPOND not in store.sla_outcomes()
    with store.engine.connect() as conn:
        slas = conn.execute(select(RequestRow.__table__.c.slas)).scalar_one()
    assert slas == 2
    store.rebuild_derived()  # a rebuild from the logs agrees
    assert RESPOND not in store.sla_outcomes()


def test_escalation_extras_are_stored(store: AuditStore) -> None:
    first = next(r for r in RECORDS if isinstance(r, Escalation))
    record = {**first.to_dict(), "cycle": 2, "quiet": True, "published_late_s": 40,
              "repeat": 1, "folded_rungs": [1]}  # fmt: skip
    store.write([record])
    (row,) = store.escalations_for("TT-1")
    assert (row["cycle"], row["quiet"], row["published_late_s"]) == (2, True, 40)
    assert (row["repeat"], row["folded_rungs"]) == (1, [1])


def test_the_api_timeline_shows_the_retraction(store: AuditStore) -> None:
    store.write(wire(*RECORDS, FALSE_BREACH, RETRACTION))

    async def go() -> dict[str, Any]:
        app = create_api(AuditQueries(store.engine), "t0ken")
        async with TestClient(TestServer(app)) as client:
            response = await client.get(
                "/api/v1/timeline/TT-1", headers={"Authorization": "Bearer t0ken"}
            )
            assert response.status == 200
            found: dict[str, Any] = orjson.loads(await response.read())
            return found

    body = asyncio.run(go())
    assert "retracted_at" in body["columns"]
    assert [i["record"] for i in body["items"]].count("retraction") == 1
    assert any(i["event"] == "breached" and i["retraction"] == "late_event" for i in body["items"])
