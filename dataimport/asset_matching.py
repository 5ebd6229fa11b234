"""The ranked asset match every resolver shares: one set-based statement over a table of ends.

Ranks: external id, VM UUID, name key, host name key, IP address; the best rank wins, the
smallest asset id within a rank, so every caller (the resolver, app_discovery's prepare, its
ranges and its finish) agrees on an end's asset. No category imports here: the categories
import this module.
"""

from __future__ import annotations

from collections.abc import Sequence

# The ranked lookups: (asset column, identity key), best first.
LOOKUPS = (
    ("external_id", "external_id"),
    ("vm_uuid", "vm_uuid"),
    ("name_key", "name_key"),
    ("hostname_key", "hostname_key"),
    ("ip_address", "ip_address"),
)

TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"


def match_sql(ends: str, ranks: Sequence[int], lookups: Sequence[tuple[str, str]] = LOOKUPS) -> str:
    """Set `asset_id` of every row of table `ends` (columns n, asset_id and the keys of
    `lookups`: (asset column, key column) by rank) to its best match among the lookups of
    `ranks` (those some row has a key for): best rank, then smallest id. Each rank is a hash
    join with the tenant's assets (run with nested loops off): linear in the tenant and the
    rows whatever the statistics say."""
    branches = "\n  UNION ALL ".join(
        f"""SELECT x.n, t.id, {rank} AS rank FROM {ends} x JOIN assets t ON t.{column} = x.{key}
  WHERE {TENANT} AND x.{key} IS NOT NULL"""
        for rank, (column, key) in enumerate(lookups, start=1)
        if rank in ranks
    )
    if not branches:
        branches = (
            "SELECT CAST(NULL AS bigint) AS n, CAST(NULL AS uuid) AS id, 0 AS rank WHERE false"
        )
    return f"""
WITH candidates AS (
  {branches}
),
best AS (SELECT DISTINCT ON (n) n, id FROM candidates ORDER BY n, rank, id)
UPDATE {ends} x SET asset_id = b.id FROM (
  SELECT y.n, best.id FROM {ends} y LEFT JOIN best ON best.n = y.n
) b
WHERE x.n = b.n AND x.asset_id IS DISTINCT FROM b.id
"""
