#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, one after the other (they share 2 cores: never in
# parallel), each writing bench/results/<name>.json. Run from the repository root:
#     bash bench/run_all.sh            # 11 to 20 minutes on 2 cores, as fast as the hour
#     QUICK=1 bash bench/run_all.sh    # smaller sizes, a few minutes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/results
mkdir -p "$OUT"
if [[ "${QUICK:-}" == 1 ]]; then
    # The worker works 20,000 events off in about a second: scraped every 0.1 s, not 0.5.
    SCALE="10000 100000"; RECOVERY="30000"; EVENTS=20000; FLOOR_EVENTS=25000
    SCRAPE="--scrape-every 0.1"
else
    # 100,000 events keep the worker busy for 6 s or more: with 20,000 its measured window was
    # under 2 s, startup weighed in and the figure moved by a third between runs.
    SCALE="10000 100000 1000000"; RECOVERY="30000 300000 1000000"; EVENTS=100000
    FLOOR_EVENTS=100000; SCRAPE=""
fi
set -x
$PY bench/rules_throughput.py --events 20000 --out "$OUT/rules_throughput.json"
$PY bench/rules_throughput.py --events 20000 --many --out "$OUT/rules_throughput_many.json"
$PY bench/decode_throughput.py --out "$OUT/decode_throughput.json"
$PY bench/service_throughput.py --events 30000 --out "$OUT/service_throughput.json"
# Instructions per event: comparable between builds on a noisy machine (needs valgrind).
if command -v valgrind >/dev/null; then
    $PY bench/service_instructions.py --out "$OUT/service_instructions.json"
fi
$PY bench/open_sla_scale.py --sizes $SCALE --max-seconds 600 --out "$OUT/open_sla_scale.json"
$PY bench/timeliness.py --orders 300 --spread 15 --rate 200 --out "$OUT/timeliness.json"
$PY bench/recovery.py --slas $RECOVERY --max-seconds 1500 --out "$OUT/recovery.json"
$PY bench/worker_throughput.py --events $EVENTS $SCRAPE --out "$OUT/worker_throughput.json"
$PY bench/worker_throughput.py --events $EVENTS $SCRAPE --without-workaround \
    --out "$OUT/worker_throughput_without_workaround.json"
$PY bench/worker_throughput.py --events $EVENTS $SCRAPE --without-workaround --audit-in-worker \
    --out "$OUT/worker_throughput_audit_in_worker.json"
$PY bench/worker_throughput.py --events $EVENTS $SCRAPE --traffic backlog \
    --out "$OUT/worker_throughput_backlog.json"
$PY bench/faust_floor.py --events $FLOOR_EVENTS --out "$OUT/faust_floor.json"
$PY bench/audit_write.py --out "$OUT/audit_write.json"
$PY bench/notify_throughput.py --escalations 2000 --out "$OUT/notify_throughput.json"
if $PY -c 'import matplotlib' 2>/dev/null; then $PY bench/plot_results.py; fi
