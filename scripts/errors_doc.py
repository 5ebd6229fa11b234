"""Write docs/errors.md from the error-code registry (`--check`: fail when it is out of date)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from dataimport.error_codes import REGISTRY, render_markdown

# Codes are declared by the modules that raise them: import every module of these packages.
OWNER_PACKAGES = ("dataimport", "activities", "workflows")
DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def load_all() -> None:
    for name in OWNER_PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def generate() -> str:
    load_all()
    return render_markdown(REGISTRY.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/errors.md differs")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python -m scripts.errors_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({len(REGISTRY)} codes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
