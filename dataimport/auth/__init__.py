"""Who is calling: API keys and OIDC bearer tokens, each turned into one `Credential`.

The HTTP API (and anything else that serves callers) asks this package, never a header, which
tenant a request belongs to and what it may do there.
"""

from dataimport.auth.credentials import (
    Credential,
    EngagementNotChosen,
    NotGranted,
    Scope,
)

__all__ = ["Credential", "EngagementNotChosen", "NotGranted", "Scope"]
