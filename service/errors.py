"""The application service's own errors: the CLI maps them to exit codes, the API to statuses."""

from __future__ import annotations


class ServiceError(Exception):
    """An expected refusal of the service, with a message for people."""


class InvalidRequest(ServiceError):
    """The request cannot be carried out as given: unknown category, bad config, no file."""


class ImportNotFound(ServiceError, LookupError):
    """No such import for this tenant (another tenant's id reads the same)."""


class DecisionRefused(ServiceError):
    """A decision the import cannot take now: it is not waiting, or its workflow refused."""


class NoPlan(ServiceError):
    """The import has no approval plan (never asked for approval, or not planned yet)."""
