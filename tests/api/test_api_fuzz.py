"""The fuzz campaign kept in the suite: schemathesis generates requests from ``/openapi.json``
(valid and invalid ones, a fixed seed, a bounded number per operation) and runs every check on
the answers: no server error, every status, header, content type and body as the schema says,
invalid input refused, valid input accepted. The optimization API is called with a valid key."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_helpers import close_app, open_app
from hypothesis import HealthCheck, settings
from schemathesis import checks

from runicorn_lite.demo import write_demo_runs
from runicorn_lite.optimization.keys import create_key

OPTIMIZATION = "/api/iris/optimization"
EXAMPLES = 60
ALL_CHECKS = [checks.CHECKS.get_one(name) for name in checks.CHECKS.get_all_names()]

# Built when the module is collected: schemathesis makes one test per operation from the
# schema, so the app must answer /openapi.json by then (the fixture below cleans up).
_ROOT = Path(tempfile.mkdtemp(prefix="runicorn-lite-fuzz-")) / "data"
write_demo_runs(_ROOT, runs=12, steps=20, rng=random.Random(5))
# Limits high enough that a few thousand generated requests are not answered 429.
_APP = open_app(_ROOT, read_limit=1_000_000, write_limit=1_000_000, iterations_limit=1_000_000,
                auth_failure_limit=1_000_000)
_KEY, _ = create_key(_APP.state.optimization.state.db, "proj_fuzz", "fuzz")


@contextlib.asynccontextmanager
async def _no_lifespan(app: Any) -> AsyncIterator[None]:
    yield


# The test client of schemathesis runs the lifespan around every call, and ours closes the
# stores at shutdown; the fixture below closes them once, at the end.
_APP.router.lifespan_context = _no_lifespan


def _streams_events(ctx: Any) -> bool:
    """An operation answering an endless event stream (SSE): a generated call would never
    return through the in-process client; such endpoints have streaming tests of their own."""
    responses = json.dumps(ctx.operation.definition.raw.get("responses", {}))
    return "text/event-stream" in responses or ctx.operation.path.endswith("/events")


schema = schemathesis.openapi.from_asgi("/openapi.json", _APP).exclude(func=_streams_events)

# The campaign's app is built at import, on SQLite: the PostgreSQL half would fuzz it again.
# What both backends answer is compared request by request in test_api_backends_differential.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module", autouse=True)
def _close_fuzzed_app() -> Iterator[None]:
    yield
    close_app(_APP)
    shutil.rmtree(_ROOT.parent, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case: Any) -> None:
    headers = {"Authorization": f"Bearer {_KEY}"} if case.path.startswith(OPTIMIZATION) else None
    case.call_and_validate(headers=headers, checks=ALL_CHECKS)
