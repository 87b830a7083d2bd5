#!/bin/sh
# The container's entry point: runs `labelwise ARGS`. Before the first `serve` on a data directory it creates an
# admin API key, prints it once and keeps it in $LABELWISE_DATA_DIR/admin.key (mode 0600), as `make serve` does
# with its demo key. A directory made with mkdir is the lock, so replicas starting together create one key.
set -eu
data="${LABELWISE_DATA_DIR:-/data}"
if [ "${1:-}" = serve ] && mkdir "$data/.admin-key" 2>/dev/null; then
    umask 077
    if ! key=$(labelwise keys create --name admin --scope admin --scope train --scope classify); then
        rmdir "$data/.admin-key"  # let the next start try again
        exit 1
    fi
    printf '%s\n' "$key" > "$data/admin.key"
    echo "First start: an admin API key was created (shown once; kept in $data/admin.key):"
    echo "  export LABELWISE_API_KEY=$key"
fi
exec labelwise "$@"
