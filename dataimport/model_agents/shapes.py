"""Value shapes: what the model may know about a column's values."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Sequence

_SHAPES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("boolean", lambda v: v.lower() in {"true", "false", "yes", "no", "y", "n"}),
    ("integer", lambda v: re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+|[+-]?\d+", v) is not None),
    ("decimal", lambda v: re.fullmatch(r"[+-]?\d*[.,]\d+", v) is not None),
    ("ipv4", lambda v: _is_ip(v, 4)),
    ("ipv6", lambda v: _is_ip(v, 6)),
    (
        "uuid",
        lambda v: re.fullmatch(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", v, re.I) is not None,
    ),
    ("date", lambda v: re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", v) is not None),
    ("datetime", lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", v) is not None),
    ("email-like", lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", v, re.I) is not None),
    ("url", lambda v: re.match(r"[a-z][a-z0-9+.-]*://", v, re.I) is not None),
    ("size-with-unit", lambda v: re.fullmatch(r"[\d.,]+\s*[kmgtp]i?b", v, re.I) is not None),
    ("dotted-name", lambda v: re.fullmatch(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+", v, re.I) is not None),
    ("list", lambda v: bool(re.search(r"[;,|]", v))),
)


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def value_shape(value: str) -> str:
    """One value's shape: a name from _SHAPES, else text(<length>)."""
    for name, matches in _SHAPES:
        if matches(value):
            return name
    return f"text({len(value)})"


def column_shape(values: Sequence[str]) -> str:
    """A column's shape from sampled values: the common shape, or the two commonest."""
    present = [value.strip() for value in values if value and value.strip()]
    if not present:
        return "empty"
    shapes = [value_shape(value) for value in present]
    if all(shape.startswith("text(") for shape in shapes):
        return f"text({max(len(value) for value in present)})"
    common = [shape for shape, _ in Counter(shapes).most_common(2)]
    shape = common[0] if len(common) == 1 else f"mixed({common[0]}|{common[1]})"
    return shape if len(present) == len(values) else f"{shape}, some empty"
