"""Set-based asset resolution and the infrastructure / sensitive_data enrichment built on it:
the ranked matching against a reference written from its definition, write-back and
idempotence, prepared imports equal to range-by-range ones, and parallel ranges of a prepared
import never waiting on each other's locks (real PostgreSQL, no mocks)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dataimport import asset_matching, enrichment
from dataimport.asset_matching import LOOKUPS
from dataimport.asset_resolution import resolve_assets
from dataimport.categories import get_category
from dataimport.categories.base import ImportScope
from dataimport.contracts import ImportRef
from service.imports import ImportService
from tests.factories import (
    RVTOOLS_HEADERS,
    TERMINAL_OR_WAITING,
    new_import_record,
    rvtools_row,
    wait_for,
    write_csv,
)

IDENTITY: tuple[str, ...] = ("name", "name_key", "hostname_key", "hostname", "external_id")
IDENTITY += ("vm_uuid", "ip_address", "asset_type")
ASSET_COLUMNS = ", ".join(["id", *IDENTITY])


def scope_of(ref: ImportRef, first: int = 1, last: int = 2**31 - 1) -> ImportScope:
    return ImportScope(
        str(ref.data_import_id), str(ref.client_account_id), str(ref.engagement_id), first, last
    )


def tenant_params(ref: ImportRef) -> dict[str, str]:
    return {"c": str(ref.client_account_id), "e": str(ref.engagement_id)}


async def stage(conn: AsyncConnection, ref: ImportRef, rows: Sequence[Mapping[str, Any]]) -> None:
    await conn.execute(
        text(
            "INSERT INTO raw_import_records (data_import_id, client_account_id, engagement_id, "
            "row_number, raw_data, is_valid, superseded, normalized_data) VALUES (:id, :c, :e, "
            ":n, '{}', :valid, :superseded, CAST(:normalized AS jsonb))"
        ),
        [
            {
                "id": str(ref.data_import_id),
                **tenant_params(ref),
                "n": row["n"],
                "valid": row.get("valid", True),
                "superseded": row.get("superseded", False),
                "normalized": json.dumps(row["normalized"]),
            }
            for row in rows
        ],
    )


# --- the reference: the ranked matching as defined, in Python -----------------------------


def best_match(identity: Mapping[str, Any], assets: Sequence[Mapping[str, Any]]) -> Any:
    """Best rank (external id, VM UUID, name key, host name key, IP), smallest id within it."""
    for column, key in LOOKUPS:
        if identity.get(key) is None:
            continue
        ids = [a["id"] for a in assets if a[column] == identity[key]]
        if ids:
            return min(ids)
    return None


def random_case(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded assets sharing host names and IPs, and rows naming them (or new machines) by
    every key: ties within a rank, better ranks elsewhere, repeated and new name keys."""
    rng = random.Random(seed)
    seeded = [
        {
            "seq": i,
            "name_key": f"s{i}",
            "external_id": f"E{i}" if i % 3 == 0 else None,
            "vm_uuid": f"U{i}" if i % 4 == 0 else None,
            "hostname_key": f"h{i % 7}" if i % 2 else None,
            "ip_address": f"10.0.0.{i % 5}" if i % 5 != 4 else None,
        }
        for i in range(1, 21)
    ]
    rows = []
    for n in range(1, 161):
        key = rng.choice([f"s{rng.randint(1, 20)}", f"n{rng.randint(1, 30)}"])
        identity: dict[str, Any] = {"name": f"Name {key} {n}", "name_key": key}
        if rng.random() < 0.15:
            identity["external_id"] = f"E{3 * rng.randint(1, 6)}"
        if rng.random() < 0.15:
            identity["vm_uuid"] = rng.choice([f"U{4 * rng.randint(1, 5)}", f"NEWU{n}"])
        if rng.random() < 0.5:
            identity["hostname_key"] = f"h{rng.randint(0, 9)}"
            identity["hostname"] = identity["hostname_key"].upper()
        if rng.random() < 0.5:
            identity["ip_address"] = f"10.0.0.{rng.randint(0, 9)}"
        if rng.random() < 0.2:
            identity["asset_type"] = "database"
        row: dict[str, Any] = {"n": n, "normalized": {"kind": "machine", "asset": identity}}
        if n % 37 == 0:
            row["superseded"] = True
        if n % 41 == 0:
            row["valid"] = False
        if n % 43 == 0:
            identity.pop("name_key")  # names no asset: never resolved
        rows.append(row)
    return seeded, rows


async def seed_assets(conn: AsyncConnection, ref: ImportRef, seeded: Sequence[Mapping[str, Any]]):
    await conn.execute(
        text(
            "INSERT INTO assets (client_account_id, engagement_id, name, name_key, external_id, "
            "vm_uuid, hostname_key, ip_address) VALUES (:c, :e, upper(:name_key), :name_key, "
            ":external_id, :vm_uuid, :hostname_key, :ip_address)"
        ),
        [{**tenant_params(ref), **{k: v for k, v in a.items() if k != "seq"}} for a in seeded],
    )


async def tenant_assets(conn: AsyncConnection, ref: ImportRef) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            f"SELECT {ASSET_COLUMNS}, created_by_import_id FROM assets "
            "WHERE client_account_id = :c AND engagement_id = :e"
        ),
        tenant_params(ref),
    )
    return [dict(row) for row in rows.mappings()]


# The matching's two plans: hash joins with the tenant's assets, or an index probe per
# identity (chosen by the assets table's size against the identities': forced either way).
MODES = {"hash joins": 10**12, "index probes": -1}


@pytest.mark.parametrize("mode", MODES)
async def test_resolution_follows_the_ranks_creates_the_unmatched_once_and_is_idempotent(
    engine: AsyncEngine, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asset_matching, "PROBE_RATIO", MODES[mode])
    ref = await new_import_record(engine, "infrastructure")
    seeded, rows = random_case(7)
    async with engine.begin() as conn:
        await seed_assets(conn, ref, seeded)
        await stage(conn, ref, rows)
        initial = await tenant_assets(conn, ref)

    async with engine.begin() as conn:
        created = await resolve_assets(conn, scope_of(ref), "asset", default_type="server")

    eligible = [
        r
        for r in rows
        if r.get("valid", True)
        and not r.get("superseded")
        and r["normalized"]["asset"].get("name_key")
    ]
    # Created: the rows no asset matched before, one per name key, from its latest row.
    latest: dict[str, Mapping[str, Any]] = {}
    for r in eligible:
        identity = r["normalized"]["asset"]
        if best_match(identity, initial) is None:
            latest[identity["name_key"]] = identity  # rows in row order: the last one wins
    async with engine.connect() as conn:
        final = await tenant_assets(conn, ref)
        resolved: dict[int, uuid.UUID | None] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT r.row_number, l.asset_id FROM raw_import_records r "
                        "LEFT JOIN staged_row_assets l USING (data_import_id, row_number) "
                        "WHERE r.data_import_id = :id"
                    ),
                    {"id": str(ref.data_import_id)},
                )
            ).all()
        )
    new = {a["name_key"]: a for a in final if a["created_by_import_id"] == ref.data_import_id}
    assert created == len(new) == len(latest) > 5
    for key, identity in latest.items():
        got = {c: new[key][c] for c in IDENTITY}
        assert got == {
            c: identity.get(c, "server" if c == "asset_type" else None) for c in IDENTITY
        }
    # Written back: every eligible row's best match among all assets after the creation.
    expected = {r["n"]: best_match(r["normalized"]["asset"], final) for r in eligible}
    assert {n: resolved[n] for n in expected} == expected
    assert all(resolved[r["n"]] is None for r in rows if r["n"] not in expected)
    assert len({v for v in expected.values()}) > 20  # many distinct assets, every rank used

    # Again: nothing created, no row rewritten.
    versions = "SELECT row_number, xmin::text FROM raw_import_records WHERE data_import_id = :id"
    async with engine.connect() as conn:
        before = (await conn.execute(text(versions), {"id": str(ref.data_import_id)})).all()
    async with engine.begin() as conn:
        assert await resolve_assets(conn, scope_of(ref), "asset") == 0
    async with engine.connect() as conn:
        after = (await conn.execute(text(versions), {"id": str(ref.data_import_id)})).all()
        assert len(await tenant_assets(conn, ref)) == len(final)
    assert sorted(after) == sorted(before)


async def test_resolution_of_an_endpoint_path_writes_its_asset_id_into_the_row(
    engine: AsyncEngine,
) -> None:
    ref = await new_import_record(engine, "app_discovery")
    rows = [
        {"n": 1, "normalized": {"source": {"name": "a", "name_key": "a"}, "target": {}}},
        {
            "n": 2,
            "normalized": {"source": {"name": "b", "name_key": "b", "ip_address": "10.9.0.1"}},
        },
        {"n": 3, "normalized": {"source": {"name": "10.9.0.1", "name_key": "10.9.0.1"}}},
    ]
    async with engine.begin() as conn:
        await stage(conn, ref, rows)
        assert await resolve_assets(conn, scope_of(ref), "source") == 3
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT r.row_number, a.name_key, l.asset_id, l.row_number IS NOT NULL "
                    "FROM raw_import_records r JOIN assets a "
                    "ON a.id = CAST(r.normalized_data -> 'source' ->> 'asset_id' AS uuid) "
                    "LEFT JOIN staged_row_assets l USING (data_import_id, row_number) "
                    "WHERE r.data_import_id = :id ORDER BY r.row_number"
                ),
                {"id": str(ref.data_import_id)},
            )
        ).all()
    # row 3 is created under its own name key before the write-back: the name key wins
    assert found == [(1, "a", None, False), (2, "b", None, False), (3, "10.9.0.1", None, False)]


async def test_resolving_the_asset_path_links_the_resolved_rows_in_the_same_write(
    engine: AsyncEngine,
) -> None:
    ref = await new_import_record(engine, "sensitive_data")
    rows = [
        {"n": 1, "normalized": {"asset": {"name": "h1", "name_key": "h1"}}},
        {"n": 2, "normalized": {"asset": {"name": "h2"}}},  # no name key: no asset
        {"n": 3, "normalized": {"asset": {"name": "h1", "name_key": "h1"}}, "valid": False},
    ]
    async with engine.begin() as conn:
        await stage(conn, ref, rows)
        await resolve_assets(conn, scope_of(ref), "asset")
        marked = (
            await conn.execute(
                text(
                    "SELECT r.row_number, l.asset_id IS NOT NULL, l.row_number IS NOT NULL "
                    "FROM raw_import_records r "
                    "LEFT JOIN staged_row_assets l USING (data_import_id, row_number) "
                    "WHERE r.data_import_id = :id ORDER BY r.row_number"
                ),
                {"id": str(ref.data_import_id)},
            )
        ).all()
    assert marked == [(1, True, True), (2, False, False), (3, False, False)]


# --- prepared imports equal range-by-range ones -------------------------------------------


async def copy_staged(engine: AsyncEngine, source: uuid.UUID, category: str) -> ImportRef:
    """The validated staged rows of `source` as a fresh import of a fresh tenant."""
    ref = await new_import_record(engine, category)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO raw_import_records (data_import_id, client_account_id, "
                "engagement_id, row_number, raw_data, is_valid, superseded, validation_errors, "
                "normalized_data) SELECT :id, :c, :e, row_number, raw_data, is_valid, "
                "superseded, validation_errors, normalized_data FROM raw_import_records "
                "WHERE data_import_id = :source"
            ),
            {"id": str(ref.data_import_id), **tenant_params(ref), "source": str(source)},
        )
        await conn.execute(
            text("UPDATE data_imports SET total_rows = :n WHERE id = :id"),
            {
                "id": str(ref.data_import_id),
                "n": await conn.scalar(
                    text("SELECT count(*) FROM raw_import_records WHERE data_import_id = :s"),
                    {"s": str(source)},
                ),
            },
        )
    return ref


INVENTORY_SQL = """
SELECT name_key, name, hostname, hostname_key, external_id, vm_uuid, ip_address, asset_type,
  cpu_cores, memory_gb, storage_gb, storage_used_gb, power_state, host_name, cluster,
  operating_system, custom_attributes, rightsizing, data_classification, compliance_scopes,
  pii_categories, encryption_at_rest, encryption_in_transit, data_stores
FROM assets WHERE client_account_id = :c AND engagement_id = :e ORDER BY name_key
"""


async def inventory(engine: AsyncEngine, c: Any, e: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(INVENTORY_SQL), {"c": str(c), "e": str(e)})).mappings()
        found = [dict(row) for row in rows]
    for asset in found:
        asset["data_stores"] = [
            {k: v for k, v in entry.items() if k != "import_id"}
            for entry in asset["data_stores"] or []
        ]
    return found


async def processed(engine: AsyncEngine, data_import_id: Any) -> int:
    async with engine.connect() as conn:
        count: int = await conn.scalar(
            text("SELECT count(*) FROM staged_row_assets WHERE data_import_id = :id"),
            {"id": str(data_import_id)},
        )
    return count


async def unprepared_in_row_order(engine: AsyncEngine, ref: ImportRef, total: int, size: int):
    """The command sequence of an import recorded before prepare existed, one range after
    another (each in its own transaction, as enrich_chunk runs them)."""
    category = get_category(ref.category)
    for first in range(1, total + 1, size):
        async with engine.begin() as conn:
            await category.enrich_unprepared(  # type: ignore[attr-defined]
                conn, scope_of(ref, first, min(first + size - 1, total))
            )
    for first in range(1, total + 1, size):
        async with engine.begin() as conn:
            await category.link(conn, scope_of(ref, first, min(first + size - 1, total)))


def sensitive_rows(count: int) -> list[list[str]]:
    """Stores of five hosts interleaved (every range shares every host), tables repeated
    (one table's columns over many rows), mixed classifications and flags."""
    levels = ["Internal", "Confidential", "Restricted", "Public", ""]
    rows = []
    for n in range(count):
        rows.append(
            [
                f"db-{n % 5:02d}",
                ["PostgreSQL", "Oracle"][n % 2],
                f"db_{n % 3}",
                f"t_{n % 11}",
                ["email, phone", "salary", "ssn, dob", ""][n % 4],
                ["Personal data", "Financial", ""][n % 3],
                levels[n % 5],
                ["GDPR", "PCI-DSS", "HIPAA, GDPR", ""][n % 4],
                ["Yes", "No", ""][n % 3],
                ["Yes", "", "No"][n % 3],
                str(100 * (n % 7)),
                f"owner-{n % 4}",
                ["eu-west-1", "us-east-1"][n % 2],
            ]
        )
    return rows


SENSITIVE_HEADERS = [
    "Host",
    "Data Store",
    "Database",
    "Table",
    "Columns",
    "Data Categories",
    "Classification",
    "Compliance",
    "Encrypted at rest",
    "Encrypted in transit",
    "Record Count",
    "Owner",
    "Region",
]


@pytest.mark.usefixtures("worker")
async def test_sensitive_prepared_parallel_ranges_equal_ranges_merged_in_row_order(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = sensitive_rows(420)
    path = write_csv(tmp_path / "stores.csv", SENSITIVE_HEADERS, rows)
    config = {"chunk_size": 100, "max_parallel_chunks": 4}
    started = await service.start_import(path, "sensitive_data", config)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.valid_rows, status.assets_created) == ("completed", 420, 5)
    assert status.processed_rows == 420
    prepared = await inventory(
        engine, service.tenant.client_account_id, service.tenant.engagement_id
    )

    copy = await copy_staged(engine, started.data_import_id, "sensitive_data")
    await unprepared_in_row_order(engine, copy, 420, 100)
    assert await processed(engine, copy.data_import_id) == 420
    assert await inventory(engine, copy.client_account_id, copy.engagement_id) == prepared
    assert {len(a["data_stores"]) for a in prepared} == {66}  # 2 stores x 3 dbs x 11 tables

    # A retried range of the prepared import changes nothing.
    ref = ImportRef(
        data_import_id=started.data_import_id,
        client_account_id=service.tenant.client_account_id,
        engagement_id=service.tenant.engagement_id,
        category="sensitive_data",
    )
    from dataimport.contracts import RowRange

    await enrichment.enrich_chunk(engine, ref, RowRange(first_row=101, last_row=200))
    again = await inventory(engine, service.tenant.client_account_id, service.tenant.engagement_id)
    assert again == prepared


@pytest.mark.usefixtures("worker")
async def test_infrastructure_prepared_parallel_ranges_equal_one_range(
    service: ImportService, engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [
        rvtools_row(
            f"vm-{n:03d}",
            cpus=str(1 + n % 8),
            memory_mib=str(1024 * (1 + n % 16)),
            host=f"esx-{n % 4:02d}",
            ip=f"10.3.{n // 200}.{n % 200}",
            dns=f"vm-{n:03d}.corp.local" if n % 3 else "",
            power=["poweredOn", "poweredOff"][n % 2],
        )
        for n in range(350)
    ]
    # clones sharing a BIOS UUID across ranges: taken out of matching, as in one range
    rows[5][15] = rows[305][15] = "4210aaaa-0000-0000-0000-00000000abcd"
    path = write_csv(tmp_path / "vinfo.csv", RVTOOLS_HEADERS, rows)
    config = {"chunk_size": 100, "max_parallel_chunks": 3}
    started = await service.start_import(path, "infrastructure", config)
    status = await wait_for(service, started.data_import_id, TERMINAL_OR_WAITING)
    assert (status.status, status.valid_rows, status.assets_created) == ("completed", 350, 350)
    assert status.processed_rows == 350
    prepared = await inventory(
        engine, service.tenant.client_account_id, service.tenant.engagement_id
    )
    assert sum(1 for a in prepared if a["vm_uuid"] is None) == 2

    copy = await copy_staged(engine, started.data_import_id, "infrastructure")
    await unprepared_in_row_order(engine, copy, 350, 350)  # one range: the old outcome
    assert await processed(engine, copy.data_import_id) == 350
    assert await inventory(engine, copy.client_account_id, copy.engagement_id) == prepared


# --- parallel ranges of a prepared import never wait on each other --------------------------


@pytest.mark.parametrize("category", ["sensitive_data", "infrastructure"])
async def test_ranges_of_a_prepared_import_take_no_lock_another_range_waits_for(
    engine: AsyncEngine, category: str
) -> None:
    ref = await new_import_record(engine, category)
    if category == "sensitive_data":
        staged = [
            {
                "n": n,
                "normalized": {
                    "asset": {"name": f"db-{n % 3}", "name_key": f"db-{n % 3}"},
                    "store": {"key": f"pg/t{n}", "store": "pg", "classification": "internal"},
                },
            }
            for n in range(1, 61)
        ]
    else:
        staged = [
            {
                "n": n,
                "normalized": {
                    "kind": "machine",
                    "asset": {"name": f"vm-{n}", "name_key": f"vm-{n}", "cpu_cores": n},
                    "observed_at": None,
                },
            }
            for n in range(1, 61)
        ]
    async with engine.begin() as conn:
        await stage(conn, ref, staged)
    await enrichment.prepare(engine, ref)

    cat = get_category(category)
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await cat.enrich(first, scope_of(ref, 1, 30))  # uncommitted, its locks held
        await second.begin()
        await second.execute(text("SET LOCAL lock_timeout = '2s'"))
        await cat.enrich(second, scope_of(ref, 31, 60))  # would time out if it waited
        await second.commit()
        await first.commit()
    assert await processed(engine, ref.data_import_id) == 60


# --- imports prepared by the code before this one (a deployment mid-import) -----------------


def staged_for(category: str) -> list[dict[str, Any]]:
    if category == "sensitive_data":
        return [
            {
                "n": n,
                "normalized": {
                    "asset": {"name": f"db-{n % 3}", "name_key": f"db-{n % 3}"},
                    "store": {
                        "key": f"pg/t{n % 7}",
                        "store": "pg",
                        "table": f"t{n % 7}",
                        "columns": [f"c{n}"],
                        "classification": ["internal", "restricted"][n % 2],
                        "compliance_scopes": [["GDPR"], ["PCI-DSS"]][n % 2],
                        "encryption_at_rest": n % 5 != 0,
                    },
                },
            }
            for n in range(1, 61)
        ]
    return [
        {
            "n": n,
            "normalized": {
                "kind": "machine",
                "asset": {"name": f"vm-{n}", "name_key": f"vm-{n}", "cpu_cores": n},
                "observed_at": None,
            },
        }
        for n in range(1, 61)
    ]


async def staged_import(engine: AsyncEngine, category: str) -> ImportRef:
    ref = await new_import_record(engine, category)
    async with engine.begin() as conn:
        await stage(conn, ref, staged_for(category))
    return ref


@pytest.mark.parametrize("category", ["sensitive_data", "infrastructure"])
async def test_ranges_of_an_import_prepared_by_the_previous_code_still_enrich_it(
    engine: AsyncEngine, category: str
) -> None:
    """Its prepare recorded the marker only (infrastructure) or created the hosts only
    (sensitive_data): its ranges, run by this code, must still write what they always did."""
    from datetime import UTC, datetime

    from dataimport import steps

    cat = get_category(category)
    old = await staged_import(engine, category)
    async with engine.begin() as conn:
        if category == "sensitive_data":
            await resolve_assets(conn, scope_of(old), "asset", write_back=False)
        await steps.record_step(
            conn,
            old,
            step=enrichment.PREPARE_STEP,
            agent=enrichment.PREPARE_AGENT,
            started_at=datetime.now(UTC),
            records=0,
            findings={"link_ranges": category == "infrastructure"},
        )
    new = await staged_import(engine, category)
    await enrichment.prepare(engine, new)
    for ref in (old, new):
        for first in (1, 31):
            async with engine.begin() as conn:
                await cat.enrich(conn, scope_of(ref, first, first + 29))
    expected = await inventory(engine, new.client_account_id, new.engagement_id)
    assert len(expected) == (3 if category == "sensitive_data" else 60)
    assert await inventory(engine, old.client_account_id, old.engagement_id) == expected
    assert await processed(engine, old.data_import_id) == 60


async def test_probing_reads_the_inventory_by_index_only(engine: AsyncEngine) -> None:
    """Plans, not timings: with probes, a few identities in a tenant of thousands of assets
    are matched through the (tenant, key) indexes, never by reading the tenant's assets."""
    ref = await new_import_record(engine, "infrastructure")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO assets (client_account_id, engagement_id, name, name_key, "
                "external_id, vm_uuid, hostname_key, ip_address) "
                "SELECT :c, :e, 'A' || i, 'a' || i, 'E' || i, 'U' || i, 'h' || i, "
                "'10.1.' || (i / 250) || '.' || (i % 250) FROM generate_series(1, 3000) i"
            ),
            tenant_params(ref),
        )
        await conn.execute(text("ANALYZE assets"))
        await conn.execute(
            text(
                "CREATE TEMPORARY TABLE probe_ends ON COMMIT DROP AS SELECT "
                "CAST(i AS bigint) AS n, CAST(NULL AS uuid) AS asset_id, 'E' || i AS external_id, "
                "'U' || i AS vm_uuid, 'a' || i AS name_key, 'h' || i AS hostname_key, "
                "'10.1.0.' || i AS ip_address FROM generate_series(1, 5) i"
            )
        )
        sql = asset_matching.match_sql("probe_ends", range(1, 6), probe=True)
        plan = "\n".join((await conn.execute(text("EXPLAIN " + sql), tenant_params(ref))).scalars())
        await conn.execute(text(sql), tenant_params(ref))
        matched = (
            await conn.execute(
                text(
                    "SELECT e.n, a.name_key FROM probe_ends e JOIN assets a ON a.id = e.asset_id "
                    "ORDER BY e.n"
                )
            )
        ).all()
    assert "Seq Scan on assets" not in plan, plan
    assert plan.count("Index Scan") + plan.count("Index Only Scan") >= 5, plan
    assert [tuple(m) for m in matched] == [(n, f"a{n}") for n in range(1, 6)]
