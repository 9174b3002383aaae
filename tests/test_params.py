"""Params: a config flattened as extensions.md §1 says, and the documents that hold it read
tolerantly (too large, not JSON, not UTF-8, not an object)."""

from __future__ import annotations

import json
from pathlib import Path

from runicorn_lite import rundir
from runicorn_lite.params import MAX_PARAMS, MAX_TEXT_LENGTH, flatten_config, index_value


def test_args_flattened_with_dots_then_extra_under_its_prefix() -> None:
    params, problems = flatten_config(
        {
            "args": {
                "optim": {"lr": 0.01, "name": "adam", "betas": [0.9, 0.999]},
                "batch_size": 32,
                "augment": True,
                "pretrained": None,
                "schedule": {"kind": "cosine", "warmup": {"steps": 100}},
                "empty": {},
            },
            "extra": {"note": "demo", "deep": {"a": 1}},
        }
    )
    assert problems == []
    assert list(params.items()) == [
        ("optim.lr", 0.01),
        ("optim.name", "adam"),
        ("optim.betas", "[0.9,0.999]"),
        ("batch_size", 32),
        ("augment", True),
        ("pretrained", None),
        ("schedule.kind", "cosine"),
        ("schedule.warmup.steps", 100),
        ("empty", "{}"),
        ("extra.note", "demo"),
        ("extra.deep.a", 1),
    ]


def test_values_keep_their_kind_and_are_indexed_as_numbers_or_text() -> None:
    params, _ = flatten_config(
        {"args": {"t": True, "f": False, "i": 3, "x": 1.5, "s": "3", "n": None, "nan": float("nan"), "huge": 10**40}}
    )
    assert params == {"t": True, "f": False, "i": 3, "x": 1.5, "s": "3", "n": None, "nan": None, "huge": 1e40}
    assert [index_value(params[k]) for k in ("t", "f", "i", "s", "n")] == [1, 0, 3, "3", None]
    assert isinstance(index_value(True), int) and not isinstance(index_value(True), bool)


def test_bad_configs_give_problems_not_exceptions() -> None:
    assert flatten_config(None) == ({}, [])
    assert flatten_config([1, 2]) == ({}, ["config is a list, not an object"])
    params, problems = flatten_config({"args": "lr=0.1", "extra": {"a": 1}})
    assert params == {"extra.a": 1} and problems == ["config.args is a str, not an object"]


def test_limits_on_count_keys_and_values() -> None:
    many = {f"p{i}": i for i in range(MAX_PARAMS + 5)}
    params, problems = flatten_config({"args": many})
    assert len(params) == MAX_PARAMS and problems == [f"5 params over the limit of {MAX_PARAMS} dropped"]
    params, problems = flatten_config(
        {"args": {"k" * 300: 1, "bad\x00key": 2, "nul": "a\x00b", "long": "x" * (MAX_TEXT_LENGTH + 10), "ok": 1}}
    )
    assert params == {"long": "x" * MAX_TEXT_LENGTH, "ok": 1}
    assert len(problems) == 4


def test_deeply_nested_config_does_not_exhaust_the_stack() -> None:
    node: dict[str, object] = {"leaf": 1}
    for _ in range(5000):
        node = {"a": node}
    params, problems = flatten_config({"args": node})
    assert params == {} and len(problems) == 1  # the one key is far too long


def test_read_doc_tells_absent_from_damaged(tmp_path: Path) -> None:
    path = tmp_path / "assets.json"
    assert rundir.read_doc(path) == (None, None)
    path.write_text(json.dumps({"config": {"args": {"lr": 1}}}))
    assert rundir.read_doc(path) == ({"config": {"args": {"lr": 1}}}, None)
    path.write_text('{"config": NaN}')
    assert rundir.read_doc(path)[0] is not None  # Python's json writes bare NaN
    for content, words in [
        (b'{"config": ', "not valid UTF-8 JSON"),
        (b'{"a": "\xff\xfe"}', "not valid UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
    ]:
        path.write_bytes(content)
        obj, problem = rundir.read_doc(path)
        assert obj is None and problem is not None and words in problem
    path.write_bytes(b"   ")
    assert rundir.read_doc(path) == (None, None)
    path.write_bytes(b'{"config": {}, "pad": "' + b"x" * 2000 + b'"}')
    obj, problem = rundir.read_doc(path, max_bytes=1000)
    assert obj is None and problem is not None and "over the" in problem
