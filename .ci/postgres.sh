# shellcheck shell=bash
# Sourced by .ci/run, and usable by hand to run the PostgreSQL tests locally:
#
#   source .ci/postgres.sh && start_postgres && go test ./... ; stop_postgres
#
# PostgreSQL for internal/store/postgres. Unless MANDATE_TEST_POSTGRES_URL is
# set already, start a throwaway cluster: server binaries from PATH or Debian's
# /usr/lib/postgresql/*/bin (installing Debian's postgresql package when they
# are missing and we are root), a data directory in a temporary directory
# owned by an unprivileged user (initdb refuses root), listening on a free
# loopback port with fsync on, stopped and removed on exit.
pg_tmp=""
pg_bin=""
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd "$pg_tmp" && runuser -u nobody -- "$@"); else "$@"; fi
}
stop_postgres() {
  if [ -n "$pg_tmp" ] && [ -d "$pg_tmp" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_tmp"
  fi
}
find_pg_bin() {
  local c d
  for c in $(command -v initdb 2>/dev/null || true) $(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V -r); do
    d=$(dirname "$(readlink -f "$c")")
    if [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && [ -x "$d/psql" ]; then echo "$d"; return 0; fi
  done
  return 1
}
install_pg() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "PostgreSQL server binaries not found: installing Debian's postgresql package"
  # No default cluster: the tests start their own.
  mkdir -p /etc/postgresql-common
  [ -e /etc/postgresql-common/createcluster.conf ] ||
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
  local log="$pg_tmp/apt.log"
  if ! { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql; } >"$log" 2>&1; then
    tail -n 30 "$log"; return 1
  fi
}
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
start_postgres() {
  pg_tmp=$(mktemp -d /tmp/mandate-ci-pg.XXXXXX) || return 1
  pg_bin=$(find_pg_bin) || { install_pg && pg_bin=$(find_pg_bin); } || return 1
  chmod 700 "$pg_tmp"
  if [ "$(id -u)" = 0 ]; then chown nobody: "$pg_tmp"; fi
  as_pg "$pg_bin/initdb" -D "$pg_tmp/data" -U postgres -A trust --auth-host=scram-sha-256 -E UTF8 --no-locale \
    >"$pg_tmp/initdb.log" 2>&1 || { cat "$pg_tmp/initdb.log"; return 1; }
  local port started=""
  for _ in 1 2 3; do
    port=$(free_port) || return 1
    if as_pg "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_tmp -c fsync=on -c synchronous_commit=on -c max_connections=200" \
      start >/dev/null; then started=1; break; fi
  done
  [ -n "$started" ] || { cat "$pg_tmp/server.log"; return 1; }
  local pw
  pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  as_pg "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg_tmp" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE mandate LOGIN PASSWORD '$pw'" -c "CREATE DATABASE mandate_test OWNER mandate" || return 1
  export MANDATE_TEST_POSTGRES_URL="postgres://mandate:$pw@127.0.0.1:$port/mandate_test?sslmode=disable"
  echo "PostgreSQL tests: run against a throwaway cluster ($("$pg_bin/postgres" --version)) on 127.0.0.1:$port"
}

