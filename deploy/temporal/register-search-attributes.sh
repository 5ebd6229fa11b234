#!/bin/sh
# Makes sure the namespace exists and carries the custom search attributes the workflows
# set. The plain server image does not create a namespace (auto-setup did), so this job
# creates it too. Idempotent: only missing attributes are created, an "already exists"
# answer counts as success, and the job ends only once `search-attribute list` shows them all.
# SEARCH_ATTRIBUTES is a space-separated list of Name=Type pairs.
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_NAMESPACE_RETENTION:=72h}"
: "${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES is required}"
MAX_ATTEMPTS=30

host="${TEMPORAL_ADDRESS%:*}"
port="${TEMPORAL_ADDRESS##*:}"

attempt=0
until nc -z -w 5 "$host" "$port"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
        echo "Temporal at $TEMPORAL_ADDRESS is not reachable" >&2
        exit 1
    fi
    sleep 2
done

# Same workaround as the official compose scripts: hand the CLI an IPv4 address.
ipv4="$(getent ahosts "$host" 2>/dev/null | awk '/STREAM/ && $1 ~ /^[0-9.]+$/ { print $1; exit }')" || ipv4=""
address="${ipv4:-$host}:$port"

retry() {
    what="$1"
    shift
    attempt=0
    until "$@"; do
        attempt=$((attempt + 1))
        if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
            echo "gave up: $what" >&2
            exit 1
        fi
        echo "waiting: $what ($attempt/$MAX_ATTEMPTS)"
        sleep 3
    done
}

retry "cluster health" temporal operator cluster health --address "$address"

ensure_namespace() {
    temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$address" \
        >/dev/null 2>&1 && return 0
    temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
        --retention "$TEMPORAL_NAMESPACE_RETENTION" --address "$address" || true
    temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$address" \
        >/dev/null 2>&1
}
retry "namespace $TEMPORAL_NAMESPACE" ensure_namespace

registered_names() {
    table="$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" \
        --address "$address")" || return 1
    printf '%s\n' "$table" | awk '{ print $1 }'
}

nl='
'
has_line() {
    case "$nl$1$nl" in
        *"$nl$2$nl"*) return 0 ;;
    esac
    return 1
}

ensure_search_attributes() {
    names="$(registered_names)" || return 1
    missing=0
    for pair in $SEARCH_ATTRIBUTES; do
        name="${pair%%=*}"
        type="${pair#*=}"
        if has_line "$names" "$name"; then
            continue
        fi
        missing=1
        if output="$(temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" \
            --name "$name" --type "$type" --address "$address" 2>&1)"; then
            echo "created search attribute $name ($type)"
        else
            case "$output" in
                *"already exists"* | *"AlreadyExists"*)
                    echo "search attribute $name already exists"
                    continue
                    ;;
            esac
            echo "could not create search attribute $name: $output" >&2
        fi
    done
    # Verify with a fresh list: creations can lag behind on a busy server.
    [ "$missing" -eq 0 ] && return 0
    names="$(registered_names)" || return 1
    for pair in $SEARCH_ATTRIBUTES; do
        has_line "$names" "${pair%%=*}" || return 1
    done
}
retry "search attributes" ensure_search_attributes

echo "Namespace $TEMPORAL_NAMESPACE has search attributes: $SEARCH_ATTRIBUTES"
