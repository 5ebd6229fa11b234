"""Connected components in polars, checked against breadth-first search on random graphs."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict, deque

import polars as pl
import pytest

from dataimport.graph_components import component_roots


def _reference(edges: list[tuple[str, str]]) -> dict[str, str]:
    """node -> smallest node of its component, by breadth-first search."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    roots: dict[str, str] = {}
    for start in sorted(neighbours):
        if start in roots:
            continue
        seen, queue = {start}, deque([start])
        while queue:
            for nxt in neighbours[queue.popleft()] - seen:
                seen.add(nxt)
                queue.append(nxt)
        for node in seen:
            roots[node] = start  # sorted(): the first unseen node is its component's smallest
    return roots


def _components(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Through integer ids in sort order, as dependency_groups numbers its nodes."""
    nodes = sorted({node for edge in edges for node in edge})
    number = {node: n for n, node in enumerate(nodes)}
    source = pl.Series([number[a] for a, _ in edges], dtype=pl.UInt32)
    target = pl.Series([number[b] for _, b in edges], dtype=pl.UInt32)
    roots = component_roots(source, target, len(nodes))
    return {node: nodes[root] for node, root in zip(nodes, roots.to_list(), strict=True)}


def test_roots_are_the_smallest_member() -> None:
    pairs = [("5", "3"), ("3", "9"), ("7", "8"), ("9", "5"), ("1", "8"), ("9", "9")]
    assert _components(pairs) == {"3": "3", "5": "3", "9": "3", "1": "1", "7": "1", "8": "1"}


def test_no_edges_no_nodes() -> None:
    assert _components([]) == {}


def test_ids_on_no_edge_are_their_own_roots() -> None:
    roots = component_roots(pl.Series([3], dtype=pl.UInt32), pl.Series([1], dtype=pl.UInt32), 5)
    assert roots.to_list() == [0, 1, 2, 1, 4]


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_breadth_first_search(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [f"n{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 300))]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(1, 400))]
    assert _components(edges) == _reference(edges)


def test_a_long_shuffled_chain_is_one_component() -> None:
    nodes = [f"n{i:06d}" for i in range(20_000)]
    chain = list(itertools.pairwise(nodes))
    random.Random(7).shuffle(chain)
    roots = _components(chain)
    assert set(roots.values()) == {"n000000"} and len(roots) == len(nodes)
