"""The audit writer and queries on records replayed through the real rules (SQLite and PostgreSQL).

The scenario: the simulator's key accounts, backlog and two weeks of traffic, replayed with the
example policy (`sla.replay`), with each escalation carrying its account's context as the worker
adds it. Every expected figure is computed here from the raw records, not by the code under test.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from greenlane.audit.api import create_api
from greenlane.audit.queries import AuditQueries, Window
from greenlane.audit.report import write_report
from greenlane.audit.settings import AuditSettings
from greenlane.audit.store import AccountRow, AuditStore, RequestRow, SlaInstanceRow
from greenlane.config.loader import load_policy
from greenlane.config.settings import EXAMPLE_POLICY
from greenlane.sim.traffic import SHANGHAI, Simulator
from greenlane.sla.engine import Tracker
from greenlane.sla.replay import replay
from greenlane.streams.codec import decode_event

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 8, 9, 0, tzinfo=SHANGHAI)
END = datetime(2026, 10, 22, 0, 0, tzinfo=SHANGHAI)
AS_OF = datetime(2026, 10, 23, 0, 0, tzinfo=SHANGHAI)
TOKEN = "s3cret-token"


@cache
def scenario() -> tuple[dict[str, Any], ...]:
    sim = Simulator(seed=5, now=NOW, accounts=12, requests_per_minute=0.01)
    events = sim.accounts() + sim.backlog() + sim.advance(END)
    contexts = {
        e["account_id"]: {k: e["data"].get(k) for k in ("name", "tier", "region", "industry")}
        for e in events
        if e["event_type"] == "account.upserted"
    }
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    out = []
    for record in replay(Tracker(load_policy(EXAMPLE_POLICY)), decoded, END):
        value = record.to_dict()
        if value["record_type"] == "escalation":
            value["account"] = contexts.get(value["account_id"])
        out.append(value)
    return tuple(out)


# -- independent expectations ---------------------------------------------------------------
def expected_slas() -> dict[str, dict[str, Any]]:
    """Per SLA: outcome, start, breach, attribution and rungs, straight from the records."""
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"changes": [], "rungs": set()})
    for r in scenario():
        entry = per[r["sla_id"]]
        entry.update(tier=r["tier"], account_id=r["account_id"], service=r["service"])
        if r["record_type"] == "escalation":
            entry["rungs"].add(r["rung"])
        else:
            entry["changes"].append(r)
    out = {}
    for sla_id, entry in per.items():
        changes = sorted(entry["changes"], key=lambda c: datetime.fromisoformat(c["at"]))
        kinds = [c["kind"] for c in changes]
        breaches = [c for c in changes if c["kind"] == "breached"]
        if breaches:
            outcome = "breached"
        elif kinds and kinds[-1] in ("met", "cancelled"):
            outcome = kinds[-1]
        else:
            outcome = "open"
        starts = [datetime.fromisoformat(c["at"]) for c in changes if c["kind"] == "started"]
        out[sla_id] = {
            **entry,
            "outcome": outcome,
            "started": min(starts) if starts else None,
            "breached": datetime.fromisoformat(breaches[0]["at"]) if breaches else None,
            "attribution": breaches[-1].get("attribution", []) if breaches else None,
        }
    return out


def month_of(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m")


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def store(audit_url: str) -> Iterator[AuditStore]:
    s = AuditStore(audit_url)
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
def loaded(store: AuditStore) -> AuditStore:
    records = list(scenario())
    for start in range(0, len(records), 400):
        store.write(records[start : start + 400])
    return store


def derived(store: AuditStore) -> dict[str, list[tuple[Any, ...]]]:
    """The derived tables without their bookkeeping times."""
    out = {}
    for model in (SlaInstanceRow, RequestRow, AccountRow):
        table = model.__table__
        cols = [c for c in table.columns if c.name != "updated_at"]
        with store.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(*table.primary_key.columns)).all()
        out[table.name] = [tuple(orjson.dumps(v, default=str) for v in r) for r in rows]
    return out


# -- the writer -----------------------------------------------------------------------------
def test_replays_and_out_of_order_batches_give_the_same_tables(
    loaded: AuditStore, audit_url: str
) -> None:
    records = list(scenario())
    reference = derived(loaded)
    counts = {t: loaded.count(t) for t in ("sla_changes", "escalations")}
    assert counts["sla_changes"] + counts["escalations"] == len(records)
    assert len(reference["sla_instances"]) == len(expected_slas())
    assert loaded.write(records) == 0  # a whole replay: nothing new
    assert derived(loaded) == reference

    other = (
        AuditStore(audit_url.replace("audit.db", "shuffled.db")) if "sqlite" in audit_url else None
    )
    target = other or loaded
    if other is None:  # PostgreSQL: empty this database and reload it shuffled
        with loaded.engine.begin() as conn:
            for model in (SlaInstanceRow, RequestRow, AccountRow):
                conn.execute(model.__table__.delete())
            conn.exec_driver_sql("DELETE FROM sla_changes")
            conn.exec_driver_sql("DELETE FROM escalations")
    try:
        target.create_schema()
        shuffled = records[:]
        random.Random(42).shuffle(shuffled)
        for start in range(0, len(shuffled), 97):
            batch = shuffled[start : start + 97]
            target.write(batch + batch[:5])  # with repeats inside the batch, too
        for start in range(0, len(shuffled), 301):  # and a redelivery of everything
            target.write(shuffled[start : start + 301])
        assert derived(target) == reference
    finally:
        if other is not None:
            other.close()


# -- queries --------------------------------------------------------------------------------
def test_compliance_by_tier_and_month(loaded: AuditStore) -> None:
    expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for sla in expected_slas().values():
        if sla["started"] is not None:
            expected[(month_of(sla["started"]), sla["tier"])][sla["outcome"]] += 1
    result = AuditQueries(loaded.engine).compliance(by=["tier"], period="month")
    got = {(r["period"], r["tier"]): r for r in result.rows}
    assert set(got) == set(expected)
    for key, c in expected.items():
        row = got[key]
        assert (row["met"], row["breached"], row["cancelled"], row["open"]) == (
            c["met"], c["breached"], c["cancelled"], c["open"],
        )  # fmt: skip
        judged = c["met"] + c["breached"]
        assert row["attainment_pct"] == (round(100 * c["met"] / judged, 2) if judged else None)
    assert sum(r["breached"] for r in result.rows) > 0 and sum(r["met"] for r in result.rows) > 0


def test_compliance_by_region_and_day_uses_account_context(loaded: AuditStore) -> None:
    regions = {
        r["account_id"]: r["account"]["region"]
        for r in scenario()
        if r["record_type"] == "escalation" and r.get("account")
    }
    expected: Counter[tuple[str, str]] = Counter()
    for sla in expected_slas().values():
        if sla["started"] is not None:
            day = sla["started"].astimezone(ZONE).date().isoformat()
            expected[(day, regions.get(sla["account_id"], "-"))] += 1
    result = AuditQueries(loaded.engine).compliance(by=["region"], period="day")
    assert {(r["period"], r["region"]): r["slas"] for r in result.rows} == dict(expected)


def test_breaches_with_due_lateness_rungs_and_attribution(loaded: AuditStore) -> None:
    slas = expected_slas()
    window = Window.parse(month="2026-10")
    result = AuditQueries(loaded.engine).breaches(window, as_of=AS_OF)
    want = {
        s
        for s, v in slas.items()
        if v["breached"] is not None and month_of(v["breached"]) == "2026-10"
    }
    assert {r["sla_id"] for r in result.rows} == want
    for row in result.rows:
        sla = slas[row["sla_id"]]
        assert row["rungs"] == sorted(sla["rungs"])
        assert datetime.fromisoformat(row["breached_at"]) == sla["breached"]
        assert (
            row["late_s"]
            >= (sla["breached"] - datetime.fromisoformat(row["due_at"])).total_seconds()
        )
        if sla["attribution"]:
            top = max(sla["attribution"], key=lambda a: a["over_budget_s"])
            assert (row["stage"], row["department"]) == (top["stage"], top["department"])
        else:
            assert row["stage"] is None


def test_department_scorecard(loaded: AuditStore) -> None:
    expected: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for sla in expected_slas().values():
        for a in sla["attribution"] or []:
            cell = expected[(month_of(sla["breached"]), a["department"], a["stage"])]
            cell[0] += 1
            cell[1] += a["over_budget_s"]
    result = AuditQueries(loaded.engine).departments()
    got = {
        (r["month"], r["department"], r["stage"]): [r["breaches"], r["over_budget_s"]]
        for r in result.rows
    }
    assert got == dict(expected) and got


def test_account_health_flags_churn_risk(loaded: AuditStore) -> None:
    settings = AuditSettings(churn_threshold=2.0, near_miss_rung=2, near_miss_weight=0.5)
    start = AS_OF - timedelta(days=30)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for sla in expected_slas().values():
        if sla["started"] is None or not start <= sla["started"] < AS_OF:
            continue
        per[sla["account_id"]]["slas"] += 1
        per[sla["account_id"]][sla["outcome"]] += 1
        if sla["outcome"] == "met" and max(sla["rungs"], default=0) >= 2:
            per[sla["account_id"]]["near"] += 1
    result = AuditQueries(loaded.engine, settings).accounts(as_of=AS_OF, window_days=30)
    assert {r["account_id"] for r in result.rows} == set(per)
    for row in result.rows:
        c = per[row["account_id"]]
        assert (row["slas"], row["breached"], row["near_misses"]) == (
            c["slas"],
            c["breached"],
            c["near"],
        )
        assert row["churn_risk"] == (c["breached"] + 0.5 * c["near"] >= 2.0)
        assert row["name"]  # from the account context the escalations carried
    scores = [r["risk_score"] for r in result.rows]
    assert scores == sorted(scores, reverse=True) and any(r["churn_risk"] for r in result.rows)


def test_timeline_of_one_request_in_order(loaded: AuditStore) -> None:
    seeds_case = "ORD-2026-000123"  # the seeds' order: every rung fired, survey held it up
    own = [r for r in scenario() if r["request_id"] == seeds_case]
    result = AuditQueries(loaded.engine).timeline(seeds_case)
    assert len(result.rows) == len(own)
    assert [r["record"] for r in result.rows].count("escalation") == sum(
        1 for r in own if r["record_type"] == "escalation"
    )
    times = [datetime.fromisoformat(r["at"]) for r in result.rows]
    assert times == sorted(times)
    assert result.rows[0]["event"] == "started"
    assert any(r["event"] == "breached" for r in result.rows)


# -- HTTP API -------------------------------------------------------------------------------
def _api_call(store: AuditStore, path: str, token: str | None) -> tuple[int, str, dict[str, str]]:
    async def go() -> tuple[int, str, dict[str, str]]:
        app = create_api(AuditQueries(store.engine, AuditSettings(page_size=5)), TOKEN)
        async with TestClient(TestServer(app)) as client:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            response = await client.get(path, headers=headers)
            return response.status, await response.text(), dict(response.headers)

    return asyncio.run(go())


def test_api_rejects_a_missing_or_wrong_token(loaded: AuditStore) -> None:
    for token in (None, "wrong", ""):
        status, body, headers = _api_call(loaded, "/api/v1/compliance", token)
        assert status == 401, token
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in body
    assert _api_call(loaded, "/healthz", None)[0] == 200


def test_api_json_pages_and_csv_export(loaded: AuditStore) -> None:
    status, body, _ = _api_call(loaded, "/api/v1/breaches?month=2026-10&limit=3&offset=2", TOKEN)
    assert status == 200
    page = orjson.loads(body)
    total = len(AuditQueries(loaded.engine).breaches(Window.parse(month="2026-10")).rows)
    assert page["total"] == total and len(page["items"]) == min(3, total - 2)
    assert page["offset"] == 2 and "offset=5" in page["next"]

    status, body, headers = _api_call(loaded, "/api/v1/departments?format=csv&limit=1000", TOKEN)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["month", "department", "stage", "breaches", "over_budget_s", "over_budget_h"]
    assert (
        len(rows) - 1
        == int(headers["X-Total-Count"])
        == len(AuditQueries(loaded.engine).departments().rows)
    )

    status, body, _ = _api_call(
        loaded, "/api/v1/timeline/ORD-2026-000123?format=csv&limit=1000", TOKEN
    )
    assert status == 200 and body.startswith("at,record,account_id,target,event")
    assert _api_call(loaded, "/api/v1/compliance?period=fortnight", TOKEN)[0] == 400


# -- the monthly report ---------------------------------------------------------------------
def test_report_files_and_headless_chromium_render(
    loaded: AuditStore, audit_url: str, tmp_path: Path
) -> None:
    if "postgresql" in audit_url:
        pytest.skip("the report reads through the same queries; rendered once, on SQLite")
    queries = AuditQueries(loaded.engine)
    xlsx, page = write_report(queries, "2026-10", tmp_path, "zh", AS_OF)
    xlsx_en, page_en = write_report(queries, "2026-10", tmp_path, "en", AS_OF)
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    book = load_workbook(xlsx)
    assert len(book.sheetnames) == 6
    tiers = book.worksheets[1]
    assert tiers["A1"].value == "客户等级"
    assert load_workbook(xlsx_en).worksheets[1]["A1"].value == "Tier"
    document = page.read_text(encoding="utf-8")
    assert "大客户绿色通道服务考核月报" in document and "<svg" in document
    assert "http://" not in document.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Attainment by account tier" in page_en.read_text(encoding="utf-8")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (`make test-deps` installs it)")
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}",
            "--hide-scrollbars", "--window-size=1100,1800", f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    keep = Path(__file__).parents[2] / "var" / "test-report.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)  # for a person to look at
