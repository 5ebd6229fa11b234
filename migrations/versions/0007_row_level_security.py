"""Row-level security: the database keeps tenants apart too, not only every WHERE clause.

Every tenant table gets a policy that admits a row only when its (client_account_id,
engagement_id) are the transaction's settings `app.client_account_id` / `app.engagement_id`
(set by dataimport.db at the start of every transaction), for reads (USING) and for the rows
written (WITH CHECK). An unset or empty setting matches nothing: NULLIF turns '' into NULL
before the cast (''::uuid would raise), and NULL equals no row. FORCE applies the policies to
the table owner as well; superusers and BYPASSRLS roles are never subject to them.

The service (worker, API, CLI) connects as a login role that owns nothing and is a member of
the NOLOGIN group role created here, which holds its privileges: DML on the tenant tables,
MAINTAIN on them (PostgreSQL 17+: `analyze_inventory` runs ANALYZE, which needs ownership
otherwise) and EXECUTE on `purgeable_imports`. This revision runs as the owner. Tables added
later get their policy and grants in their own revision (nothing is granted by default, so a
forgotten grant fails loudly instead of exposing a table without a policy).

Staging retention is one job over all tenants: `purgeable_imports` (SECURITY DEFINER, owned by
the owner) lists the due imports with their tenant ids and nothing else, through a read-only
policy for the owner on data_imports (the owner could switch row security off anyway); each
import is then purged by the service with that import's tenant set.

The group role is cluster-wide and may hold grants in other databases: the downgrade revokes
everything here and leaves the role.

Revision ID: 0007_row_level_security
Revises: 0006_api_keys
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_row_level_security"
down_revision: str | None = "0006_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERVICE_GROUP = "dataimport_service"
CREDENTIAL_TABLES = ("api_keys",)
TENANT_TABLES = (
    "data_imports",
    "raw_import_records",
    "master_flows",
    "discovery_flows",
    "import_processing_steps",
    "assets",
    "asset_dependencies",
    "dependency_observations",
    "dependency_group_members",
)
POLICY = "tenant_isolation"
OWNER_LISTING_POLICY = "owner_lists_imports"
TENANT_MATCH = (
    "client_account_id = NULLIF(current_setting('app.client_account_id', true), '')::uuid "
    "AND engagement_id = NULLIF(current_setting('app.engagement_id', true), '')::uuid"
)
# As migration 0003's partial index predicate, written out (a revision keeps its meaning).
PURGEABLE = (
    "d.staging_purged_at IS NULL AND d.status IN "
    "('cancelled', 'completed', 'completed_with_errors', 'failed')"
)
PURGEABLE_FUNCTION = "purgeable_imports(timestamptz, timestamptz, uuid, integer)"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{SERVICE_GROUP}') THEN
            CREATE ROLE {SERVICE_GROUP} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {SERVICE_GROUP}")
    maintain = _server_version() >= 170000
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} USING ({TENANT_MATCH}) WITH CHECK ({TENANT_MATCH})"
        )
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_GROUP}")
        if maintain:
            op.execute(f"GRANT MAINTAIN ON {table} TO {SERVICE_GROUP}")
    # Credentials, not tenant data: the key lookup runs before any tenant is known (the key
    # is what names it), so api_keys sits outside the tenant policy; it holds hashes only.
    for table in CREDENTIAL_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_GROUP}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_GROUP}")
    op.execute(
        f"CREATE POLICY {OWNER_LISTING_POLICY} ON data_imports FOR SELECT TO CURRENT_USER "
        "USING (true)"
    )
    op.execute(
        f"""
        CREATE FUNCTION purgeable_imports(
          cutoff timestamptz, after_completed_at timestamptz, after_id uuid, max_rows integer
        ) RETURNS TABLE (
          id uuid, client_account_id uuid, engagement_id uuid, completed_at timestamptz
        )
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$
          SELECT d.id, d.client_account_id, d.engagement_id, d.completed_at
          FROM public.data_imports d
          WHERE {PURGEABLE} AND d.completed_at < cutoff
            AND (after_completed_at IS NULL OR after_id IS NULL
                 OR (d.completed_at, d.id) > (after_completed_at, after_id))
          ORDER BY d.completed_at, d.id
          LIMIT least(greatest(max_rows, 0), 500)
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {PURGEABLE_FUNCTION} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {PURGEABLE_FUNCTION} TO {SERVICE_GROUP}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {PURGEABLE_FUNCTION}")
    op.execute(f"DROP POLICY IF EXISTS {OWNER_LISTING_POLICY} ON data_imports")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE ALL ON {table} FROM {SERVICE_GROUP}")
    for table in CREDENTIAL_TABLES:
        op.execute(f"REVOKE ALL ON {table} FROM {SERVICE_GROUP}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {SERVICE_GROUP}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {SERVICE_GROUP}")


def _server_version() -> int:
    return int(op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one())
