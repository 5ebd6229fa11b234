"""The ranked asset match every resolver shares: one set-based statement over a table of ends.

Ranks: external id, VM UUID, name key, host name key, IP address; the best rank wins, the
smallest asset id within a rank, so every caller (the resolver, app_discovery's prepare, its
ranges and its finish) agrees on an end's asset. No category imports here: the categories
import this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# The ranked lookups: (asset column, identity key), best first.
LOOKUPS = (
    ("external_id", "external_id"),
    ("vm_uuid", "vm_uuid"),
    ("name_key", "name_key"),
    ("hostname_key", "hostname_key"),
    ("ip_address", "ip_address"),
)

TENANT = "t.client_account_id = CAST(:c AS uuid) AND t.engagement_id = CAST(:e AS uuid)"


# Ends probed one by one (an index probe per end and rank) rather than hash-joined with every
# asset, when the assets table holds this many times more rows than there are ends: a range
# of 25k ends in a tenant of 1M assets must not read the million once per rank.
PROBE_RATIO = 16


def _hash_branch(ends: str, rank: int, column: str, key: str) -> str:
    return f"""SELECT x.n, t.id, {rank} AS rank FROM {ends} x JOIN assets t ON t.{column} = x.{key}
  WHERE {TENANT} AND x.{key} IS NOT NULL"""


def _probe_branch(ends: str, rank: int, column: str, key: str) -> str:
    # LIMIT: the smallest id of the rank, and a subquery the planner cannot flatten into a
    # join (so it is always the (tenant, column) index, one probe per end).
    return f"""SELECT x.n, m.id, {rank} AS rank FROM {ends} x CROSS JOIN LATERAL (
    SELECT t.id FROM assets t WHERE {TENANT} AND t.{column} = x.{key} ORDER BY t.id LIMIT 1
  ) m
  WHERE x.{key} IS NOT NULL"""


def match_sql(
    ends: str,
    ranks: Sequence[int],
    lookups: Sequence[tuple[str, str]] = LOOKUPS,
    *,
    probe: bool = False,
) -> str:
    """Set `asset_id` of every row of table `ends` (columns n, asset_id and the keys of
    `lookups`: (asset column, key column) by rank) to its best match among the lookups of
    `ranks` (those some row has a key for): best rank, then smallest id. Each rank is a hash
    join with the tenant's assets (run with nested loops off): linear in the tenant and the
    rows whatever the statistics say; or, with `probe`, an index probe per end and rank:
    linear in the ends whatever the size of the tenant."""
    branch = _probe_branch if probe else _hash_branch
    branches = "\n  UNION ALL ".join(
        branch(ends, rank, column, key)
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


async def match(
    conn: AsyncConnection,
    ends: str,
    params: Mapping[str, Any],
    lookups: Sequence[tuple[str, str]] = LOOKUPS,
) -> None:
    """Resolve every row of `ends` (see `match_sql`), over the ranks some row has a key for;
    probing when the assets table (all tenants, as last analysed) dwarfs the ends."""
    present = ", ".join(f"bool_or({key} IS NOT NULL)" for _, key in lookups)
    facts = (
        await conn.execute(
            text(
                f"SELECT count(*), {present}, (SELECT c.reltuples FROM pg_class c "
                f"WHERE c.oid = CAST('assets' AS regclass)) FROM {ends}"
            )
        )
    ).one()
    count, *has, assets = facts
    ranks = [rank for rank, found in enumerate(has, start=1) if found]
    probe = (assets or 0) > PROBE_RATIO * max(count, 1)
    await conn.execute(text(match_sql(ends, ranks, lookups, probe=probe)), params)
