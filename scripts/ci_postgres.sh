#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1 for the database tests, used by CI and by scripts/test.sh
# (whenever VTATUNE_TEST_POSTGRES_URL is not set):
#
#   export VTATUNE_TEST_POSTGRES_URL="$(bash scripts/ci_postgres.sh)"   # start, print the URL
#   bash scripts/ci_postgres.sh status    # exit 0 when the test cluster is online
#   bash scripts/ci_postgres.sh stop      # stop the test cluster (its data stays)
#
# What it changes on the machine (Debian/Ubuntu only; run as root or as a user with sudo):
# * installs Debian's `postgresql` package when no server binaries are installed.  Note that
#   the package itself creates a cluster "main" on port 5432 and, on a systemd machine, starts
#   it and starts it at every boot; this script never touches that cluster.
# * creates its own cluster "$VTATUNE_PG_CLUSTER" (default vtatune_test) on port $PGPORT
#   (default 54329), listening on 127.0.0.1 only, with start.conf "manual" (never started at
#   boot), data in /var/lib/postgresql/<version>/vtatune_test (about 40 MB); in it a role and a
#   database vtatune / vtatune (password vtatune) — throwaway credentials, local only.
#   Remove everything with: sudo pg_dropcluster --stop <version> vtatune_test
# * starts that cluster as the `postgres` user (pg_ctlcluster; no systemd needed).
# Idempotent: installed packages, the cluster, a running server, the role and the database are
# reused.  Messages go to stderr, the URL is the only line on stdout.
set -euo pipefail

PORT=${PGPORT:-54329}
CLUSTER=${VTATUNE_PG_CLUSTER:-vtatune_test}
DB_USER=${VTATUNE_PG_USER:-vtatune}
DB_PASS=${VTATUNE_PG_PASSWORD:-vtatune}
DB_NAME=${VTATUNE_PG_DB:-vtatune}
ACTION=${1:-start}

say() { echo "ci_postgres: $*" >&2; }
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
    as_pg() { su postgres -s /bin/sh -c "$1"; }
else
    SUDO=(sudo)
    as_pg() { sudo -u postgres /bin/sh -c "$1"; }
fi
installed() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; }
# field N of our cluster's pg_lsclusters line (1 version, 2 name, 3 port, 4 status)
cluster_field() {
    pg_lsclusters -h 2>/dev/null | awk -v c="$CLUSTER" -v f="$1" '$2 == c {print $f; exit}'
}

case "$ACTION" in
    status)
        installed && [ "$(cluster_field 4)" = online ]
        exit ;;
    stop)
        if installed && [ "$(cluster_field 4)" = online ]; then
            say "stopping cluster $(cluster_field 1)/$CLUSTER"
            as_pg "pg_ctlcluster $(cluster_field 1) $CLUSTER stop" >&2
        fi
        exit 0 ;;
    start) ;;
    *) say "unknown action '$ACTION' (start, status, stop)"; exit 2 ;;
esac

# 1. the packages
if ! installed; then
    if ! command -v apt-get >/dev/null; then
        say "no PostgreSQL server installed and no apt-get to install one: set" \
            "VTATUNE_TEST_POSTGRES_URL to a server of your own"
        exit 1
    fi
    say "installing postgresql from Debian's packages (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG=$(mktemp)
    if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq postgresql; } \
            >"$APT_LOG" 2>&1; then
        cat "$APT_LOG" >&2
        rm -f "$APT_LOG"
        say "apt-get failed"
        exit 1
    fi
    rm -f "$APT_LOG"
fi

# 2. our own cluster, on 127.0.0.1:PORT (an existing one is reused where it is)
VER=$(cluster_field 1)
if [ -z "$VER" ]; then
    VER=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    say "creating cluster $VER/$CLUSTER on 127.0.0.1:$PORT"
    "${SUDO[@]}" pg_createcluster "$VER" "$CLUSTER" --port "$PORT" --start-conf manual >&2
fi
PORT=$(cluster_field 3)
# our cluster only listens on the loopback interface (its credentials are public)
CONF=/etc/postgresql/$VER/$CLUSTER/postgresql.conf
if ! grep -Eq "^listen_addresses = '127.0.0.1'" "$CONF"; then
    "${SUDO[@]}" sed -i -E "s/^#?listen_addresses *=.*/listen_addresses = '127.0.0.1'/" "$CONF"
    [ "$(cluster_field 4)" != online ] || as_pg "pg_ctlcluster $VER $CLUSTER restart" >&2
fi

# 3. the server (started as the postgres user: no systemd needed)
if [ "$(cluster_field 4)" != online ]; then
    say "starting cluster $VER/$CLUSTER"
    as_pg "pg_ctlcluster $VER $CLUSTER start" >&2
fi
for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2

# 4. role and database (password login over TCP, the Debian default for 127.0.0.1)
PSQL="psql -X -q -v ON_ERROR_STOP=1 -p $PORT"
if [ -z "$(as_pg "$PSQL -tAc \"SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'\"")" ]; then
    say "creating role $DB_USER"
    as_pg "$PSQL -c \"CREATE ROLE \\\"$DB_USER\\\" LOGIN PASSWORD '$DB_PASS'\""
else
    as_pg "$PSQL -c \"ALTER ROLE \\\"$DB_USER\\\" LOGIN PASSWORD '$DB_PASS'\""
fi
if [ -z "$(as_pg "$PSQL -tAc \"SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'\"")" ]; then
    say "creating database $DB_NAME"
    as_pg "createdb -p $PORT -O '$DB_USER' '$DB_NAME'"
fi

URL="postgresql+psycopg://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME"
PGPASSWORD="$DB_PASS" psql -X -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" \
    -tAc "SELECT 1" >/dev/null
say "ready: PostgreSQL $VER cluster $CLUSTER on 127.0.0.1:$PORT, database $DB_NAME"
echo "$URL"
