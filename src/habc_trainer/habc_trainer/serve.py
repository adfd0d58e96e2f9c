"""`habc-policy-server`: serve a checkpoint (or any `module:callable` policy) to policy nodes on
other machines: `habc-policy-server --checkpoint ckpt/habc/round_003 --host 0.0.0.0`, then the
policy node's `checkpoint: ws://<this machine>:8765`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from habc_core.cli import ArgumentParser, UserError, positive_int, user_errors
from habc_core.policy import load_callable, spec_kind
from habc_core.policy_server import PolicyServer

PROG = "habc-policy-server"
DEVICES = ("cpu", "cuda")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected 0..65535, got {port}")
    return port


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="serve one policy over a websocket")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory or module:callable")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    p.add_argument("--port", type=_port, default=8765, help="port (0: any free one)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where the model runs")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    return p


def load_served_policy(spec: str, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(policy, metadata) for a checkpoint directory or a `module:callable` spec."""
    if spec_kind(spec) == "callable":
        policy = load_callable(spec)
        return policy, {"model_index": int(getattr(policy, "model_index", -1))}
    path = Path(spec)
    if not path.is_dir():
        raise UserError(f"--checkpoint: {spec!r} is neither a checkpoint directory nor module:fn")
    from habc_trainer.checkpoint import CheckpointError, load_checkpoint, load_policy  # torch

    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise UserError(f"--checkpoint: {exc}") from None
    meta = {
        "model_index": int(ckpt.model_index),
        "horizon": int(ckpt.model_config.horizon),
        "action_dim": int(ckpt.model_config.action_dim),
        "checkpoint": str(path.resolve()),
    }
    return load_policy(path, device=device), meta


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors(PROG):
        args = _parser().parse_args(argv)
        if args.threads is not None:
            import torch  # only to size its CPU pool

            torch.set_num_threads(args.threads)
        policy, meta = load_served_policy(args.checkpoint, args.device)
        try:
            server = PolicyServer(policy, args.host, args.port, meta)
        except OSError as exc:  # port in use, address not on this machine
            raise UserError(f"--host/--port {args.host}:{args.port}: {exc.strerror}") from None
    print(f"{PROG}: serving {meta} on {server.url}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
