"""The one tenant predicate every typed statement on a tenant table carries.

Row-level security (FORCEd, dataimport.tenant_context) already hides other tenants' rows;
the explicit predicate is what lets the planner use the (client_account_id, engagement_id, …)
indexes, and it keeps a statement correct when read on its own.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm.util import AliasedClass

from dataimport.models import DataImport, TenantMixin
from dataimport.tenant_context import HasTenant

# A tenant model (Asset, DataImport, …) or an alias of one (aliased(Asset)).
TenantEntity = type[TenantMixin] | AliasedClass[Any]


class NamesImport(HasTenant, Protocol):
    """One import of one tenant: an ImportRef, an ImportRequest, a purge candidate."""

    @property
    def data_import_id(self) -> uuid.UUID: ...


def where_tenant(entity: TenantEntity, tenant: HasTenant) -> ColumnElement[bool]:
    """`entity.client_account_id = … AND entity.engagement_id = …` for `tenant`."""
    # Through uuid.UUID: a holder that carries the ids as text binds as a UUID all the same.
    return and_(
        entity.client_account_id == uuid.UUID(str(tenant.client_account_id)),
        entity.engagement_id == uuid.UUID(str(tenant.engagement_id)),
    )


def the_import(ref: NamesImport) -> ColumnElement[bool]:
    """The data_imports row of `ref`'s import, and only while it is `ref`'s tenant's."""
    return (DataImport.id == ref.data_import_id) & where_tenant(DataImport, ref)
