"""Serves the console's page and its static files (no templates: the page reads the JSON API).

The page holds no data of its own, so these routes need no credential; every /api call the
page makes carries the API key the user signed in with. Only files shipped in `static/` are
served, looked up by name, never by a path the request builds.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from dataimport.api.errors import ApiError

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

# Nothing is fetched from anywhere but this origin (vendored libraries only, no CDN).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _shipped() -> dict[str, Path]:
    """Every file under static/, by its relative name (computed once: the set is fixed)."""
    return {
        path.relative_to(STATIC).as_posix(): path
        for path in STATIC.rglob("*")
        if path.is_file() and path.suffix in _MEDIA
    }


_FILES = _shipped()


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_MEDIA[path.suffix], headers=SECURITY_HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get(PREFIX)
async def console_bare() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get(f"{PREFIX}/")
async def console_page() -> FileResponse:
    return _file(_FILES["index.html"])


@router.get(PREFIX + "/static/{name:path}")
async def console_static(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise ApiError(404, "not-found", f"no console file {name}")
    return _file(path)
