"""The package's layers, read from the imports themselves (every import statement, deferred and
type-checking ones included): imports go down the layers only, no modules import each other in
a circle, V1/V2 and the optimization API never import each other, and the HTTP pieces they share
import neither. And no module grows past what one reader takes in at once."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runicorn_lite"


def imported_modules(folder: str) -> dict[str, set[str]]:
    """file -> every module its import statements name."""
    out: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import"
                base = node.module or ""
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
        out[str(path.relative_to(PACKAGE.parent))] = names
    return out


def offending(folder: str, *forbidden: str) -> list[str]:
    return sorted(
        f"{file} imports {name}"
        for file, names in imported_modules(folder).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_the_folders_exist_and_have_imports() -> None:
    for folder in ("api", "optimization", "http"):
        assert any(imported_modules(folder).values()), folder


def test_v1_v2_never_import_the_optimization_api() -> None:
    assert offending("api", "runicorn_lite.optimization", "runicorn_lite.app") == []


def test_the_optimization_api_never_imports_v1_v2() -> None:
    assert offending("optimization", "runicorn_lite.api", "runicorn_lite.app") == []


def test_the_shared_http_pieces_import_neither_api() -> None:
    assert offending("http", "runicorn_lite.api", "runicorn_lite.optimization", "runicorn_lite.app") == []


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """A module longer than this holds more than one concern: split it along a seam (as rundir/,
    ingest/ and optimization/stats.py were), not in arbitrary halves."""
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in sorted(PACKAGE.rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def module_graph() -> dict[str, set[str]]:
    """Module → the modules of the package it imports. ``from package import name`` is an import
    of the module ``package.name`` when there is one, else of the package's ``__init__``."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                named = {f"{node.module}.{alias.name}" for alias in node.names}
                found.update(named & modules.keys())
                if named - modules.keys():
                    found.add(node.module)
        graph[name] = (found & modules.keys()) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(module_graph()) == []


def test_circles_are_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The package's parts (a top-level module or subpackage; "__init__" is the package's face), from
# the bottom up: files → ingest → index → queries → HTTP. A part imports parts of lower layers
# only; a new part needs a place here.
LAYERS = (
    # the format on disk, and leaves that import nothing of ours
    {"rundir", "settings", "timeutil", "heap", "downsample", "params", "leftovers", "logbuffer", "storelock",
     "environment", "images", "console", "switch", "client", "sysmonitor", "supervisor", "version", "web"},
    # the index's plumbing, and the small readers and writers of run directories
    {"db", "asset_refs", "cli_options", "purge", "resume", "system_metrics", "uploader"},
    # ingest, the queries over the index, the HTTP pieces every API shares
    {"ingest", "queries", "http", "preferences", "run_extras", "sync"},
    # the APIs, and what a training script imports
    {"api", "optimization", "sdk"},
    # what puts them together
    {"app", "demo", "integrations", "__init__"},
    {"cli"},
    {"__main__"},
)


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert {part_of(m) for m in module_graph()} - placed == set()


def test_imports_go_down_the_layers_only() -> None:
    layer = {part: n for n, parts in enumerate(LAYERS) for part in parts}
    upward = sorted(
        f"{module} imports {other}"
        for module, imported in module_graph().items()
        for other in imported
        if part_of(other) != part_of(module) and layer.get(part_of(other), 0) >= layer.get(part_of(module), 0)
    )
    assert upward == []


# Import names of the distributions the package declares (pyproject's dependencies).
_DISTRIBUTION_OF = {"psycopg_pool": "psycopg-pool", "yaml": "pyyaml", "PIL": "pillow"}


def _declared_dependencies(*extras: str) -> set[str]:
    """The distributions pyproject declares: the dependencies, and those of ``extras``."""
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    for spec in specs:
        name = spec.split(";")[0].split("[")[0]
        for stop in "<>=!~ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower())
    return names


def test_every_module_level_third_party_import_is_a_declared_dependency() -> None:
    """What a module imports when it is imported must install with the package: a plain
    ``pip install`` (no test extra) then serves. Imports inside functions (the integrations'
    frameworks, optional extras) are deferred on purpose and not counted; a framework's
    integration module (imported only by who trains with it) may import what its extra installs."""
    plain = _declared_dependencies()
    with_extras = _declared_dependencies("lightning", "transformers", "keras", "xgboost", "lightgbm", "system")
    missing = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        declared = with_extras if path.parent.name == "integrations" else plain
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:  # module level only; a try: import ... except ImportError is optional
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in ("runicorn_lite", "__future__"):
                    continue
                if _DISTRIBUTION_OF.get(top, top).lower().replace("_", "-") not in declared:
                    missing.add(f"{path.relative_to(PACKAGE.parent)} imports {top}")
    assert sorted(missing) == []
