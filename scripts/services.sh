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

# pgvector for the PostgreSQL catalog of vector stores (tests/integration/test_pg_catalog.py, bench/rag/).
# Debian's binary package for the installed server is taken when the suites have one; bookworm's
# PostgreSQL 15 has none, so Debian's source package (trixie's pgvector, through a private apt list
# that leaves the system's sources alone) is built against postgresql-server-dev for that server.
install_pgvector() {
  local pg=$1 apt_dir=/var/tmp/interlock-pgvector
  apt-get update -qq >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-$pg-pgvector" >/dev/null 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$pg" make gcc >/dev/null || return 1
  # The machine's own Debian mirror (its first non-security source), with trixie's sources.
  local mirror
  mirror=$( (grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
    grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}') | grep -v security | head -1)
  [[ -n $mirror ]] || return 1
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/src"
  echo "deb-src $mirror trixie main" >"$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt_dir/lists")
  apt-get "${opts[@]}" update -qq >/dev/null || return 1
  (cd "$apt_dir/src" && apt-get "${opts[@]}" source --download-only -qq pgvector >/dev/null 2>&1) || return 1
  local tarball dir
  tarball=$(ls "$apt_dir"/src/pgvector_*.orig.tar.* | tail -1)
  tar -xf "$tarball" -C "$apt_dir/src"
  dir=$(ls -d "$apt_dir"/src/pgvector-*/ | tail -1)
  # OPTFLAGS="": no -march=native, so the library runs on any x86_64 machine the image moves to.
  make -s -C "$dir" PG_CONFIG="/usr/lib/postgresql/$pg/bin/pg_config" OPTFLAGS="" >/dev/null 2>&1 &&
    make -s -C "$dir" PG_CONFIG="/usr/lib/postgresql/$pg/bin/pg_config" install >/dev/null 2>&1
}
pg_version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
if [[ -n $pg_version && ! -f /usr/share/postgresql/$pg_version/extension/vector.control ]] &&
  command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  install_pgvector "$pg_version" || echo "services: pgvector not installed" >&2
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
