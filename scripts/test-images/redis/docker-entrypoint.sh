#!/bin/sh
# Entrypoint of skiff-test/redis:7, following the official redis image: arguments pass through
# ("redis-server --appendonly yes --dir /data"), the server runs as user redis, and protected
# mode is off by default (the official image compiles that default in; here it becomes an argument).
set -eu

case "${1:-}" in
    -*|*.conf) set -- redis-server "$@" ;;
    *) ;;
esac

if [ "${1:-}" = redis-server ]; then
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis:redis '{}' +
        exec /usr/bin/setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
    fi
    # Without this, Redis 7 with no password refuses clients from other containers.
    case " $* " in
        *" --protected-mode "* | *".conf "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi

exec "$@"
