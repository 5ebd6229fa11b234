"""Re-record the golden files: `.venv/bin/python -m tests.golden.record [NAME ...]`.

Run by hand, only when what the engine finds is meant to change; the commit that changes a
golden file says why. With names, only those cases are recorded (see `--list`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.golden.cases import ALL_CASES
from tests.golden.listing import record


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        print("\n".join(case.name for case in ALL_CASES))
        return 0
    unknown = set(argv) - {case.name for case in ALL_CASES}
    if unknown:
        print(f"unknown cases: {', '.join(sorted(unknown))} (see --list)", file=sys.stderr)
        return 2
    for case in ALL_CASES:
        if argv and case.name not in argv:
            continue
        with tempfile.TemporaryDirectory() as folder:
            written = record(case, Path(folder))
        sizes = ", ".join(f"{path.name} {path.stat().st_size:,} B" for path in written)
        print(f"{case.name}: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
