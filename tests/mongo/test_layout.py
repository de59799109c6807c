"""The MongoDB package's shape: one home per collection, one error boundary, no import cycle.

These read the package's source (its syntax trees), so that the structure
issue 22 asked for stays as it is: a counter field spelt in a second module, a
driver error translated inside a flow, or ``__cause__`` read to recover one,
fails here. Module lengths are held for the whole package in tests/test_layout.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mongo_runevents.mongo as package

PACKAGE = Path(package.__file__).parent
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}

#: Every field of a counter document (see mongo_runevents.mongo.counters).
COUNTER_FIELDS = {
    "last_seq",
    "generation",
    "updated_at",
    "users",
    "user_activity",
    "has_blobs",
    "renumbered_by_import",
}


def tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"))


def strings(name: str) -> set[str]:
    """The string constants of a module's code (docstrings left out)."""
    module = tree(name)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(module)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(module)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def called_names(name: str) -> set[str]:
    names = set()
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(
                function.attr
                if isinstance(function, ast.Attribute)
                else getattr(function, "id", "")
            )
    return names


def test_counter_fields_are_spelt_in_the_counters_module_only() -> None:
    """No module but counters.py names a field of the counter document."""
    spelt = {name: COUNTER_FIELDS & strings(name) for name in MODULES if name != "counters"}
    # A thread's info and listing rows are public records, built in counters.py too.
    assert {name: fields for name, fields in spelt.items() if fields} == {}


def test_only_the_store_facade_translates_driver_errors() -> None:
    """translate()/translated() are called in store.py alone, and nothing reads __cause__."""
    translating = {
        name
        for name in MODULES
        if name != "driver_errors" and {"translate", "translated"} & called_names(name)
    }
    assert translating == {"store"}
    causes = [
        name
        for name in MODULES
        for node in ast.walk(tree(name))
        if isinstance(node, ast.Attribute) and node.attr == "__cause__"
    ]
    assert causes == []


def imports(name: str) -> set[str]:
    """The package modules ``name`` imports at run time (``TYPE_CHECKING`` blocks left out)."""
    found = set()
    module = tree(name)
    skipped = {
        id(child)
        for node in ast.walk(module)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    for node in ast.walk(module):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found & set(MODULES)


def test_the_package_has_no_import_cycle() -> None:
    """The modules of mongo/ import one another without a cycle."""
    graph = {name: imports(name) for name in MODULES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting, name])}"
        if name in done:
            return
        visiting.append(name)
        for imported in graph[name]:
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_the_flows_do_not_import_one_another() -> None:
    """Writes, deletes, imports and reads stand on the collection modules, not on each other."""
    flows = {"writes", "deletes", "importer", "reads"}
    assert {name: imports(name) & flows for name in flows} == {name: set() for name in flows}
