#!/usr/bin/env bash
# Install (from Debian's packages), start and prepare a PostgreSQL server on 127.0.0.1 for the
# database tests, then print its SQLAlchemy URL as the only line on stdout:
#
#   export VTATUNE_TEST_POSTGRES_URL="$(bash scripts/ci_postgres.sh)"
#
# Idempotent: an installed package, an existing cluster, a running server, the role and the
# database are reused.  Runs as root (CI) or as a user with sudo; the server itself runs as
# the `postgres` user.  Environment: PGPORT (default 5432), VTATUNE_PG_USER / _PASSWORD / _DB
# (default vtatune / vtatune / vtatune).  Messages go to stderr.
set -euo pipefail

PORT=${PGPORT:-5432}
DB_USER=${VTATUNE_PG_USER:-vtatune}
DB_PASS=${VTATUNE_PG_PASSWORD:-vtatune}
DB_NAME=${VTATUNE_PG_DB:-vtatune}

say() { echo "ci_postgres: $*" >&2; }
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
    as_pg() { su postgres -s /bin/sh -c "$1"; }
else
    SUDO=(sudo)
    as_pg() { sudo -u postgres /bin/sh -c "$1"; }
fi

# 1. the packages
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
    say "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG=$(mktemp)
    if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq postgresql; } \
            >"$APT_LOG" 2>&1; then
        cat "$APT_LOG" >&2
        say "apt-get failed"
        exit 1
    fi
    rm -f "$APT_LOG"
fi
VER=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

# 2. a cluster listening on 127.0.0.1:PORT (the Debian package may have made "main" already)
if ! pg_lsclusters -h | awk -v v="$VER" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
    say "creating cluster $VER/main on port $PORT"
    "${SUDO[@]}" pg_createcluster "$VER" main --port "$PORT" >&2
fi
CONF=/etc/postgresql/$VER/main/postgresql.conf
CUR_PORT=$(pg_lsclusters -h | awk -v v="$VER" '$1 == v && $2 == "main" {print $3}')
if [ "$CUR_PORT" != "$PORT" ]; then
    say "moving cluster $VER/main from port $CUR_PORT to $PORT"
    as_pg "pg_ctlcluster $VER main stop" >&2 || true
    "${SUDO[@]}" sed -i -E "s/^#?port *=.*/port = $PORT/" "$CONF"
fi
"${SUDO[@]}" sed -i -E "s/^#?listen_addresses *=.*/listen_addresses = '127.0.0.1'/" "$CONF"

# 3. the server (started as the postgres user: no systemd needed)
STATUS=$(pg_lsclusters -h | awk -v v="$VER" '$1 == v && $2 == "main" {print $4}')
if [ "$STATUS" != "online" ]; then
    say "starting cluster $VER/main"
    as_pg "pg_ctlcluster $VER main start" >&2
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
say "ready: PostgreSQL $VER on 127.0.0.1:$PORT, database $DB_NAME"
echo "$URL"
