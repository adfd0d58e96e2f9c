"""Serve any Policy over a websocket (openpi's split): the model on a GPU machine, the nodes on
the robot PC. The client is habc_core.policy_client.PolicyClient; the wire, policy_wire.

One inference at a time, whatever the number of clients (one model, one device); each client's
requests are answered in order. A failed inference is answered with its error, and the server
goes on. No torch here: the caller hands in a loaded policy (`habc-policy-server` loads a
checkpoint, habc_trainer.serve).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from habc_core.policy import ACTIONS_OUT, Policy
from habc_core.policy_wire import PROTOCOL_VERSION, WireError, error_reply, pack, unpack

# Three 640x480 RGB frames are 2.8 MB; a chunk is a few kB. Well above both, and bounded.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class PolicyServer:
    """A websocket server around one policy. `serve_forever()` blocks; `shutdown()` stops it."""

    def __init__(
        self,
        policy: Policy,
        host: str = "127.0.0.1",
        port: int = 8765,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy: {type(policy).__name__} has no infer(obs)")
        if not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {port!r}")
        self.policy = policy
        self.metadata = {
            "protocol": PROTOCOL_VERSION,
            "name": type(policy).__name__,
            "model_index": int(getattr(policy, "model_index", -1)),
            **dict(metadata or {}),
        }
        self._lock = threading.Lock()
        self.requests = 0
        # No permessage-deflate: compressing camera frames costs more time than it saves on a
        # LAN (3 raw 640x480 frames: 107 ms round trip with it, bench/bench_policy_server.py).
        self._server: Server = serve(
            self._handle, host, port, max_size=MAX_MESSAGE_BYTES, compression=None
        )

    @property
    def port(self) -> int:
        """The bound port (the one chosen when `port` was 0)."""
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self._server.socket.getsockname()[0]
        return f"ws://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()

    def _handle(self, connection: ServerConnection) -> None:
        try:
            for message in connection:
                connection.send(self._reply(message))
        except ConnectionClosed:
            pass  # the client went away; others are served on

    def _reply(self, message: Any) -> bytes:
        try:
            request = unpack(message)
        except WireError as exc:
            return error_reply(f"bad request: {exc}")
        op = request.get("op")
        if op == "metadata":
            return pack({"ok": True, "metadata": self.metadata})
        if op != "infer":
            return error_reply(f"op: unknown {op!r}; valid: 'infer', 'metadata'")
        obs = request.get("obs")
        if not isinstance(obs, dict):
            return error_reply(f"obs: expected a map, got {type(obs).__name__}")
        try:
            with self._lock:
                self.requests += 1
                result = dict(self.policy.infer(obs))
        except Exception as exc:  # noqa: BLE001 - answered to the client, the server goes on
            return error_reply(f"inference failed: {type(exc).__name__}: {exc}")
        if ACTIONS_OUT not in result:
            return error_reply(f"the policy returned no {ACTIONS_OUT!r}")
        # The actor step that made the chunk, stamped on what the rig records.
        result.setdefault("model_index", int(getattr(self.policy, "model_index", -1)))
        try:
            return pack({"ok": True, "result": result})
        except (TypeError, WireError) as exc:
            return error_reply(f"the policy's result cannot be sent: {exc}")
