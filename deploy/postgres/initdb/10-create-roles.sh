#!/bin/bash
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
# One login role per consumer: `dataimport` owns the application database and runs its
# migrations (CREATEROLE: the migrate job creates the service's login role `dataimport_app`,
# which owns nothing and is subject to row-level security; docs/security.md); `temporal` may
# create databases, so the temporal-schema job creates `temporal` and `temporal_visibility`
# itself with temporal-sql-tool, as the official setup does.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="${DATAIMPORT_DB_PASSWORD:?DATAIMPORT_DB_PASSWORD is required}" \
    -v temporal_password="${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is required}" <<'SQL'
CREATE ROLE dataimport LOGIN CREATEROLE PASSWORD :'owner_password';
CREATE DATABASE dataimport OWNER dataimport;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
