"""One extracted episode from a converter helper process to the writing process, over a socket.

Pickled whole, an episode of three 96 px cameras is 12 MB that the helper copies into the pipe
and the writer reads and unpickles (measured: 20-30 ms of the writer's time per episode, the
writer being the busiest process of the pool). Instead its arrays go into an anonymous memory
file (`memfd_create`) whose descriptor crosses the socket; the writer maps it and reads the
arrays in place, and only the episode's facts are pickled. The kernel frees the file when the
last descriptor or mapping goes, so nothing is left behind if either process dies. Without
memfd_create (not Linux) the arrays are pickled with the rest.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from multiprocessing import reduction
from typing import Any

import numpy as np

from habc_trainer.episode_types import Episode

# (key, dtype string, shape, byte offset) per array, in the memory file.
Layout = list[tuple[str, str, tuple[int, ...], int]]


def send_result(conn: Any, index: int, episode: Episode | None, reason: str | None) -> None:
    """Send bag `index`'s result (an episode, or why there is none) on `conn`."""
    if episode is None or not hasattr(os, "memfd_create"):
        conn.send((index, episode, reason, None))
        return
    fd = os.memfd_create(f"habc-episode-{index}", os.MFD_CLOEXEC)
    try:
        layout: Layout = []
        offset = 0
        with open(fd, "wb", closefd=False) as out:
            for key, array in episode.arrays.items():
                flat = np.ascontiguousarray(array)
                out.write(flat.data.cast("B") if flat.nbytes else b"")
                layout.append((key, flat.dtype.str, flat.shape, offset))
                offset += flat.nbytes
        conn.send((index, dataclasses.replace(episode, arrays={}), reason, layout))
        reduction.send_handle(conn, fd, os.getppid())
    finally:
        os.close(fd)


def receive_result(conn: Any) -> tuple[int, Episode | None, str | None]:
    """The next (index, episode, reason) on `conn`; EOFError when its sender closed it."""
    index, episode, reason, layout = conn.recv()
    if layout is not None:
        fd = reduction.recv_handle(conn)
        try:
            episode = dataclasses.replace(episode, arrays=_mapped_arrays(fd, layout))
        finally:
            os.close(fd)
    return index, episode, reason


def _mapped_arrays(fd: int, layout: Layout) -> dict[str, np.ndarray]:
    size = os.fstat(fd).st_size
    if size == 0:
        return {key: np.empty(shape, dtype) for key, dtype, shape, _off in layout}
    # ACCESS_COPY: the arrays are writable like any others, and a write stays in this process.
    memory = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    out = {}
    for key, dtype, shape, offset in layout:
        count = int(np.prod(shape))
        out[key] = (
            np.frombuffer(memory, dtype, count, offset).reshape(shape)
            if count
            else np.empty(shape, dtype)
        )
    return out
