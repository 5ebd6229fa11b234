"""A verified caller: its client account, the engagements it may act in, and its scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from dataimport.imports import Tenant


class Scope(StrEnum):
    """What a caller may do; each scope includes the ones before it."""

    READ = "read"  # imports, reports, inventory
    WRITE = "write"  # uploads, retry and fail decisions
    ADMIN = "admin"  # managing the API keys of its tenant

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def includes(self, other: Scope) -> bool:
        return self.rank >= other.rank


class NotGranted(Exception):
    """The request names a client account or engagement the credential does not grant."""


class EngagementNotChosen(Exception):
    """The credential grants several engagements and has no default: the request must name one."""


@dataclass(frozen=True)
class Credential:
    """A caller as verified from its bearer credential. `subject` says who it is in logs and
    listings (a key's id and prefix, a token's issuer and subject), never anything secret."""

    client_account_id: uuid.UUID
    engagement_ids: tuple[uuid.UUID, ...]
    scope: Scope | None  # None: a valid token that grants none of our scopes
    subject: str
    default_engagement_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None

    def allows(self, needed: Scope) -> bool:
        return self.scope is not None and self.scope.includes(needed)

    def tenant(
        self, client_account_id: uuid.UUID | None = None, engagement_id: uuid.UUID | None = None
    ) -> Tenant:
        """The tenant of a request: the client account is the credential's; the engagement is
        the one the request names (it must be granted) or else the credential's default."""
        if client_account_id is not None and client_account_id != self.client_account_id:
            raise NotGranted("this credential is not for that client account")
        if engagement_id is None:
            engagement_id = self.default_engagement_id
            if engagement_id is None and len(self.engagement_ids) == 1:
                engagement_id = self.engagement_ids[0]
            if engagement_id is None:
                raise EngagementNotChosen(
                    "this credential grants several engagements: name one with X-Engagement-ID"
                )
        elif engagement_id not in self.engagement_ids:
            raise NotGranted("this credential is not for that engagement")
        return Tenant(self.client_account_id, engagement_id)
