"""Audit writer throughput: rows/s of `AuditStore.write` on SQLite and on PostgreSQL.

Records come from the simulator replayed through the example policy (realistic mixes of changes
and escalations), written in batches as the worker's audit agent does. PostgreSQL is started like
the test fixture (Debian's binaries, a throw-away cluster), or given with --postgres-url.

    .venv/bin/python bench/audit_write.py [--batch 500] [--postgres-url URL] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def records(days: int) -> list[dict[str, Any]]:
    from datetime import timedelta

    from greenlane.config.loader import load_policy
    from greenlane.config.settings import EXAMPLE_POLICY
    from greenlane.sim.traffic import SHANGHAI, Simulator
    from greenlane.sla.engine import Tracker
    from greenlane.sla.replay import replay
    from greenlane.streams.codec import decode_event

    now = datetime(2026, 10, 1, 9, tzinfo=SHANGHAI)
    sim = Simulator(seed=1, now=now, accounts=40, requests_per_minute=0.05)
    events = sim.accounts() + sim.backlog() + sim.advance(now + timedelta(days=days))
    decoded = [decode_event(orjson.dumps(e)) for e in events]
    return [r.to_dict() for r in replay(Tracker(load_policy(EXAMPLE_POLICY)), decoded)]


def measure(url: str, data: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    from greenlane.audit.store import AuditStore

    store = AuditStore(url)
    try:
        store.create_schema()
        start = time.perf_counter()
        for i in range(0, len(data), batch):
            store.write(data[i : i + batch])
        first = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(0, len(data), batch):  # a redelivery: nothing new, nothing derived
            store.write(data[i : i + batch])
        again = time.perf_counter() - start
        return {
            "rows": len(data),
            "batch": batch,
            "seconds": round(first, 3),
            "rows_per_s": round(len(data) / first),
            "replay_rows_per_s": round(len(data) / again),
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--days", type=int, default=10, help="days of simulated traffic")
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: start one)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    data = records(args.days)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/audit.db", data, args.batch)
    if args.postgres_url:
        results["postgresql"] = measure(args.postgres_url, data, args.batch)
    else:
        from fixtures.postgres import _bin_dir, _database_command, _Server, _sqlalchemy_url

        bin_dir = _bin_dir()
        if bin_dir is None:
            print("PostgreSQL not installed: skipping it", file=sys.stderr)
        else:
            root = Path(tempfile.mkdtemp(prefix="greenlane-bench-pg-"))
            server = _Server(bin_dir, root)
            server.prepare()
            server.start()
            try:
                _database_command(server.admin_url(), "create", "bench")
                results["postgresql"] = measure(
                    _sqlalchemy_url(server.port, "bench"), data, args.batch
                )
            finally:
                server.stop()
                import shutil

                shutil.rmtree(root, ignore_errors=True)
    for name, r in results.items():
        print(f"{name:10s} {r['rows']} rows in {r['seconds']} s: {r['rows_per_s']} rows/s "
              f"(redelivered: {r['replay_rows_per_s']} rows/s)")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
