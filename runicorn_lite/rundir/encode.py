"""How the SDK writes what a training script hands it: plain JSON values (as Runicorn's
``log_config`` stores them), ``events.jsonl`` lines (bare NaN/Infinity kept), and new run ids."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import enum
import secrets
import time
from typing import Any

import orjson

from runicorn_lite.rundir.writers import dumps_json


def new_run_id(now: float | None = None) -> str:
    """``YYYYMMDD_HHMMSS_`` (local time) and six hex digits, as the real SDK names runs."""
    stamp = _dt.datetime.fromtimestamp(now if now is not None else time.time())
    return f"{stamp:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def json_safe(obj: Any, depth: int = 0) -> Any:
    """``obj`` as plain JSON values, as Runicorn's ``log_config`` stores them: paths, enums,
    dates and sets become strings or lists, numpy values Python numbers, dict keys strings, and
    anything else its ``str()``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if depth > 64:
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [json_safe(v, depth + 1) for v in items]
    if isinstance(obj, argparse.Namespace):
        return json_safe(vars(obj), depth + 1)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj), depth + 1)
    if isinstance(obj, enum.Enum):
        return json_safe(obj.value, depth + 1)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return json_safe(obj.tolist(), depth + 1)
    if hasattr(obj, "item"):
        return json_safe(obj.item(), depth + 1)
    return str(obj)


def as_mapping(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, argparse.Namespace) or (hasattr(value, "__dict__") and not isinstance(value, type)):
        return dict(vars(value))
    raise TypeError(f"{what} must be a dict or an argparse.Namespace, got {type(value).__name__}")


def event_line(event: dict[str, Any]) -> bytes:
    try:
        # orjson would turn NaN/Infinity into null; the format keeps them (bare, as json does).
        # x - x is 0.0 for every finite float and NaN for NaN and the infinities. Anything
        # but plain floats, ints, strings and None (numpy scalars, say) takes the json path.
        for v in event["data"].values():
            kind = v.__class__
            if kind is float:
                if v - v != 0.0:
                    break
            elif kind is not int and kind is not str and kind is not bool and v is not None:
                break
        else:
            return orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    except TypeError:
        pass
    return (dumps_json(event) + "\n").encode()
