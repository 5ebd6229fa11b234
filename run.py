#!/usr/bin/env python3
"""Bootstrap: create or reuse `.venv`, install the project, then run what was asked.

    python3 run.py demo      # embedded stack + sample imports (leaves the stack running)
    python3 run.py test      # the whole test suite
    python3 run.py <any dataimport command ...>

Only the Python standard library is used here, so it works on a fresh machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    """(Re)install only when pyproject.toml changed since the last install."""
    if not (BIN / "python").exists():
        print("creating virtual environment in .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    print("installing the project and its dependencies into .venv", flush=True)
    subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    ensure_venv()
    os.chdir(ROOT)
    if argv[:1] == ["test"]:
        command = [str(BIN / "python"), "-m", "pytest", *argv[1:]]
    else:
        command = [str(BIN / "dataimport"), *(argv or ["--help"])]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
