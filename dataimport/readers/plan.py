"""Which sheets of a workbook a category reads, and how companion sheets join the primary."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SheetPlan:
    """Primary sheet candidates (first present wins; else the first sheet of the workbook),
    companion sheets joined to it, and the join-key columns tried in order (e.g. VM UUID, VM).

    Companion cells arrive in the primary row as "<sheet>.<column>"; several companion rows
    per key are aggregated (numbers summed, distinct texts joined with "; ") and counted in
    "<sheet>.#rows".
    """

    primary: tuple[str, ...]
    companions: tuple[str, ...] = field(default_factory=tuple)
    join_keys: tuple[str, ...] = field(default_factory=tuple)
