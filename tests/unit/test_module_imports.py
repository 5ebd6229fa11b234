"""Every module under dataimport/ imports on its own, before any other of the package: no cycle.

An import cycle only shows when a module of it is the first one imported (later, the others
are cached), so each module is imported in an interpreter that has loaded none of the
project's modules. To stay quick on a small machine, one fresh interpreter loads the
third-party packages the project imports, then forks once per module: each child starts
with no first-party module loaded, imports its one module and reports the error, if any.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in the fresh interpreter: {"preload", "modules", "first_party", "parallel"} on stdin,
# {module: error} on stdout. A few children at a time: the machine's cores, at most 4.
_IMPORTER = r"""
import importlib, json, os, sys, traceback, warnings

job = json.load(sys.stdin)
warnings.simplefilter("ignore")
for name in job["preload"]:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # a child that needs it reports the failure
loaded = sorted(m for m in sys.modules if m.split(".")[0] in job["first_party"])
if loaded:
    print(json.dumps({"<preload>": f"first-party modules loaded before the forks: {loaded}"}))
    sys.exit(0)
failures = {}
waiting, running = list(job["modules"]), {}
while waiting or running:
    while waiting and len(running) < job["parallel"]:
        module = waiting.pop(0)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                importlib.import_module(module)
                report = ""
            except BaseException:
                report = traceback.format_exc(limit=-4)
            os.write(write, report.encode()[:60000])  # under a pipe's buffer: never blocks
            os._exit(0)
        os.close(write)
        running[pid] = (module, read)
    pid, status = os.wait()
    module, read = running.pop(pid)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode()
    if report or status:
        failures[module] = report or f"child exited with status {status}"
print(json.dumps(failures))
"""


def package_modules(root: Path, package: str) -> list[str]:
    """Every module of `package` under `root`, packages by their own name."""
    names = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def third_party_imports(root: Path, package: str, first_party: Iterable[str]) -> list[str]:
    """The absolute imports of `package` outside the project's own packages, by module name."""
    own = set(first_party)
    found: set[str] = set()
    for path in (root / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return sorted(name for name in found if name.split(".")[0] not in own)


def first_party_names(root: Path) -> list[str]:
    """Top-level names the project itself provides (packages and modules at its root)."""
    names = {path.name for path in root.iterdir() if (path / "__init__.py").exists()}
    names |= {path.stem for path in root.glob("*.py")}
    return sorted(names)


def import_failures(
    root: Path, modules: Sequence[str], preload: Sequence[str], first_party: Sequence[str]
) -> dict[str, str]:
    """{module: traceback} for each of `modules` that fails to import as the first one."""
    job = {
        "preload": list(preload),
        "modules": list(modules),
        "first_party": list(first_party),
        "parallel": max(1, min(4, os.cpu_count() or 1)),
    }
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTER],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    failures: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return failures


def test_every_module_of_the_domain_package_imports_first() -> None:
    first_party = first_party_names(ROOT)
    modules = package_modules(ROOT, "dataimport")
    # The modules of the cycle this guards against, and enough of the rest to mean it.
    assert {
        "dataimport.asset_resolution",
        "dataimport.asset_matching",
        "dataimport.planner",
        "dataimport.categories.app_discovery.enrichment",
        "dataimport.categories.app_discovery.rules",
    } <= set(modules)
    assert len(modules) > 100
    preload = third_party_imports(ROOT, "dataimport", first_party)
    assert "polars" in preload and "sqlalchemy.ext.asyncio" in preload
    failures = import_failures(ROOT, modules, preload, first_party)
    assert failures == {}, "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())


def test_a_module_that_fails_only_when_imported_first_is_reported(tmp_path: Path) -> None:
    # `a` imported first works (b finds a partly initialised `a` and uses it later); `b`
    # imported first fails, as asset_resolution did: only a fresh import of each shows it.
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic.b import helper\n\nVALUE = helper()\n")
    (package / "b.py").write_text("import cyclic.a\n\n\ndef helper() -> int:\n    return 1\n")
    (package / "c.py").write_text("import json\n")
    modules = package_modules(tmp_path, "cyclic")
    assert modules == ["cyclic", "cyclic.a", "cyclic.b", "cyclic.c"]
    assert third_party_imports(tmp_path, "cyclic", ["cyclic"]) == ["json"]
    failures = import_failures(tmp_path, modules, ["json"], ["cyclic"])
    assert list(failures) == ["cyclic.b"]
    assert "ImportError" in failures["cyclic.b"] and "helper" in failures["cyclic.b"]
