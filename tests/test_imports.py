"""The package's layers, read from its source: no import cycle, not even through an import
inside a function or under ``TYPE_CHECKING``, and dependencies only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mother"
#: the core's layers, lowest first: a module may import only from its own layer or below
CORE = [
    {"mother.errors"},
    {"mother.config", "mother.schema"},
    {"mother.dialects.base", "mother.dialects._psycopg"},
    {"mother.events"},
    {"mother.dialects", "mother.dialects.pgwire", "mother.dialects.postgres",
     "mother.dialects.sqlite", "mother.pool"},
    {"mother.sql", "mother.filters", "mother.joins", "mother.sqltext"},
    {"mother.replicas"},
    {"mother.database"},
    {"mother.executor"},
    {"mother.bulk"},
    {"mother.unitofwork"},
    {"mother.records"},
    {"mother.session"},
    {"mother.sets", "mother.scoping"},
    {"mother.manager", "mother.plugins", "mother.plugins.caster", "mother.plugins.triggers",
     "mother.otel"},
]
#: the core never imports these (DESIGN.md: usable in a plain script)
FRAMEWORKS = ("transaction", "pyramid", "pyramid_tm", "pyramid_retry", "zope", "Zope2",
              "Products", "App", "OFS", "Shared")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports, wherever the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from . import sql`` imports the module mother.sql, not names of mother
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) & known - {name}
            for name, path in modules.items()}


def _layer(name: str) -> int | None:
    for index, layer in enumerate(CORE):
        if name in layer:
            return index
    return None


def test_every_core_module_has_a_layer() -> None:
    core = {name for name in _modules() if name.split(".")[:2][-1]
            not in ("tm", "pyramid", "zope", "cli", "commandline", "tutorial", "mothers")
            and name != "mother"}
    assert core - set().union(*CORE) == set()


def test_the_core_imports_only_downwards(graph: dict[str, set[str]]) -> None:
    wrong = []
    for name, targets in graph.items():
        layer = _layer(name)
        if layer is None:
            continue
        for target in targets:
            other = _layer(target)
            if target == "mother" or other is None or other > layer:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_there_is_no_import_cycle(graph: dict[str, set[str]]) -> None:
    # package __init__ modules gather public names from below them: an edge into one
    # from inside the package is a cycle by construction, so count them as nodes too
    done: set[str] = set()
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(name: str) -> None:
        if name in path:
            cycles.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        path.append(name)
        for target in sorted(graph.get(name, ())):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == []


def test_the_core_imports_no_framework() -> None:
    modules = _modules()
    known = set(modules)
    wrong = []
    for name, path in modules.items():
        if _layer(name) is None:
            continue
        for target in _imports(name, path, known):
            if target.split(".")[0] in FRAMEWORKS:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_mother_tm_uses_no_private_member_of_a_session() -> None:
    """mother.tm drives sessions through :class:`mother.session.Managed` and public names."""
    wrong = []
    for path in (PACKAGE / "tm").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, (ast.Attribute, ast.Name))
                    and (node.value.attr if isinstance(node.value, ast.Attribute)
                         else node.value.id) in ("session", "handle", "uow")):
                wrong.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert wrong == []
