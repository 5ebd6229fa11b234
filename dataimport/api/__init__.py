"""HTTP API of the import service (FastAPI): `dataimport api`, or `create_app(settings)`."""

from dataimport.api.app import create_app

__all__ = ["create_app"]
