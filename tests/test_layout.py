"""The floor plan: which wing may import which, checked on the source itself.

Imports run one way, from the top floor down (docs/design.md draws it):

    cli  >  compare, serving, sharing  >  inspection, lecture  >  training
         >  sampling, scoring  >  store  >  model  >  data  >  ground

A module may import its own wing and any wing below it, never one above or beside
it; type-only and function-local imports count too, so no import circle can hide
behind ``TYPE_CHECKING``. A later change that breaks the order fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "charrnn"

GROUND = {
    "_version",
    "config",
    "layering",
    "presets",
    "errors",
    "files",
    "units",
    "events",
    "hardware",
}
STORE = {"checkpoint", "rundir", "hub"}
FLOORS = {
    "ground": 0,
    "data": 1,
    "model": 2,
    "store": 3,
    "sampling": 4,
    "scoring": 4,
    "training": 5,
    "inspection": 6,
    "lecture": 6,
    "compare": 7,
    "serving": 7,
    "sharing": 7,
    "cli": 8,
}
# The package's own face (lazy re-exports) and ``python -m charrnn`` sit above it all.
ENTRANCES = {"charrnn", "charrnn.__main__"}


def wing(module: str) -> str:
    """``charrnn.data.vocab`` -> ``data``; ``charrnn.config`` -> ``ground``."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "store" if parts[1] in STORE else "ground"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every charrnn module ``path`` imports, at any depth of its code."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("charrnn")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("charrnn"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def test_the_package_has_the_ground_floor_and_the_wings_only() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == GROUND | STORE
    assert folders == set(FLOORS) - {"ground", "store"}


def test_no_wing_imports_one_above_or_beside_it() -> None:
    found = modules()
    wrong = []
    for name, path in found.items():
        if name in ENTRANCES:
            continue
        here = wing(name)
        for target in imports_of(path, set(found)):
            if target in ENTRANCES:
                wrong.append(f"{name} imports the package face {target}")
                continue
            there = wing(target)
            if there != here and FLOORS[there] >= FLOORS[here]:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_even_type_only() -> None:
    found = modules()
    graph = {name: imports_of(path, set(found)) - {name} for name, path in found.items()}
    # Importing a package runs its __init__; edges from a module to its own package
    # are that, not a dependency, so they are left out.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not circles, circles


def test_the_floor_check_can_fail() -> None:
    """The checker itself: a data module importing the sampler is caught."""
    assert wing("charrnn.data.vocab") == "data"
    assert wing("charrnn.checkpoint") == "store"
    assert wing("charrnn.config") == "ground"
    assert FLOORS[wing("charrnn.sampling.sampler")] > FLOORS[wing("charrnn.data.vocab")]
