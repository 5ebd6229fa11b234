"""The tenant predicates: both keys, bound as UUIDs, on the entity (or alias) given; one import."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from dataimport.contracts import ImportRef
from dataimport.imports import Tenant
from dataimport.models import Asset, AssetDependency, DataImport
from dataimport.tenant_scope import the_import, where_tenant

CLIENT = uuid.UUID("11111111-1111-4111-8111-111111111111")
ENGAGEMENT = uuid.UUID("22222222-2222-4222-8222-222222222222")
TENANT = Tenant(CLIENT, ENGAGEMENT)


def _compiled(stmt: object) -> tuple[str, dict[str, object]]:
    compiled = stmt.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
    return str(compiled), dict(compiled.params)


def test_the_predicate_names_both_keys_of_the_entity_and_binds_uuids() -> None:
    sql, params = _compiled(select(Asset.id).where(where_tenant(Asset, TENANT)))
    assert "assets.client_account_id = $1::UUID AND assets.engagement_id = $2::UUID" in sql
    assert list(params.values()) == [CLIENT, ENGAGEMENT]


def test_an_alias_gets_its_own_predicate() -> None:
    source = aliased(Asset, name="s")
    stmt = (
        select(AssetDependency.id)
        .join(source, source.id == AssetDependency.source_asset_id)
        .where(where_tenant(AssetDependency, TENANT), where_tenant(source, TENANT))
    )
    sql, _ = _compiled(stmt)
    assert "asset_dependencies.client_account_id = $1::UUID" in sql
    assert "s.client_account_id = $3::UUID AND s.engagement_id = $4::UUID" in sql


def test_a_holder_whose_ids_are_not_uuids_never_reaches_a_statement() -> None:
    liar = Tenant("1 OR 1=1", ENGAGEMENT)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValueError):
        where_tenant(Asset, liar)


def test_the_import_is_its_id_and_its_tenant() -> None:
    ref = ImportRef(
        data_import_id=uuid.uuid4(),
        client_account_id=CLIENT,
        engagement_id=ENGAGEMENT,
        category="cmdb_export",
    )
    sql, params = _compiled(select(DataImport.status).where(the_import(ref)))
    assert (
        "data_imports.id = $1::UUID AND data_imports.client_account_id = $2::UUID "
        "AND data_imports.engagement_id = $3::UUID"
    ) in sql
    assert list(params.values()) == [ref.data_import_id, CLIENT, ENGAGEMENT]
