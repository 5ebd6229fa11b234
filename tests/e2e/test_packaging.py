"""The built wheel ships what the installed service serves: the console's static files (page,
script, style, vendored Cytoscape with its licence) and the migrations' data files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "dataimport" / "console" / "static"


def _sources(into: Path) -> None:
    """What the wheel is built from (pyproject, README, the packages, worker.py), copied so the
    build leaves no build/ or *.egg-info in the checkout."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for name in ("pyproject.toml", "README.md", "worker.py"):
        shutil.copy2(ROOT / name, into / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in {pattern.rstrip("*") for pattern in packages}:
        shutil.copytree(ROOT / package, into / package, ignore=ignore)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("source")
    out = tmp_path_factory.mktemp("wheel")
    _sources(source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("dataimport-*.whl")
    return zipfile.ZipFile(built)


def test_every_console_static_file_is_in_the_wheel_unchanged(wheel: zipfile.ZipFile) -> None:
    shipped = sorted(path for path in STATIC.rglob("*") if path.is_file())
    assert len(shipped) >= 6  # page, script, style, vendor README, Cytoscape, its licence
    names = set(wheel.namelist())
    for path in shipped:
        name = path.relative_to(ROOT).as_posix()
        assert name in names, f"{name} is not packaged (pyproject package-data)"
        assert wheel.read(name) == path.read_bytes(), name


def test_the_vendored_graph_library_ships_with_its_licence(wheel: zipfile.ZipFile) -> None:
    vendor = "dataimport/console/static/vendor/"
    names = [name.removeprefix(vendor) for name in wheel.namelist() if name.startswith(vendor)]
    (library,) = [name for name in names if re.fullmatch(r"cytoscape-[\d.]+\.min\.js", name)]
    licence = library.replace(".min.js", ".LICENSE.txt")
    assert licence in names
    assert "Permission is hereby granted" in wheel.read(vendor + licence).decode()
    assert "README.txt" in names


def test_everything_the_page_loads_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    page = wheel.read("dataimport/console/static/index.html").decode()
    loaded = re.findall(r'(?:src|href)="/console/static/([^"]+)"', page)
    assert {"console.js", "console.css"} <= set(loaded)
    assert any(name.startswith("vendor/cytoscape-") for name in loaded)
    for name in loaded:
        assert f"dataimport/console/static/{name}" in wheel.namelist(), name


def test_the_migrations_ship_with_their_data_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {"migrations/alembic.ini", "migrations/script.py.mako"} <= names
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        assert path.relative_to(ROOT).as_posix() in names
