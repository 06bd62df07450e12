"""The package's rooms: imports only go down the stairs, and no module imports itself back in a cycle.

Every ``composer`` import in the package is read from the source (including imports inside functions and under
``TYPE_CHECKING``), so the picture in docs/design.md stays true however a module reaches another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import composer

PACKAGE = Path(composer.__file__).parent

# The rooms from the bottom up; a room may import its own modules and those of the rooms below it.
FLOORS: list[set[str]] = [
    {"errors", "runtime", "version"},
    {"config"},
    {"model"},
    {"inputs"},
    {"output"},
    {"rendering"},
    {"live", "cluster"},
    {"measure"},
    {"tools"},
    {"cli"},
    {"__init__", "__main__"},
]
MAX_LINES = 400


def _floor(room: str) -> int:
    return next(k for k, rooms in enumerate(FLOORS) if room in rooms)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(path: Path) -> set[str]:
    """The composer modules ``path`` imports (``from composer.x import y`` counts as ``composer.x.y`` where
    ``composer.x.y`` is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "composer":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; write composer's imports in full")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "composer"}
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) - {_module(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_lives_in_a_known_room() -> None:
    for module in _graph():
        _floor(_room(module))  # StopIteration names a room the picture lacks


def test_imports_only_go_down() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if target != "composer" and _room(target) != _room(module) and _floor(_room(target)) >= _floor(_room(module))
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target in graph and target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_long() -> None:
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert long == {}


def test_the_walk_sees_imports() -> None:
    """The checks above would pass vacuously if the walk found no imports: it finds known ones, also inside
    functions."""
    graph = _graph()
    assert "composer.output.outputs" in graph["composer.rendering.pipeline"]
    assert "composer.rendering.observer" in graph["composer"]
