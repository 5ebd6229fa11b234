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


class PlanChanged(DecisionRefused):
    """The approval names a plan that is no longer the import's plan (it was made again)."""


class PlanStale(DecisionRefused):
    """The inventory changed since the plan was made: a fresh one was made, to approve anew."""

    def __init__(self, message: str, fresh_plan_id: object) -> None:
        super().__init__(message)
        self.fresh_plan_id = fresh_plan_id
