"""Staged rows linked to the assets they became (`staged_row_assets`, migration 0010).

A row is processed exactly when it has a link. Every category writes its links through
`link_rows_sql`, from a SELECT of (data_import_id, row_number, asset_id, client_account_id,
engagement_id); a retried range writes nothing it already wrote, unless `rewrite` asks for
every link back (so its row count is the first run's).
"""

from __future__ import annotations


def link_rows_sql(select: str, *, rewrite: bool = False) -> str:
    """INSERT the links `select` yields (in row order), replacing a row's earlier link."""
    unchanged = (
        "" if rewrite else "\n  WHERE staged_row_assets.asset_id IS DISTINCT FROM EXCLUDED.asset_id"
    )
    return f"""
INSERT INTO staged_row_assets (data_import_id, row_number, asset_id, client_account_id,
  engagement_id)
{select.strip()}
ON CONFLICT (data_import_id, row_number) DO UPDATE SET asset_id = EXCLUDED.asset_id{unchanged}
"""
