#!/bin/sh
# Entrypoint of skiff-test/postgres:15, following the official postgres image's conventions:
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default
# postgres), POSTGRES_DB (default: the user), PGDATA, POSTGRES_INITDB_ARGS,
# /docker-entrypoint-initdb.d/*.sh|*.sql. An initialised data directory is simply started.
set -eu

# "docker run image -c foo=bar" means "postgres -c foo=bar", as in the official image.
if [ "${1#-}" != "${1:-}" ]; then
    set -- postgres "$@"
fi

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    # A fresh volume is owned by root: hand it to postgres, then drop privileges (util-linux setpriv stands in for gosu; by absolute path, because busybox sh prefers its own setpriv applet, which cannot change users).
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "docker-entrypoint: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "  set POSTGRES_PASSWORD to a non-empty value (or POSTGRES_HOST_AUTH_METHOD=trust, never in production)" >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"

    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    pwarg="--pwfile=$pwfile"
    [ -n "${POSTGRES_PASSWORD:-}" ] || pwarg=""
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb --username="$user" $pwarg --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"

    {
        echo
        echo "listen_addresses = '*'"
        echo "jit = off"
    } >> "$PGDATA/postgresql.conf"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

    # Create the database and run init scripts on a server reachable only through the local socket.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c jit=off" -w start >/dev/null
    export PGUSER="$user" PGDATABASE=postgres
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --no-password --quiet --set db="$db" <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "docker-entrypoint: running $f"; . "$f" ;;
            *.sql) echo "docker-entrypoint: running $f"; psql -v ON_ERROR_STOP=1 --no-password --dbname "$db" -f "$f" ;;
            *) ;;
        esac
    done
    unset PGUSER PGDATABASE
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
fi

shift
# jit=off first, so an explicit "-c jit=..." from the caller still wins; llvmjit is not in the image.
exec postgres -c jit=off "$@"
