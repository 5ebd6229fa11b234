"""The error-code registry: docs/errors.md is current, and every code the code raises is in it."""

from __future__ import annotations

import ast
import importlib
import string
from pathlib import Path
from typing import Any

import pytest

from dataimport.error_codes import REGISTRY, ErrorCode, Level, register, registered_codes
from dataimport.issues import Code
from scripts import errors_doc

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("dataimport", "activities", "workflows", "starter", "service")


@pytest.fixture(scope="module", autouse=True)
def _all_declared() -> None:
    errors_doc.load_all()


def test_docs_errors_md_is_what_the_registry_generates() -> None:
    # Fails when a code is added or reworded without `python -m scripts.errors_doc`.
    assert errors_doc.main(["--check"]) == 0
    assert (ROOT / "docs" / "errors.md").read_text(encoding="utf-8") == errors_doc.generate()


def test_every_row_and_cell_code_is_registered_once() -> None:
    row_cell = {code for (level, code) in REGISTRY if level in (Level.ROW, Level.CELL)}
    assert {member.value for member in Code} == row_cell
    by_code: dict[str, list[Level]] = {}
    for level, code in REGISTRY:
        by_code.setdefault(code, []).append(level)
    # A code may mean one file-level and one cell-level finding, never two of the same kind.
    assert all(len(levels) == len(set(levels)) for levels in by_code.values())


def test_every_entry_is_complete_and_its_template_formats() -> None:
    for entry in REGISTRY.values():
        assert entry.title and entry.description and entry.template, entry
        assert entry.code == entry.code.lower() and " " not in entry.code, entry
        fields = {name for _, name, _, _ in string.Formatter().parse(entry.template) if name}
        values: dict[str, Any] = dict.fromkeys(fields, 1)
        assert entry.message(**values), entry  # a stray brace would raise here
        assert entry.owner.split(".")[0] in SCANNED, entry


def test_a_conflicting_declaration_is_refused_and_a_repeat_is_not() -> None:
    entry = REGISTRY[(Level.FILE, "empty-file")]
    # The owner is the calling module: another module declaring the same code is a conflict.
    with pytest.raises(ValueError, match="registered twice"):
        register(entry.code, entry.level, entry.title, entry.description, entry.template)
    with pytest.raises(ValueError, match="registered twice"):
        _register_as(entry.owner, entry, title="Reworded")
    # The same module declaring it again (a re-import, the workflow sandbox) changes nothing.
    assert _register_as(entry.owner, entry) == entry
    assert REGISTRY[(Level.FILE, "empty-file")] is entry


def _register_as(owner: str, entry: ErrorCode, title: str | None = None) -> ErrorCode:
    # Runs register() from a frame whose module is `owner`, as a re-import of it would.
    scope: dict[str, Any] = {"__name__": owner, "register": register, "e": entry}
    code = "result = register(e.code, e.level, TITLE, e.description, e.template)"
    exec(code.replace("TITLE", repr(title) if title else "e.title"), scope)
    return scope["result"]


def _resolve(module: object, node: ast.expr) -> str | None:
    """The code a call site names: a literal, a module constant, an ErrorCode, Code.X."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    value: object
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        value = getattr(getattr(module, node.value.id, None), node.attr, None)
    else:
        return None  # dynamic (failure.code, cause.type): checked where it was raised
    if isinstance(value, ErrorCode):
        return value.code
    return str(value) if isinstance(value, str) else None


def _codes_used(path: Path) -> set[str]:
    module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    module = importlib.import_module(module_name)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        sites: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "ImportFailure" and node.args:
                sites.append(node.args[0])
            if name == "_finish" and len(node.args) >= 2:
                sites.append(node.args[1])
            if name == "failure" and isinstance(func, ast.Attribute):
                sites.append(func.value)
            for keyword in node.keywords:
                if keyword.arg == "error_code" or (
                    keyword.arg == "type" and name == "ApplicationError"
                ):
                    sites.append(keyword.value)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.endswith("_CODE") for t in node.targets
        ):
            sites.append(node.value)
        found.update(c for c in (_resolve(module, site) for site in sites) if c)
    return found


def test_every_code_raised_anywhere_is_registered() -> None:
    used: dict[str, set[str]] = {}
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py":
                continue
            for code in _codes_used(path):
                used.setdefault(code, set()).add(str(path.relative_to(ROOT)))
    # The scan sees the workflow's own literals, the activities' and the readers' constants.
    assert {"attention-timeout", "failed-by-user", "internal-error", "stale-chunk"} <= set(used)
    assert {"unclosed-quote", "file-outside-storage", "staging-purge-failed"} <= set(used)
    unregistered = {code: where for code, where in used.items() if code not in registered_codes()}
    assert unregistered == {}
