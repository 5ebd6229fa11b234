"""Connected components of an edge list over node ids 0..n-1, in polars: every node labelled
by the smallest id of its component.

Why not union-find in Python: it is one interpreted step per edge (0.7 s for the 133,000 edges
of a 100,000-row CMDB file here). Why not a recursive CTE: it cannot take the minimum inside
its recursion, so it carries (node, reachable node) pairs, O(V x component size) rows, which
explodes on the usual shape (everything talks to AD/DNS).

Here, hook-and-contract: each round every edge between two different roots hooks the larger
root onto the smallest root it touches, pointer jumping flattens the hooks (a forest: a hook
always points lower), and the edges are contracted onto the new roots. Every edge left after
a round joins two roots that both stayed roots, so roots fall fast: a handful of rounds, each
a few vectorised passes over the (shrinking) edge list.
"""

from __future__ import annotations

import polars as pl

ID = pl.UInt32
KEY = pl.UInt64
HALF = 2**32  # an edge is one integer, high * HALF + low: ids are UInt32


def component_roots(source: pl.Series, target: pl.Series, count: int) -> pl.Series:
    """The smallest id of each id's component, for ids 0..count-1 and edges source[i]-target[i]
    (an id on no edge is its own root)."""
    root = _identity(count)
    work = _contracted(source.cast(ID), target.cast(ID))
    while work.len():
        high, low = (work // HALF).cast(ID), (work % HALF).cast(ID)
        # Sorted by (high, low): the first edge of each high holds the smallest low it touches.
        first = high != high.shift(1, fill_value=count)  # count is no id
        hook = _flatten(_identity(count).scatter(high.filter(first), low.filter(first)))
        root = hook.gather(root)
        work = _contracted(hook.gather(low), hook.gather(high))
    return root


def _identity(count: int) -> pl.Series:
    return pl.arange(0, count, dtype=ID, eager=True)


def _contracted(u: pl.Series, v: pl.Series) -> pl.Series:
    """The distinct edges whose ends differ, as sorted single-integer keys. One UInt64 column
    instead of a (low, high) frame: at 1.33M edges `unique` then peaked at +52 MiB against
    +115–127 MiB for the pair of columns, in 0.20 s against 0.34 s for the whole search."""
    pairs = pl.DataFrame({"u": u, "v": v})
    keys = pairs.select(
        key=pl.max_horizontal("u", "v").cast(KEY) * HALF + pl.min_horizontal("u", "v").cast(KEY),
        apart=pl.col("u") != pl.col("v"),
    )
    return keys["key"].filter(keys["apart"]).unique().sort()


def _flatten(hook: pl.Series) -> pl.Series:
    """Pointer jumping until every id points at a fixed point (its root)."""
    while True:
        jumped = hook.gather(hook)
        if jumped.equals(hook):
            return hook
        hook = jumped
