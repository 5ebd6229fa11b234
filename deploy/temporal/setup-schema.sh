#!/bin/sh
# Creates and migrates Temporal's two PostgreSQL databases (main and visibility) with
# temporal-sql-tool from the admin-tools image. The server image no longer sets up schemas
# (auto-setup is deprecated), so this job runs before every server start. Re-runs are safe:
# create-database fails harmlessly on an existing database, setup-schema -v 0.0 leaves a
# newer version alone, and update-schema applies only the missing versioned steps.
# temporal-sql-tool reads the password from SQL_PASSWORD, keeping it out of the process list.
set -eu

: "${SQL_HOST:=postgres}"
: "${SQL_PORT:=5432}"
: "${SQL_USER:=temporal}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
: "${TEMPORAL_DB:=temporal}"
: "${TEMPORAL_VISIBILITY_DB:=temporal_visibility}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12
export SQL_PASSWORD

attempt=0
until nc -z -w 5 "$SQL_HOST" "$SQL_PORT"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 30 ]; then
        echo "PostgreSQL at $SQL_HOST:$SQL_PORT is not reachable" >&2
        exit 1
    fi
    sleep 2
done

sql_tool() {
    db="$1"
    shift
    temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" \
        --db "$db" "$@"
}

setup_database() {
    db="$1"
    versioned_dir="$2"
    echo "Temporal schema: database $db"
    # An existing database makes this fail; any other failure shows up in setup-schema.
    sql_tool "$db" create-database || echo "database $db not created (it probably exists)"
    sql_tool "$db" setup-schema -v 0.0
    sql_tool "$db" update-schema -d "$versioned_dir"
}

setup_database "$TEMPORAL_DB" "$SCHEMA_DIR/temporal/versioned"
setup_database "$TEMPORAL_VISIBILITY_DB" "$SCHEMA_DIR/visibility/versioned"
echo "Temporal schema is up to date"
