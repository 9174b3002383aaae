"""Fixtures of the V1/V2 API tests: corpora written through our SDK into tmp roots, indexed by
the real indexer into a real SQLite index, served by the app in process."""

from __future__ import annotations

from collections.abc import Iterator

import backends
import pytest
from api_helpers import Corpus, build_corpus, close_app, open_app
from starlette.applications import Starlette


@pytest.fixture(scope="module", params=backends.BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of this folder runs on SQLite and on PostgreSQL (see tests/backends.py)."""
    yield from backends.backend_fixture(request)


@pytest.fixture(autouse=True)
def _sqlite_only(request: pytest.FixtureRequest, backend: str) -> None:
    backends.only_sqlite(request)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The shared corpus of one test module (read-only: copy it before changing anything)."""
    built = build_corpus(tmp_path_factory.mktemp("corpus") / "data")
    yield built
    built.close()


@pytest.fixture(scope="module")
def corpus_app(corpus: Corpus, backend: str) -> Iterator[Starlette]:
    """One app over the shared corpus (read-only tests only)."""
    app = open_app(corpus.root)
    yield app
    close_app(app)
