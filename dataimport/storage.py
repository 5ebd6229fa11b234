"""File storage behind a small interface: the client stores an upload, workers read it by URI.

The embedded default is a local folder (`file://` URIs). Several worker machines share it as a
mounted volume; an S3-compatible store can implement the same three functions.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from dataimport.issues import FILE_NOT_FOUND, ImportFailure

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredFile:
    uri: str
    size: int
    sha256: str


def store_upload(source: Path, uploads_dir: Path, data_import_id: uuid.UUID) -> StoredFile:
    """Copy the user's file under a server-chosen name, hashing it on the way (streamed)."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    target = uploads_dir / f"{data_import_id}.upload"
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, partial.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    partial.replace(target)  # atomic: a reader never sees a half-copied file
    return StoredFile(uri=target.resolve().as_uri(), size=size, sha256=digest.hexdigest())


def local_path(uri: str) -> Path:
    """The local path of a stored file; a classified error when it is gone."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ImportFailure(FILE_NOT_FOUND, f"unsupported storage URI scheme: {parsed.scheme!r}")
    path = Path(unquote(parsed.path))
    if not path.is_file():
        raise ImportFailure(FILE_NOT_FOUND, f"stored file is missing: {path.name}")
    return path
