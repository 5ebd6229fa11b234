"""Sniffing a file from its first bytes: format, text encoding and CSV delimiter.

Also the spreadsheet formula-injection heuristic, shared by every reader and by the code that
writes cells back out to CSV. Everything here works on a bounded sample, never the whole file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterable

from charset_normalizer import from_bytes

from dataimport.error_codes import ImportFailure, Level, register

FILE_BINARY = register(
    "unsupported-format",
    Level.FILE,
    "Unsupported file format",
    "The file is recognised from its bytes (never its name) as something other than CSV, XLSX "
    "or JSON: another binary format, or a ZIP archive that is not a workbook.",
    "The file is {what}, not a CSV, XLSX or JSON file; it cannot be imported.",
).code
FILE_ENCODING = register(
    "encoding-error",
    Level.FILE,
    "Unknown text encoding",
    "The file is not valid UTF-8 and no other supported encoding (Windows-1252, UTF-16 with a "
    "byte-order mark) fits it.",
    "The file is not valid UTF-8 and its text encoding could not be recognised; save it as "
    "UTF-8 CSV and upload it again.",
).code

SAMPLE_SIZE = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")  # in order of preference when the data is ambiguous
_DELIMITER_SAMPLE_RECORDS = 100

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office document (.xls/.doc)"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"{\\rtf", "an RTF document"),
)
# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0 control bytes that never appear in real text files (tab, newlines, form feed, DOS EOF
# and ESC excluded).
_CONTROL_BYTES = bytes(b for b in range(1, 32) if b not in b"\t\n\x0b\x0c\r\x1a\x1b")
# Unicode blocks charset-normalizer reports that carry no script: fine in "Latin" text.
_NEUTRAL_ALPHABETS = frozenset(
    {
        "Control character",
        "General Punctuation",
        "Currency Symbols",
        "Spacing Modifier Letters",
        "Letterlike Symbols",
        "Number Forms",
        "Superscripts and Subscripts",
        "Mathematical Operators",
    }
)
# Legacy encodings (Python codec names, as charset-normalizer reports them) that real exports
# use; Mac, DOS and other rare code pages are not trusted as guesses.
_COMMON_LEGACY_ENCODING = re.compile(
    r"cp125\d|iso8859_\d+|latin_1|koi8_[ru]|cp874|tis_620|cp932|shift_jis|euc_jp"
    r"|cp949|euc_kr|gb2312|gbk|gb18030|big5|big5hkscs"
)
# "[" opens JSON when a JSON value follows: a container, a string, or a number/literal that is
# itself followed by "," or "]" (so a CSV header like "[name],[os]" stays CSV).
_JSON_ARRAY_START = re.compile(
    r"\[\s*(?:[\[{\"\]]|$|(?:-?\d[\d.eE+-]*|true|false|null)\s*(?:[,\]]|$))"
)
# Signed numbers, thousands/decimal separators of either locale, exponent, percent.
_PLAIN_NUMBER = re.compile(r"[+-](?:\d[\d,.]*|[.,]\d+)(?:[eE][+-]?\d+)?%?")


def detect_format(head: bytes) -> str:
    """Classify a file from its first bytes: "csv", "xlsx" or "json".

    XLSX: zip magic with xl/ entries in the sample. JSON: the first non-blank character (after
    a BOM) opens an object, or an array holding a JSON value. Anything else textual is CSV.
    Raises ImportFailure(FILE_BINARY) for anything else that is binary. Never looks at the
    file name: uploads are renamed and users mislabel files.
    """
    if is_zip(head):
        if b"xl/" in head:
            return "xlsx"
        raise _binary("a ZIP archive that is not an XLSX workbook")
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            raise _binary(what)
    bom_encoding = bom_of(head)
    if bom_encoding in ("utf-16", "utf-32"):
        # Wide encodings are full of NUL bytes by design: judge the decoded text instead.
        text = head.decode(bom_encoding, errors="ignore")
        if "\x00" in text:
            raise _binary("a file containing NUL characters")
    else:
        _reject_binary_bytes(head)
        text = head[:4096].decode("utf-8", errors="ignore").lstrip("\ufeff")
    return "json" if _looks_like_json(text) else "csv"


def is_zip(head: bytes) -> bool:
    """True for a ZIP container (XLSX is one; whether it is a workbook needs its directory)."""
    return head.startswith(_ZIP_MAGIC)


def bom_of(head: bytes) -> str | None:
    """The encoding a byte-order mark announces, or None."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def detect_encoding(head: bytes, complete: bool) -> str:
    """Text encoding of a file whose first bytes are `head` (`complete`: head is the whole file).

    BOM first, then strict UTF-8, then charset-normalizer for legacy encodings, preferring
    Windows-1252 for Latin text (charset-normalizer often guesses cp1250 or a Mac code page for
    German/French samples). Raises ImportFailure(FILE_ENCODING) when no encoding fits.
    """
    bom_encoding = bom_of(head)
    if bom_encoding is not None:
        return bom_encoding
    if _decodes(head, "utf-8", complete):
        return "utf-8"
    matches = list(from_bytes(head))  # best first
    # Any Latin reading at all means Latin text: short samples often get an exotic best guess
    # (one "é" came back as Farsi cp1006), while Cyrillic or Greek text has no Latin reading.
    latin = any(_is_latin(match.alphabets) for match in matches)
    if latin and _decodes(head, "cp1252", complete):
        return "cp1252"
    for match in matches:
        # Any bytes decode in *some* code page; only believe the ones real exports use.
        if _COMMON_LEGACY_ENCODING.fullmatch(match.encoding) and _decodes(
            head, match.encoding, complete
        ):
            return match.encoding
    raise _undecodable()


def decode_sample(head: bytes, encoding: str, complete: bool) -> str:
    """Decode a head sample without choking on a multi-byte character cut at its end."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=complete)


def detect_delimiter(sample: str, complete: bool) -> str:
    """The delimiter among , ; TAB | that splits the sample's records most consistently.

    A candidate must split the header; it wins on (share of records with the most common
    field count, that count). Quotes are honoured because csv.reader does the splitting.
    Falls back to comma when nothing qualifies (e.g. a single-column file).
    """
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        counts = _field_counts(sample, delimiter, complete)
        if not counts or counts[0] == 0:
            continue
        mode, frequency = max(Counter(counts).items(), key=lambda item: (item[1], item[0]))
        score = (frequency / len(counts), mode)
        if mode > 0 and score > best_score:
            best, best_score = delimiter, score
    return best


def looks_like_formula(value: str) -> bool:
    """True when a spreadsheet would evaluate the cell (CSV/formula injection, OWASP).

    Starts with = or @; or with + / - followed by something that is not a plain number
    ("-5", "+1.5" are fine, "-2+3+cmd" is not); or a TAB/CR prefix hiding one of those.
    A lone "-" (a common "no value" placeholder) is not a formula.
    """
    if not value or value[0] not in "=@+-\t\r":
        return False  # fast path: almost every cell
    if value[0] in "\t\r":
        rest = value.lstrip("\t\r")
        return bool(rest) and looks_like_formula(rest)
    if value[0] in "=@":
        return True
    if not value[1:].strip():
        return False
    return _PLAIN_NUMBER.fullmatch(value) is None


def escape_formula(value: str) -> str:
    """Neutralise a cell for CSV output: a leading quote makes spreadsheets show it as text."""
    return "'" + value if looks_like_formula(value) else value


def _reject_binary_bytes(head: bytes) -> None:
    if b"\x00" in head:
        raise _binary("a file containing NUL bytes (binary data, or UTF-16 without a BOM)")
    controls = sum(head.count(byte) for byte in _CONTROL_BYTES)
    if controls > max(8, len(head) // 100):
        raise _binary("a file full of control characters (binary data)")


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("{") or _JSON_ARRAY_START.match(stripped) is not None


def _decodes(head: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _is_latin(alphabets: Iterable[str]) -> bool:
    return all("Latin" in name or name in _NEUTRAL_ALPHABETS for name in alphabets)


def _field_counts(sample: str, delimiter: str, complete: bool) -> list[int]:
    """Delimiters per non-blank record of the sample (the cut-off last record excluded)."""
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    records: list[list[str]] = []
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                records.append(record)
            if len(records) > _DELIMITER_SAMPLE_RECORDS:
                break
    except csv.Error:
        pass  # a malformed sample: judge what parsed; the reader reports the real error later
    if not complete and records and len(records) <= _DELIMITER_SAMPLE_RECORDS:
        records.pop()  # the sample ends mid-record
    return [len(record) - 1 for record in records[:_DELIMITER_SAMPLE_RECORDS]]


def _binary(what: str) -> ImportFailure:
    return ImportFailure(
        FILE_BINARY, f"The file is {what}, not a CSV, XLSX or JSON file; it cannot be imported."
    )


def _undecodable() -> ImportFailure:
    return ImportFailure(
        FILE_ENCODING,
        "The file is not valid UTF-8 and its text encoding could not be recognised; "
        "save it as UTF-8 CSV and upload it again.",
    )
