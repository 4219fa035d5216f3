#!/usr/bin/env bash
# Runs the whole test-suite: unit, end-to-end (CLI, AppTest, real browser) and storage tests against
# SQLite and a throwaway PostgreSQL cluster on 127.0.0.1 that this script starts and removes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 \
      || "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT

if [ -z "${RELIEF_TEST_DATABASE_URL:-}" ] && [ -n "$pg_bin" ]; then
  pg_dir=$(mktemp -d /tmp/relief-pg.XXXXXX)
  port=$(( 20000 + RANDOM % 20000 ))
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
  if "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U relief --auth=trust >/dev/null \
     && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
          -o "-h 127.0.0.1 -p $port -k $pg_dir" start >/dev/null; then
    export RELIEF_TEST_DATABASE_URL="postgresql+psycopg://relief@127.0.0.1:$port/postgres"
    echo "PostgreSQL test server on 127.0.0.1:$port"
  else
    echo "warning: could not start PostgreSQL; its tests will be skipped" >&2
    cat "$pg_dir/log" 2>/dev/null >&2
  fi
fi

"$PY" -m pytest -ra "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "no tests were collected"; fi
exit $rc
