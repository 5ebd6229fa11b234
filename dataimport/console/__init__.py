"""The import console: one static page over the JSON API, served by the API process."""

from dataimport.console.routes import router

__all__ = ["router"]
