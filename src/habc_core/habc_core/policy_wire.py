"""The bytes a policy server and its client exchange: msgpack, numpy arrays as raw buffers.

No pickle: a message is plain msgpack (str, int, float, bool, None, list, dict, bytes) in which
an array is a map {"__ndarray__": dtype, "shape": [...], "data": <bytes>} of a numeric or bool
dtype, so a client can never make the server run code, nor the server the client.

Requests and replies (one per websocket message):
* {"op": "metadata"} -> {"ok": true, "metadata": {...}} (what the server's policy says of itself:
  model_index, horizon, action_dim, name);
* {"op": "infer", "obs": {...}} -> {"ok": true, "result": {"actions": (H, D), ...}};
* any failure -> {"ok": false, "error": "<one line>"}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
_ARRAY = "__ndarray__"
# Kinds a dtype may have on the wire: bool, signed / unsigned int, float. Never object.
_KINDS = frozenset("biuf")


class WireError(ValueError):
    """A message that is not a well-formed policy-server message."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _KINDS:
            raise WireError(f"array of dtype {obj.dtype} cannot be sent (numeric or bool only)")
        a = np.ascontiguousarray(obj)
        return {_ARRAY: a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send a {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if _ARRAY not in obj:
        return obj
    dtype = np.dtype(obj[_ARRAY])
    if dtype.kind not in _KINDS:
        raise WireError(f"array of dtype {dtype} refused (numeric or bool only)")
    shape = tuple(int(n) for n in obj["shape"])
    data = obj["data"]
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise WireError(f"array of shape {shape} and dtype {dtype}: {len(data)} bytes")
    # A private, writable copy: the receive buffer is reused.
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def pack(message: Mapping[str, Any]) -> bytes:
    """One message -> bytes."""
    return msgpack.packb(dict(message), default=_encode, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    """Bytes -> one message; a WireError when they are not one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    try:
        message = msgpack.unpackb(bytes(data), object_hook=_decode, raw=False)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - msgpack raises several kinds for bad bytes
        raise WireError(f"not a msgpack message: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a map, got {type(message).__name__}")
    return message


def error_reply(text: str) -> bytes:
    return pack({"ok": False, "error": text})
