#!/usr/bin/env bash
# Start the services the tests use when they are not running: Redis on 6379, PostgreSQL on 5432.
# The integration tests also start their own short-lived Redis on other ports (to stop and
# restart it mid-test), which needs redis-server on PATH.
set -euo pipefail

# promtool checks deploy/prometheus's rules in the unit tests (they skip, and say so, without it).
# Debian's `prometheus` package carries it; installed once when apt-get is here and we are root.
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null || echo "services: promtool not installed" >&2
fi

# bubblewrap runs the gateway on a read-only root filesystem in tests/integration/test_chart_pod.py.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null ||
    echo "services: bubblewrap not installed" >&2
fi

# Debian's chromium runs the dashboard's browser tests (tests/integration/test_dashboard.py, driven
# by Playwright with executable_path; Playwright never downloads a browser of its own here).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    echo "services: chromium not installed" >&2
fi

if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --port 6379 --save ""
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
redis-cli -p 6379 ping
