"""A real Prometheus scrapes a running worker; every PromQL expression of every dashboard panel
and every rule, and every SQL panel over the PostgreSQL audit database, returns data (or is
listed below as expected to be empty, with the reason). Also: after a rebalance, each worker's
open-SLA gauge covers only the partitions it owns."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from fixtures.broker import Deployment, Worker, wait_for

from greenlane.streams.tansu import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FAST_POLICY = ROOT / "tests" / "integration" / "policies" / "fast.yaml"
ACCOUNT = "ORG-GD-0007"

# Expressions that are right to return nothing against one healthy worker a few seconds
# old, and why. Every other expression must return at least one sample.
EXPECTED_EMPTY = {
    "alert GreenlaneAttainmentBelowTarget": "needs 5 SLAs judged in the hour; the run judges 4",
    "alert GreenlaneBreachesRising": "needs 3 breaches of a tier and service in 15 min; the run "
    "has 2, and increase() does not count a new series' first sample",
    "alert GreenlaneSweepLagHigh": "rungs fire within a second of their due time (< 60 s)",
    "alert GreenlaneConsumerLagHigh": "the worker keeps up (lag < 10 000 records)",
    "alert GreenlaneWorkerDown": "the worker is up",
    "alert GreenlaneNoWorkers": "the worker is up",
}


def now_iso(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def event(eid: str, etype: str, request: str | None, data: dict[str, Any], dt: float = 0) -> Any:
    out: dict[str, Any] = {
        "event_id": eid,
        "event_type": etype,
        "event_time": now_iso(dt),
        "account_id": ACCOUNT,
        "data": data,
    }
    if request:
        out["request_id"] = request
    return out


class Prometheus:
    """A Prometheus server on a free loopback port scraping one worker every second."""

    def __init__(self, workdir: Path, worker: Worker) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: `make test-deps` installs Debian's package")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in sorted((DEPLOY / "prometheus/rules").glob("*.yml"))],
            "scrape_configs": [
                {
                    "job_name": "greenlane-worker",
                    "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}],
                }
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, 30, f"prometheus ready (log: {self.log})", alive=self.process)

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1):
                return True
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", f"{expr}: {body}"
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def grafana_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables as an instant query would see them."""
    for var, value in (
        ("$__rate_interval", "30s"),
        ("$__range", "1h"),
        ("$__interval", "15s"),
        ("$tier", ".*"),
        ("$service", ".*"),
    ):
        expr = expr.replace(var, value)
    return expr


def grafana_sql(sql: str) -> str:
    """A dashboard SQL query with Grafana's macros and variables expanded (PostgreSQL)."""
    sql = re.sub(
        r"\$__timeFilter\(([\w.]+)\)",
        r"\1 BETWEEN now() - interval '7 days' AND now() + interval '1 day'",
        sql,
    )
    day = "date_trunc('day', \\1) AS \"time\""
    sql = re.sub(r"\$__timeGroupAlias\(([\w.]+), '1d'\)", day, sql)
    return sql.replace("${request_id:sqlstring}", "'TT-1'")


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, panel title + refId, query) for every target of every dashboard."""
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                where = f"{dashboard['uid']}: {panel['title']} [{target['refId']}]"
                if "expr" in target:
                    yield "promql", where, target["expr"]
                else:
                    yield "sql", where, target["rawSql"]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                yield (
                    "label_values",
                    f"{dashboard['uid']}: variable ${variable['name']}",
                    (variable["definition"]),
                )


def rule_queries() -> Iterator[tuple[str, str]]:
    for path in sorted((DEPLOY / "prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    yield f"record {rule['record']}", rule["expr"]
                    yield f"recorded {rule['record']}", rule["record"]
                else:
                    yield f"alert {rule['alert']}", rule["expr"]


def describe(samples: list[dict[str, Any]]) -> str:
    if not samples:
        return "empty"
    values = [float(s["value"][1]) for s in samples]
    numeric = [v for v in values if not math.isnan(v)]
    return f"{len(samples)} series" + ("" if numeric else " (all NaN)")


@pytest.mark.parametrize("audit_url", ["postgresql"], indirect=True)
def test_every_dashboard_and_rule_query_returns_data(
    deployment: Deployment, audit_url: str, tmp_path: Path
) -> None:
    deployment.policy_file = FAST_POLICY
    deployment.audit_url = audit_url
    worker = deployment.start_worker()
    prometheus = Prometheus(tmp_path, worker)
    try:
        run_scenario(deployment, worker, prometheus)
        report = check_queries(prometheus, audit_url)
    finally:
        prometheus.stop()
    print("\n" + "\n".join(f"{what}: {result}" for what, result in report))  # for the record
    unexpected = [f"{w}: {r}" for w, r in report if r == "empty" and w not in EXPECTED_EMPTY]
    assert not unexpected, "queries without data:\n" + "\n".join(unexpected)
    stale = set(EXPECTED_EMPTY) - {w for w, _ in report}
    assert not stale, f"EXPECTED_EMPTY names queries that no longer exist: {stale}"


def run_scenario(deployment: Deployment, worker: Worker, prometheus: Prometheus) -> None:
    """Breaches, rungs, a met and a stopped SLA, a stage over budget and a dead letter."""
    deployment.publish(
        [event("acc-1", "account.upserted", None, {"name": "某机构", "tier": "important"})]
    )
    wait_for(
        lambda: worker.metric_sum("greenlane_events_total", type="account.upserted") == 1,
        30,
        "the account processed",
    )
    survey = {"stage": "survey", "status": "started", "department": "network-ops"}
    deployment.publish(
        [
            event("tt-1", "ticket.created", "TT-1", {"category": "fault", "severity": 1}),
            event("tt-2", "ticket.created", "TT-2", {"category": "fault", "severity": 1}),
            event("oss-9", "provisioning.stage_changed", "ORD-9", survey),
            event("crm-9", "order.created", "ORD-9", {"service": "internet.new"}, 0.001),
        ]
    )
    deployment.publish([b'{"event_id": "x-1", "event_type"'], deployment.topics.orders, ACCOUNT)
    # A second wave once Prometheus has the first samples, so rates and increases see growth.
    wait_for(
        lambda: bool(prometheus.query("greenlane_sla_changes_total")),
        30,
        "first samples in prometheus",
    )
    deployment.publish(
        [
            event("tt-2r", "ticket.milestone", "TT-2", {"name": "responded"}, 0.5),
            event("tt-2s", "ticket.milestone", "TT-2", {"name": "restored"}, 1.0),
        ]
    )
    wait_for(
        lambda: worker.metric_sum("greenlane_escalations_total") >= 6, 30, "rungs of the sweep"
    )
    deployment.publish([event("crm-9c", "order.state_changed", "ORD-9", {"state": "completed"}, 6)])

    def settled() -> bool:
        done = worker.metric_sum("greenlane_sla_completion_business_seconds_count")
        return done >= 3 and worker.metric_sum("greenlane_dead_letters_total") == 1

    wait_for(settled, 30, "met and stopped SLAs and the dead letter on the worker")

    def scraped() -> bool:
        done = prometheus.query("sum(greenlane_sla_completion_business_seconds_count)")
        alerts = prometheus.query('ALERTS{alertstate="firing"}')
        return bool(done) and float(done[0]["value"][1]) >= 3 and bool(alerts)

    wait_for(scraped, 30, "prometheus has scraped the outcome and evaluated the rules")


def check_queries(prometheus: Prometheus, audit_url: str) -> list[tuple[str, str]]:
    report: list[tuple[str, str]] = []
    pg_url = audit_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg_url) as conn:
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)
                # ORD-9's completion stops its fulfil target. (Only that one: on a slow
                # machine TT-2's respond can breach before its responded milestone is read,
                # and then ends stopped as well.)
                and conn.execute(
                    "SELECT count(*) FROM sla_changes WHERE kind = 'stopped' "
                    "AND sla_id LIKE '%/ORD-9/fulfil'"
                ).fetchone()
                == (1,)
            ),
            30,
            "the audit writer caught up",
        )
        for kind, where, query in dashboard_queries():
            if kind == "promql":
                report.append((where, describe(prometheus.query(grafana_promql(query)))))
            elif kind == "label_values":
                metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", query).groups()  # type: ignore[union-attr]
                values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
                report.append(
                    (where, f"{len(values['data'])} values" if values["data"] else "empty")
                )
            else:
                rows = conn.execute(grafana_sql(query)).fetchall()  # type: ignore[arg-type]
                report.append((where, f"{len(rows)} rows" if rows else "empty"))
    for where, expr in rule_queries():
        report.append((where, describe(prometheus.query(expr))))
    return report


def test_open_sla_gauges_follow_the_partitions_after_a_rebalance(deployment: Deployment) -> None:
    first = deployment.start_worker()
    accounts = [f"ORG-RB-{i:03d}" for i in range(16)]
    deployment.publish(
        [
            {
                "event_id": f"crm-{account}",
                "event_type": "order.created",
                "event_time": now_iso(),
                "account_id": account,
                "request_id": f"ORD-{account}",
                "data": {"service": "internet.new"},
            }
            for account in accounts
        ]
    )
    wait_for(
        lambda: first.metric_sum("greenlane_open_slas") == len(accounts),
        30,
        "every order open on the first worker",
    )
    second = deployment.start_worker(expect_partitions=2)
    wait_for(lambda: len(first.owned()) == 2, 60, "the first worker gave up two partitions")

    def split() -> bool:
        a, b = first.metric_sum("greenlane_open_slas"), second.metric_sum("greenlane_open_slas")
        return a + b == len(accounts) and a > 0 and b > 0

    wait_for(split, 30, "open SLAs split between the two workers, none counted twice")
    # Consumer lag, too, has series only for partitions the worker owns now (a partition
    # gets one again once the worker has read or committed on it since the assignment).
    lag_partitions = {
        dict(labels)["partition"]
        for (name, labels), _v in first.metrics().items()
        if name == "greenlane_consumer_lag"
    }
    assert lag_partitions <= {str(p) for p in first.owned()}
