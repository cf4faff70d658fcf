#!/bin/sh
# Refuses to start without FRESHET_SUPERUSER_PASSWORD (the container listens on
# a non-loopback address), then runs freshet with the superuser settings.
set -eu

if [ "${1:-}" = "serve" ]; then
    if [ -z "${FRESHET_SUPERUSER_PASSWORD:-}" ]; then
        echo "freshet: FRESHET_SUPERUSER_PASSWORD must be set (the server listens on 0.0.0.0)" >&2
        exit 64
    fi
    shift
    # The password is passed through the environment (FRESHET_SUPERUSER_PASSWORD,
    # which `freshet serve` reads) rather than argv, so it does not show in `ps`.
    exec /usr/local/bin/freshet serve --superuser "${FRESHET_SUPERUSER:-freshet}" "$@"
fi
exec /usr/local/bin/freshet "$@"
