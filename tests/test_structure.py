"""The package's layers, read from the imports themselves (every import statement, deferred and
type-checking ones included): V1/V2 and the optimization API never import each other, and the
HTTP pieces they share import neither."""

from __future__ import annotations

import ast
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
