"""A Policy whose inference runs on a policy server (habc_core.policy_server), for the policy
node and the collector alike: `infer(obs)` sends the observation and returns the server's chunk.

A server that cannot be reached, answers late or drops the connection makes `infer` raise
PolicyServerError with one line naming the server; the next call connects again. The policy
node then has no chunk, and the mux holds the arms after `policy_timeout_s` (labelled HOLD):
a lost server stops the robot, never leaves it acting on an old chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from habc_core.policy import ACTIONS_OUT
from habc_core.policy_server import MAX_MESSAGE_BYTES
from habc_core.policy_wire import PROTOCOL_VERSION, WireError, pack, unpack


class PolicyServerError(RuntimeError):
    """The server is unreachable, too slow, or answered with an error."""


class PolicyClient:
    """Policy (habc_core.policy) served elsewhere. `timeout_s` bounds one round trip."""

    def __init__(self, url: str, timeout_s: float = 5.0, connect_timeout_s: float = 2.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ValueError(f"policy server: {url!r} is not a ws://host:port address")
        if not timeout_s > 0 or not connect_timeout_s > 0:
            raise ValueError(f"timeout_s, connect_timeout_s: must be > 0, got {timeout_s}")
        self.url = url
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._ws: ClientConnection | None = None
        self._metadata: dict[str, Any] | None = None
        self.model_index = -1

    def metadata(self) -> dict[str, Any]:
        """What the server says of its policy (model_index, horizon, action_dim, name)."""
        if self._metadata is None:
            meta = self._call({"op": "metadata"})["metadata"]
            if int(meta.get("protocol", -1)) != PROTOCOL_VERSION:
                raise PolicyServerError(
                    f"policy server {self.url}: protocol {meta.get('protocol')!r}, "
                    f"this client speaks {PROTOCOL_VERSION}"
                )
            self._metadata = dict(meta)
            self.model_index = int(meta.get("model_index", -1))
        return dict(self._metadata)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        result = self._call({"op": "infer", "obs": dict(obs)})["result"]
        if ACTIONS_OUT not in result:
            raise PolicyServerError(f"policy server {self.url}: no {ACTIONS_OUT!r} in its reply")
        if "model_index" in result:
            self.model_index = int(result["model_index"])
        return result

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def _call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            ws = self._connection()
            ws.send(pack(request))
            reply = unpack(ws.recv(timeout=self.timeout_s))
        except TimeoutError:
            self.close()  # a late reply must not be read as the answer to the next request
            raise PolicyServerError(
                f"policy server {self.url}: no reply within {self.timeout_s} s"
            ) from None
        except (OSError, WebSocketException, WireError) as exc:
            self.close()
            raise PolicyServerError(
                f"policy server {self.url}: {type(exc).__name__}: {exc}"
            ) from None
        if not reply.get("ok"):
            raise PolicyServerError(f"policy server {self.url}: {reply.get('error', 'error')}")
        return reply

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            # A long-lived connection, closed by close(): not a `with` block (legacy=True is
            # websockets' name for connecting directly, websockets >= 17.1).
            self._ws = connect(
                self.url,
                open_timeout=self.connect_timeout_s,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,  # as the server (policy_server): frames compress poorly
                legacy=True,
            )
        return self._ws
