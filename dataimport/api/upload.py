"""Streaming multipart uploads: the file part goes to storage chunk by chunk as it arrives.

Starlette's form parser would spool the whole body to a temporary file before a route runs,
so the size limit could only be checked afterwards. Here python-multipart's push parser is
fed straight from the request stream: the limit is enforced on the bytes actually received
(Content-Length is only a fast early refusal), the first bytes are sniffed with the readers'
own detector, and every refusal removes the partial file.
"""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from dataimport.api.errors import ApiError
from dataimport.issues import ImportFailure
from dataimport.readers.detect import SAMPLE_SIZE, detect_format, is_zip
from dataimport.storage import StoredFile, StreamingStore, UploadTooLarge, local_path

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024 * 1024  # a processing_config is small; anything bigger is abuse
MAX_PARTS = 16
# Part headers are buffered until each ends: without caps one part could send millions of
# them, or one endless header line. Browsers and curl send two or three short ones.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_LINE = 4096  # one header line, name and value
MAX_PART_HEADER_BYTES = 8 * 1024  # names and values of one part's headers together
_END = None  # marks the end of the file part in the event queue
_WORKBOOK_PART = "xl/workbook.xml"

FieldCheck = Callable[[str, str], None]


@dataclass
class Upload:
    """A received upload: the form fields and the stored file."""

    fields: dict[str, str]
    stored: StoredFile
    filename: str


def too_large(limit: int) -> ApiError:
    return ApiError(413, "upload-too-large", f"the upload is larger than {limit} bytes")


def part_headers_too_large(what: str) -> ApiError:
    return ApiError(413, "part-headers-too-large", f"a form part has {what}")


def unsupported(message: str) -> ApiError:
    return ApiError(415, "unsupported-file-type", message)


@dataclass
class _Sniffer:
    """Collects the first SAMPLE_SIZE bytes and judges them as the readers would."""

    head: bytearray = field(default_factory=bytearray)
    judged: bool = False
    zip: bool = False

    def feed(self, data: bytes) -> None:
        if self.judged:
            return
        self.head += data[: SAMPLE_SIZE - len(self.head)]
        if len(self.head) >= SAMPLE_SIZE:
            self.judge()

    def judge(self) -> None:
        if self.judged:
            return
        self.judged = True
        head = bytes(self.head)
        if not head:
            raise ApiError(422, "empty-file", "the uploaded file is empty (0 bytes)")
        if is_zip(head):  # a workbook is judged by its central directory, once stored
            self.zip = True
            return
        try:
            detect_format(head)
        except ImportFailure as failure:
            raise unsupported(failure.message) from None


def safe_filename(raw: str) -> str:
    """The client's file name for display only: last path segment, no control characters."""
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "upload"


def _is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return _WORKBOOK_PART in archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return False


class _Receiver:
    """python-multipart callbacks (synchronous) queue file data; `receive` writes it async."""

    def __init__(self, uploads_dir: Path, max_bytes: int, check_field: FieldCheck) -> None:
        self.uploads_dir, self.max_bytes, self.check_field = uploads_dir, max_bytes, check_field
        self.fields: dict[str, str] = {}
        self.store: StreamingStore | None = None
        self.filename = ""
        self.file_done = False
        self.sniffer = _Sniffer()
        self.events: list[bytes | None] = []
        self.parts = 0
        self._reset_part()

    def _reset_part(self) -> None:
        self.header_name, self.header_value = bytearray(), bytearray()
        self.header_count, self.header_bytes = 0, 0
        self.disposition = b""
        self.part_name, self.part_is_file = "", False
        self.part_data = bytearray()

    # ----- parser callbacks --------------------------------------------------------------

    def on_part_begin(self) -> None:
        self._reset_part()
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(422, "invalid-request", f"at most {MAX_PARTS} form parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self.header_value += data[start:end]

    def _count_header_bytes(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_PART_HEADER_BYTES:
            raise part_headers_too_large(
                f"more than {MAX_PART_HEADER_BYTES} bytes of headers (the cap)"
            )

    def on_header_end(self) -> None:
        self.header_count += 1
        if self.header_count > MAX_PART_HEADERS:
            raise part_headers_too_large(f"more than {MAX_PART_HEADERS} headers (the cap)")
        if bytes(self.header_name).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_name, self.header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise ApiError(422, "invalid-request", "a form part has no name")
        self.part_name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            self._begin_file(options[b"filename"].decode("utf-8", "replace"))

    def _begin_file(self, filename: str) -> None:
        if self.part_name != FILE_FIELD:
            raise ApiError(422, "invalid-request", f"files go in the {FILE_FIELD!r} field only")
        if self.store is not None:
            raise ApiError(422, "invalid-request", "send exactly one file per import")
        self.part_is_file, self.filename = True, safe_filename(filename)
        self.store = StreamingStore(self.uploads_dir, uuid.uuid4(), self.max_bytes)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part_is_file:
            self.events.append(data[start:end])
            return
        self.part_data += data[start:end]
        if len(self.part_data) > MAX_FIELD_BYTES:
            raise ApiError(413, "field-too-large", f"form field {self.part_name!r} is too large")

    def on_part_end(self) -> None:
        if self.part_is_file:
            self.events.append(_END)
            return
        value = bytes(self.part_data).decode("utf-8", "replace")
        self.fields[self.part_name] = value
        self.check_field(self.part_name, value)  # refuse a bad category before the file

    # ----- the async side ------------------------------------------------------------------

    async def drain(self) -> None:
        """Write the queued file data (sniffing its head) to storage."""
        events, self.events = self.events, []
        for chunk in events:
            if chunk is _END:
                self.sniffer.judge()
                self.file_done = True
                continue
            assert self.store is not None
            self.sniffer.feed(chunk)
            try:
                await self.store.write(chunk)
            except UploadTooLarge:
                raise too_large(self.max_bytes) from None

    async def finish(self) -> Upload:
        if self.store is None or not self.file_done:
            raise ApiError(422, "missing-file", f"send the file in the {FILE_FIELD!r} form field")
        stored = await self.store.commit()
        path = local_path(stored.uri, self.uploads_dir)
        if self.sniffer.zip and not await asyncio.to_thread(_is_workbook, path):
            path.unlink(missing_ok=True)
            raise unsupported("The file is a ZIP archive that is not an XLSX workbook.")
        return Upload(self.fields, stored, self.filename)

    async def discard(self) -> None:
        if self.store is not None:
            await self.store.discard()


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise unsupported("send the import as multipart/form-data")
    return options[b"boundary"]


def _refuse_declared_size(request: Request, max_bytes: int) -> None:
    """A quick 413 for an announced oversize body (the streamed count is what really counts)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MAX_PARTS * MAX_FIELD_BYTES:
        raise too_large(max_bytes)


def _parse_error(error: MultipartParseError) -> ApiError:
    """The parser's own header caps (ours, passed to it) answered like ours, naming the cap."""
    reason = str(error)
    if reason.startswith("Maximum header count"):
        return part_headers_too_large(f"more than {MAX_PART_HEADERS} headers (the cap)")
    if reason.startswith("Maximum header size"):
        return part_headers_too_large(
            f"a header line longer than {MAX_PART_HEADER_LINE} bytes (the cap)"
        )
    return ApiError(422, "invalid-request", f"malformed multipart body: {reason}")


async def receive_upload(
    request: Request, uploads_dir: Path, max_bytes: int, check_field: FieldCheck
) -> Upload:
    """Parse the multipart body as it streams in; the file part goes straight to storage."""
    boundary = _boundary(request)
    _refuse_declared_size(request, max_bytes)
    receiver = _Receiver(uploads_dir, max_bytes, check_field)
    callbacks = {name: getattr(receiver, name) for name in dir(receiver) if name.startswith("on_")}
    parser = MultipartParser(
        boundary,
        callbacks,  # type: ignore[arg-type]
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_LINE,
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await receiver.drain()
        parser.finalize()
        await receiver.drain()
        return await receiver.finish()
    except MultipartParseError as error:
        await receiver.discard()
        raise _parse_error(error) from None
    except BaseException:
        await receiver.discard()
        raise
