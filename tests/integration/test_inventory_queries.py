"""The inventory reads built from the typed models: tenant predicate, literal search, paging.

Seeded as the owner (the cluster's superuser, whom row-level security does not bind), so a
read that forgot its explicit tenant predicate would show the other tenant's rows here.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dataimport.api import inventory_queries as queries
from dataimport.imports import Tenant
from dataimport.models import Asset, AssetDependency, DependencyGroupMember

# Names whose order does not depend on the collation (the first letters differ).
NAMES = ("alpha_01", "bravo-02", "charlie%03", "DELTA-04", "echo-05")


async def _seed(engine: AsyncEngine, tenant: Tenant) -> dict[str, uuid.UUID]:
    ids = {name: uuid.uuid4() for name in NAMES}
    keys = {"client_account_id": tenant.client_account_id, "engagement_id": tenant.engagement_id}
    async with engine.begin() as conn:
        await conn.execute(
            insert(Asset),
            [{**keys, "id": ids[n], "name": n, "name_key": n.lower()} for n in NAMES],
        )
        edges = [
            ("alpha_01", "charlie%03", 5432),
            ("bravo-02", "DELTA-04", 5432),
            ("echo-05", "alpha_01", 443),
        ]
        await conn.execute(
            insert(AssetDependency),
            [
                {**keys, "source_asset_id": ids[s], "target_asset_id": ids[t], "port": port}
                for s, t, port in edges
            ],
        )
        # One move group: echo-05 -> alpha_01 -> charlie%03, its root the smallest id.
        group = [ids["echo-05"], ids["alpha_01"], ids["charlie%03"]]
        root = min(group)
        await conn.execute(
            insert(DependencyGroupMember),
            [{**keys, "asset_id": asset, "group_root": root} for asset in group],
        )
    return ids


async def _names(
    engine: AsyncEngine, tenant: Tenant, filters: queries.AssetFilter | None = None
) -> list[str]:
    items, _ = await queries.list_assets(
        engine, tenant, filters or queries.AssetFilter(), 100, None
    )
    return [item.name for item in items]


async def test_reads_carry_the_tenant_predicate_even_where_rls_does_not_apply(
    engine: AsyncEngine,
) -> None:
    mine, theirs = Tenant(uuid.uuid4(), uuid.uuid4()), Tenant(uuid.uuid4(), uuid.uuid4())
    await _seed(engine, mine)
    await _seed(engine, theirs)
    # Same client account, another engagement: the engagement half of the predicate counts too.
    sibling = Tenant(mine.client_account_id, uuid.uuid4())
    await _seed(engine, sibling)

    assert await _names(engine, mine) == list(NAMES)
    edges, _ = await queries.list_dependencies(engine, mine, queries.DependencyFilter(), 100, None)
    assert len(edges) == 3
    assert {(e.source_name, e.target_name) for e in edges} == {
        ("alpha_01", "charlie%03"),
        ("bravo-02", "DELTA-04"),
        ("echo-05", "alpha_01"),
    }
    stranger = Tenant(uuid.uuid4(), uuid.uuid4())
    assert await _names(engine, stranger) == []


async def test_search_takes_percent_and_underscore_literally_and_ignores_case(
    engine: AsyncEngine,
) -> None:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    await _seed(engine, tenant)

    assert await _names(engine, tenant, queries.AssetFilter(search="%")) == ["charlie%03"]
    assert await _names(engine, tenant, queries.AssetFilter(search="_")) == ["alpha_01"]
    assert await _names(engine, tenant, queries.AssetFilter(search="o-0")) == [
        "bravo-02",
        "echo-05",
    ]
    assert await _names(engine, tenant, queries.AssetFilter(search="elta")) == ["DELTA-04"]
    assert await _names(engine, tenant, queries.AssetFilter(search="x")) == []


async def test_groups_filter_assets_and_edges_and_pages_follow_the_keyset(
    engine: AsyncEngine,
) -> None:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4())
    ids = await _seed(engine, tenant)
    group = f"G-{min(ids['echo-05'], ids['alpha_01'], ids['charlie%03'])}"

    assets, _ = await queries.list_assets(engine, tenant, queries.AssetFilter(), 100, None)
    by_name = {a.name: a.dependency_group for a in assets}
    assert by_name == {
        "alpha_01": group,
        "bravo-02": None,
        "charlie%03": group,
        "DELTA-04": None,
        "echo-05": group,
    }
    grouped = await _names(engine, tenant, queries.AssetFilter(dependency_group=group))
    assert grouped == ["alpha_01", "charlie%03", "echo-05"]
    assert await _names(engine, tenant, queries.AssetFilter(dependency_group="G-not-a-uuid")) == []
    inside, _ = await queries.list_dependencies(
        engine, tenant, queries.DependencyFilter(dependency_group=group), 100, None
    )
    assert {(e.source_name, e.target_name) for e in inside} == {
        ("alpha_01", "charlie%03"),
        ("echo-05", "alpha_01"),
    }

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = await queries.list_assets(engine, tenant, queries.AssetFilter(), 2, cursor)
        pages.append([a.name for a in page])
        if cursor is None:
            break
    assert pages == [["alpha_01", "bravo-02"], ["charlie%03", "DELTA-04"], ["echo-05"]]
