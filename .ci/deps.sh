#!/usr/bin/env bash
# Debian packages the test suite runs for real (servers and tools the tests start themselves).
# Installs only what is missing, so a machine that has them starts at once.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
# promtool and a Prometheus server for tests/deploy (rules, and PromQL against a live worker).
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
# Headless Chromium renders the audit's HTML report in a test; a CJK font shows its Chinese.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
