"""Identity forms every category needs, column-wise: name keys, host name keys, plain IPv4.

Each is `dataimport.normalize`'s function exactly: vectorised where that is provably the same
(ASCII text, a host name that cannot be an IP address), the function itself on the distinct
rest.
"""

from __future__ import annotations

import polars as pl

from dataimport.engine.text import by_distinct, is_ascii, name_key_ascii, per_distinct, py_strip
from dataimport.normalize import hostname_key, name_key

# normalize._PLAIN_IPV4, anchored: a dotted quad without leading zeros is already canonical.
PLAIN_IPV4 = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
)
_HOST_LABEL = r"^[a-z0-9][a-z0-9_-]*$"
_MAYBE_IP = r"^[0-9./]*$"


def hostname_keys(sources: pl.Series) -> pl.Series:
    """`normalize.hostname_key` of each value: vectorised for ASCII text that cannot be an
    IP address, the exact function for the rest."""
    return by_distinct(sources, _hostname_keys).rename(sources.name)


def _hostname_keys(sources: pl.Series) -> pl.Series:
    # Each stage computed once (an eager select would evaluate a shared subexpression again
    # per use); regex replaces instead of list splits: the part after the last backslash,
    # then the part before the first dot.
    frame = pl.DataFrame({"s": sources})
    text = py_strip(pl.col("s")).str.to_lowercase().str.strip_chars_end(".")
    staged = frame.with_columns(text.str.replace(r"(?s)^.*\\", "").alias("t"))
    t = pl.col("t")
    staged = staged.with_columns(t.str.replace(r"(?s)\..*", "").alias("short"))
    short = pl.col("short")
    fast = staged.select(
        pl.when(short.str.contains(_HOST_LABEL) & (t != "")).then(short).alias("key"),
        (
            pl.col("s").is_not_null()
            & ~(
                is_ascii(pl.col("s"))
                & ~t.str.contains(":", literal=True)
                & ~t.str.contains(_MAYBE_IP)
            )
        ).alias("exact"),
    )
    if not fast["exact"].any():
        return fast["key"]
    exact = per_distinct(
        frame, ["s"], lambda s: (hostname_key(s),), {"key": pl.Utf8}, where=fast["exact"]
    )
    return pl.select(pl.when(fast["exact"]).then(exact["key"]).otherwise(fast["key"])).to_series()


def name_keys(names: pl.Series) -> pl.Series:
    """`normalize.name_key` of each non-empty value, null otherwise."""
    return by_distinct(names, _name_keys).rename(names.name)


def _name_keys(names: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"s": names})
    s = pl.col("s")
    fast = frame.select(
        (s.is_not_null() & ~is_ascii(s)).alias("exact"),
        pl.when(s.fill_null("") != "").then(name_key_ascii(s)).alias("key"),
    )
    exact_rows = fast["exact"]
    if not exact_rows.any():  # all ASCII (the usual case): one pass
        return fast["key"]
    exact = per_distinct(frame, ["s"], lambda s: (name_key(s),), {"k": pl.Utf8}, exact_rows)
    keys = pl.select(pl.when(exact_rows).then(exact["k"]).otherwise(fast["key"])).to_series()
    return pl.select(pl.when(names.fill_null("") != "").then(keys)).to_series()
