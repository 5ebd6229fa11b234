"""The layers hold: the import-linter contracts pass, activity models live in contracts."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

from pydantic import BaseModel

import activities
from dataimport import contracts

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = [contract["name"] for contract in declared["contracts"]]
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(names)} kept, 0 broken." in result.stdout
    assert all(f"{name} KEPT" in result.stdout for name in names), result.stdout
    assert len(names) >= 3


def test_activity_modules_define_no_models_of_their_own() -> None:
    # Every activity input and output is one of dataimport.contracts' models.
    for path in sorted((ROOT / "activities").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bases = {
            base.id
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for base in node.bases
            if isinstance(base, ast.Name)
        }
        assert "BaseModel" not in bases, path.name
    assert issubclass(contracts.SaveConfigInput, BaseModel)
    assert issubclass(contracts.FinalizeValidationInput, BaseModel)


def _models_in(annotation: object) -> set[type[BaseModel]]:
    found = (
        {annotation}
        if isinstance(annotation, type) and issubclass(annotation, BaseModel)
        else set()
    )
    for arg in typing.get_args(annotation):
        found |= _models_in(arg)
    return found


def test_every_activity_takes_and_returns_models_of_the_contracts_module() -> None:
    seen: set[type[BaseModel]] = set()
    definitions = 0
    for info in pkgutil.iter_modules(activities.__path__, "activities."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            for _, method in inspect.getmembers(cls, inspect.isfunction):
                if not hasattr(method, "__temporal_activity_definition"):
                    continue
                definitions += 1
                hints = typing.get_type_hints(inspect.unwrap(method))
                for annotation in hints.values():
                    seen |= _models_in(annotation)
    assert definitions >= 10
    assert contracts.ChunkInput in seen and contracts.PurgeInput in seen
    assert {model.__module__ for model in seen} == {"dataimport.contracts"}, seen


def _passed_through(node: ast.With) -> bool:
    return any(
        isinstance(item.context_expr, ast.Call)
        and ast.unparse(item.context_expr.func) == "workflow.unsafe.imports_passed_through"
        for item in node.items
    )


def test_workflow_modules_pass_every_project_import_through_the_sandbox() -> None:
    # Outside the block the sandbox re-imports a module (and all it imports) for every
    # workflow run: pydantic + SQLAlchemy models that way cost ~35x the time (DESIGN §9).
    project = {"activities", "dataimport", "observability", "service", "pydantic", "sqlalchemy"}
    checked = 0
    for path in sorted((ROOT / "workflows").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inside = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.With) and _passed_through(block)
            for node in ast.walk(block)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.split(".")[0] in project for name in names):
                checked += 1
                assert id(node) in inside, f"{path.name}:{node.lineno} imports {names} unpassed"
    assert checked >= 10  # both workflows import their activities and contracts


def test_every_activity_the_workflow_can_call_is_registered(tmp_path: Path) -> None:
    """A method the workflow calls by reference but the worker lacks would only fail at run
    time, retried until someone looks (an unregistered activity is retried, not refused)."""
    from temporalio import activity as temporal_activity

    from activities import build_activities
    from dataimport.settings import Settings
    from workflows import data_import

    classes = {
        value
        for value in vars(data_import).values()
        if inspect.isclass(value) and value.__module__.startswith("activities.")
    }
    defined = {
        definition.name
        for cls in classes
        for _, member in inspect.getmembers(cls, inspect.isfunction)
        if (definition := temporal_activity._Definition.from_callable(member)) is not None
        and definition.name is not None
    }
    registered = {
        definition.name
        for function in build_activities(None, settings=Settings(dataimport_home=tmp_path))  # type: ignore[arg-type]
        if (definition := temporal_activity._Definition.from_callable(function)) is not None
    }
    assert len(classes) >= 7
    assert defined <= registered, sorted(defined - registered)
