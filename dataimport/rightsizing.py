"""Rightsizing: the cores and memory a machine needs, from its allocation and utilisation.

A recommendation sizes each dimension to `allocation × utilisation × (1 + headroom)`, rounded
up to whole cores and whole GB, never below one of each. Peak utilisation is the preferred
basis (sizing to an average starves the busy hour); the average is used when no peak is
known; without any utilisation the allocation stands ("allocation" basis). A recommendation
may exceed the allocation: a machine running hot needs more, not the same.

Pure functions, no I/O: the category calls them while validating rows and while applying
aggregated performance samples, so one rule sizes every source.
"""

from __future__ import annotations

import math
from typing import Literal, TypedDict

Basis = Literal["peak", "average", "allocation"]

DEFAULT_HEADROOM = 0.3
MIN_CORES = 1
MIN_MEMORY_GB = 1
# Float products such as 10 × 0.5 × 1.2 land a hair above a whole number; ceil() of that
# would add a core that nobody needs.
_PRECISION = 6


class Recommendation(TypedDict):
    cores: int | None
    memory_gb: int | None
    basis: Basis
    headroom: float
    cpu_utilization_pct: float | None
    memory_utilization_pct: float | None


def _sized(allocated: float, utilization_pct: float, headroom: float, minimum: int) -> int:
    """Allocation scaled to utilisation (capped at 100 %) plus headroom, rounded up."""
    used_share = min(max(utilization_pct, 0.0), 100.0) / 100.0
    needed = round(allocated * used_share * (1.0 + headroom), _PRECISION)
    return max(minimum, math.ceil(needed))


def _allocation(value: float | None, minimum: int) -> int | None:
    return max(minimum, math.ceil(round(value, _PRECISION))) if value else None


def recommend(
    cores: int | None,
    memory_gb: float | None,
    cpu_utilization_pct: float | None,
    memory_utilization_pct: float | None,
    headroom: float = DEFAULT_HEADROOM,
    basis: Basis = "peak",
) -> Recommendation | None:
    """Recommended cores and memory; None when neither cores nor memory is known.

    `basis` names what the utilisation figures are ("peak" or "average"); a dimension
    without a utilisation figure keeps its allocation, and when neither has one the basis
    is "allocation". Zero cores or memory count as unknown.
    """
    if not cores and not memory_gb:
        return None
    cpu = cpu_utilization_pct if cores else None
    memory = memory_utilization_pct if memory_gb else None
    return {
        "cores": (
            _sized(cores, cpu, headroom, MIN_CORES)
            if cores and cpu is not None
            else _allocation(cores, MIN_CORES)
        ),
        "memory_gb": (
            _sized(memory_gb, memory, headroom, MIN_MEMORY_GB)
            if memory_gb and memory is not None
            else _allocation(memory_gb, MIN_MEMORY_GB)
        ),
        "basis": basis if cpu is not None or memory is not None else "allocation",
        "headroom": headroom,
        "cpu_utilization_pct": cpu,
        "memory_utilization_pct": memory,
    }


def recommend_from_samples(
    cores: int | None,
    memory_gb: float | None,
    *,
    cpu_average: float | None,
    cpu_peak: float | None,
    memory_average: float | None,
    memory_peak: float | None,
    powered_off: bool = False,
    headroom: float = DEFAULT_HEADROOM,
) -> Recommendation | None:
    """Size each dimension on its peak, else its average; powered-off machines on allocation.

    A powered-off machine's utilisation is a stale reading. When one dimension has a peak and
    the other only an average, the basis reported is "average": a recommendation is only as
    good as its weakest figure.
    """
    if powered_off:
        return recommend(cores, memory_gb, None, None, headroom, "allocation")
    cpu = cpu_peak if cpu_peak is not None else cpu_average
    memory = memory_peak if memory_peak is not None else memory_average
    used_average = (cpu_peak is None and cpu_average is not None) or (
        memory_peak is None and memory_average is not None
    )
    return recommend(cores, memory_gb, cpu, memory, headroom, "average" if used_average else "peak")
