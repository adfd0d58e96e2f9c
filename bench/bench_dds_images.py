"""Camera-sized images between two processes, per Fast DDS builtin transport.

A publisher process sends raw RGB `sensor_msgs/Image` at `--hz` for `--seconds` (reliable,
depth 2, as the camera nodes do); a subscriber process counts what arrives. Prints sent /
received per transport and image size; never pass/fail.

    python bench/bench_dds_images.py
    python bench/bench_dds_images.py --transports DEFAULT --sizes 480x640
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import textwrap
import time

_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    role, h, w, hz, seconds, domain = sys.argv[1:7]
    h, w, hz, seconds = int(h), int(w), float(hz), float(seconds)
    rclpy.init(domain_id=int(domain))
    node = rclpy.create_node("bench_img_" + role)
    if role == "pub":
        pub = node.create_publisher(Image, "/bench/image", 2)
        data = np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
        time.sleep(2.0)  # discovery
        sent, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            pub.publish(msg)
            sent += 1
            time.sleep(1.0 / hz)
        time.sleep(0.5)
        print(sent, flush=True)
    else:
        got = []
        node.create_subscription(Image, "/bench/image", lambda m: got.append(len(m.data)), 2)
        end = time.monotonic() + seconds + 3.5
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        print(len(got), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    """
)


def _pair(transport: str, h: int, w: int, hz: float, seconds: float, domain: int):
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS=transport)
    args = [str(h), str(w), str(hz), str(seconds), str(domain)]

    def start(role: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, role, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    sub = start("sub")
    time.sleep(0.5)
    pub = start("pub")
    limit = seconds + 30.0

    def count(proc: subprocess.Popen) -> str:
        try:
            out, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "hung"
        return out.strip().splitlines()[-1] if out.strip() else f"exit {proc.returncode}"

    return count(pub), count(sub)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transports", default="DEFAULT,LARGE_DATA,UDPv4")
    p.add_argument("--sizes", default="480x640,720x1280", help="HxW,HxW")
    p.add_argument("--hz", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--domain", type=int, default=152)
    args = p.parse_args(argv)
    sizes = []
    for item in args.sizes.split(","):
        try:
            h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: expected HxW, got {item!r}") from None
        sizes.append((h, w))
    print(f"raw rgb8 images at {args.hz:g} Hz for {args.seconds:g} s, two processes")
    print(f"{'transport':<12} {'size':>10} {'sent':>6} {'received':>9}")
    for transport in args.transports.split(","):
        for h, w in sizes:
            sent, got = _pair(transport, h, w, args.hz, args.seconds, args.domain)
            print(f"{transport:<12} {f'{h}x{w}':>10} {sent:>6} {got:>9}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of one child: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
