"""The import graph of dpv, selfplay and eexit_vision, read from the source with `ast`.

Every import that can run counts, also those inside functions (a cycle hidden in a function
is still a cycle: it only fails later, at the call). Imports under `if TYPE_CHECKING:` never
run and are left out: they are how a type-only dependency points back. Relative imports
are resolved; `from package import name` is an edge to the submodule when `name` is one,
else to the package. Importing `a.b.c` first runs the `__init__` of `a` and `a.b`, so it is
an edge to those packages too, except to the importer's own enclosing packages (they are
already running when it is imported; counting them would make every package a cycle with
its own modules).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dpv", "selfplay", "eexit_vision")


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the three packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    """The absolute name `from <level dots><target> import ...` means inside `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]  # a module's relative imports start from its package
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` / `if typing.TYPE_CHECKING:`."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                   "typing.TYPE_CHECKING"):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def imports_of(module: str) -> set[str]:
    """Every module `module` imports (external ones by their full dotted name)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    skip = _type_checking_only(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def graph() -> dict[str, set[str]]:
    """Edges between the three packages' modules (external imports left out), with the
    package `__init__`s each import runs on the way."""
    edges: dict[str, set[str]] = {}
    for m in MODULES:
        own = set(_ancestors(m)) | ({m} if _is_package(m) else set())
        out = set()
        for t in imports_of(m):
            out.update(a for a in _ancestors(t) if a not in own)
            out.add(t)
        edges[m] = {t for t in out if t in MODULES and t != m}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _edges_in(comp: list[str], edges: dict[str, set[str]]) -> list[str]:
    return [f"{a} -> {b}" for a in comp for b in sorted(edges[a]) if b in comp]


# ---- the reader itself, on known cases

def test_relative_imports_resolve_from_the_module_or_package():
    assert _resolve("dpv.games.spiel", 1, "base") == "dpv.games.base"
    assert _resolve("dpv.games", 1, "spiel") == "dpv.games.spiel"  # a package's own dir
    assert _resolve("dpv.mcts.search", 2, "games.base") == "dpv.games.base"
    assert _resolve("dpv.mcts.search", 2, None) == "dpv"


def test_cycle_finder_on_a_hand_built_graph():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_an_import_runs_the_packages_on_its_way():
    edges = graph()
    assert "dpv.players" in edges["dpv.play.match"]  # match imports dpv.players.base
    assert "dpv.games" not in edges["dpv.games.spiel"]  # its own package: already running


def test_function_level_imports_are_read_and_type_checking_ones_are_not():
    assert "dpv.games.spiel" in imports_of("dpv.games")  # the lazy make_game, inside __getattr__
    assert "dpv.config" not in imports_of("dpv.games.spiel")  # GameConfig only for its type


# ---- the project's graph

def test_no_import_cycles():
    edges = graph()
    found = {" / ".join(c): _edges_in(c, edges) for c in cycles(edges)}
    assert not found, f"import cycles: {found}"


@pytest.mark.parametrize("other", ["selfplay", "eexit_vision"])
def test_dpv_imports_neither_selfplay_nor_vision(other):
    bad = sorted(f"{m} -> {t}" for m in MODULES if m.split(".")[0] == "dpv"
                 for t in imports_of(m) if t.split(".")[0] == other)
    assert not bad, bad


def test_search_imports_nothing_game_specific():
    """dpv.mcts knows games only through the protocol module: no adapter, no OpenSpiel,
    neither directly nor through what it imports."""
    def game_specific(name: str) -> bool:
        return (name.split(".")[0] in ("pyspiel", "open_spiel")
                or (name.startswith("dpv.games.") and name != "dpv.games.base"))

    search = sorted(m for m in MODULES if m == "dpv.mcts" or m.startswith("dpv.mcts."))
    direct = sorted(f"{m} -> {t}" for m in search for t in imports_of(m) if game_specific(t))
    assert not direct, direct
    # what search pulls in: adapters and OpenSpiel must stay out of reach (the registry,
    # plain data read by config validation, is no adapter)
    seen, todo = set(search), list(search)
    external: dict[str, str] = {}
    while todo:
        m = todo.pop()
        for t in imports_of(m):
            if t in MODULES and t not in seen:
                seen.add(t)
                todo.append(t)
            elif t not in MODULES:
                external.setdefault(t, m)
    reached = sorted(m for m in seen if game_specific(m) and m != "dpv.games.registry")
    spiel = sorted(f"{src} -> {t}" for t, src in external.items() if game_specific(t))
    assert not reached and not spiel, (reached, spiel)
