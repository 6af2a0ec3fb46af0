#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at $LLMSCOPE_TEST_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/postgres): starts the local cluster if it is
# installed but down, installs it from Debian's packages if it is absent (root only), and
# fails with a clear message otherwise.
set -uo pipefail
url="${LLMSCOPE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
hostport="${url#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$host" ] && port=5432

ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port" -t 2
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

ready && exit 0

if [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ]; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "ensure-postgres: installing PostgreSQL from Debian's packages" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
    fi
  fi
  for v in $(ls /etc/postgresql 2>/dev/null); do
    echo "ensure-postgres: starting PostgreSQL $v" >&2
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 2>&1 || pg_ctlcluster "$v" main start >&2 2>&1 || true
  done
  for _ in $(seq 1 30); do ready && break; sleep 1; done
  if ready; then
    # tests connect as postgres without a password over TCP
    if command -v psql >/dev/null 2>&1 && ! psql "$url" -Atc 'select 1' >/dev/null 2>&1; then
      echo "ensure-postgres: PostgreSQL runs but $url refuses the connection; allow trust auth for 127.0.0.1 or set LLMSCOPE_TEST_DATABASE_URL" >&2
      exit 1
    fi
    exit 0
  fi
fi
echo "ensure-postgres: PostgreSQL is unreachable at $host:$port. The tests need a real PostgreSQL:" >&2
echo "  install it (apt-get install postgresql) and start it, or point LLMSCOPE_TEST_DATABASE_URL at one." >&2
exit 1
