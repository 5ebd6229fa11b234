"""File storage behind a small interface: the client stores an upload, workers read it by URI.

The embedded default is a local folder (`file://` URIs). Several worker machines share it as a
mounted volume; an S3-compatible store can implement the same functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from dataimport.error_codes import ImportFailure, Level, register

FILE_NOT_FOUND = register(
    "file-not-found",
    Level.FILE,
    "Stored file missing",
    "The import's stored file is gone from the storage area (or its URI names an unsupported "
    "scheme).",
    "stored file is missing: {name}",
).code
# Workers trust no workflow input (docs/untrusted-input.md).
OUTSIDE_STORAGE = register(
    "file-outside-storage",
    Level.FILE,
    "File outside the storage area",
    "The workflow input names a file outside the storage root the worker reads from.",
    "The file {name!r} is not inside the storage area this worker reads from; a worker only "
    "reads files the service stored there. Upload the file through the CLI or the API.",
)

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredFile:
    uri: str
    size: int
    sha256: str


def private_dir(path: Path) -> None:
    """The uploads folder is the service's alone (0700): uploads may be sensitive inventories.

    A folder the service does not own (a volume mounted by someone else) is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) != 0o700:
            path.chmod(0o700)


def _private_file(path: Path) -> BinaryIO:
    """A new file only the service can read (0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older partial file of the same name keeps no wider mode
    return os.fdopen(fd, "wb")


def store_upload(source: Path, uploads_dir: Path, data_import_id: uuid.UUID) -> StoredFile:
    """Copy the user's file under a server-chosen name, hashing it on the way (streamed)."""
    private_dir(uploads_dir)
    target = uploads_dir / f"{data_import_id}.upload"
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, _private_file(partial) as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    partial.replace(target)  # atomic: a reader never sees a half-copied file
    return StoredFile(uri=target.resolve().as_uri(), size=size, sha256=digest.hexdigest())


class UploadTooLarge(Exception):
    """The stream went past the size limit; nothing of it is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class StreamingStore:
    """Writes an upload arriving in chunks to `<id>.partial`, hashing and counting as it goes.

    `commit` renames it atomically to `<id>.upload`; `discard` removes it. Writes are buffered
    to `_CHUNK` and done in a thread, so the event loop never waits on the disk.
    """

    def __init__(self, uploads_dir: Path, file_id: uuid.UUID, max_bytes: int | None = None):
        self.target = uploads_dir / f"{file_id}.upload"
        self.partial = self.target.with_suffix(".partial")
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._uploads_dir = uploads_dir
        self._handle: Any = None

    async def write(self, chunk: bytes) -> None:
        """Append a chunk; past `max_bytes` the partial file goes and UploadTooLarge is raised."""
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            await self.discard()
            raise UploadTooLarge(self.max_bytes)
        self._digest.update(chunk)
        self._buffer += chunk
        if len(self._buffer) >= _CHUNK:
            await self._flush()

    async def commit(self) -> StoredFile:
        await self._flush()
        await asyncio.to_thread(self._close_and_rename)
        uri = self.target.resolve().as_uri()
        return StoredFile(uri=uri, size=self.size, sha256=self._digest.hexdigest())

    async def discard(self) -> None:
        await asyncio.to_thread(self._close_and_remove)

    async def _flush(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        if self._handle is None:  # opened on first use: a request refused early leaves no file
            private_dir(self._uploads_dir)
            self._handle = _private_file(self.partial)
        self._handle.write(data)

    def _close_and_rename(self) -> None:
        self._write(b"")  # an empty upload still gets its (empty) file
        self._handle.close()
        self.partial.replace(self.target)  # atomic: a reader never sees a half-written file

    def _close_and_remove(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.partial.unlink(missing_ok=True)


async def store_stream(
    chunks: AsyncIterable[bytes],
    uploads_dir: Path,
    file_id: uuid.UUID,
    max_bytes: int | None = None,
) -> StoredFile:
    """Store a stream of chunks under a server-chosen name, never holding it whole in memory."""
    store = StreamingStore(uploads_dir, file_id, max_bytes)
    try:
        async for chunk in chunks:
            await store.write(chunk)
        return await store.commit()
    except BaseException:
        await store.discard()
        raise


def remove_stored(uri: str) -> None:
    """Delete a stored file nobody will read (e.g. a repeated upload of an existing import)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        Path(unquote(parsed.path)).unlink(missing_ok=True)


def local_path(uri: str, root: Path) -> Path:
    """The local path of a stored file, which must lie inside the storage root `root`.

    A URI comes from a workflow input, and anyone who can start a workflow chooses it: the
    path is resolved (symlinks and `..` included) and refused with OUTSIDE_STORAGE unless it
    lies inside the resolved root, before anything opens it. FILE_NOT_FOUND when it is gone.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ImportFailure(FILE_NOT_FOUND, f"unsupported storage URI scheme: {parsed.scheme!r}")
    path = Path(unquote(parsed.path))
    if parsed.netloc not in ("", "localhost") or not path.is_absolute():
        raise OUTSIDE_STORAGE.failure(name=path.name)
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise OUTSIDE_STORAGE.failure(name=path.name)
    if not resolved.is_file():
        raise ImportFailure(FILE_NOT_FOUND, f"stored file is missing: {path.name}")
    return resolved
