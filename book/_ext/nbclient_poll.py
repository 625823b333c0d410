"""Stop notebook executions from stalling on a missed ZeroMQ wake-up: poll the kernel's sockets in slices.

The executing client (nbclient, used by nbmake and by the book build) waits for each kernel message
with one long ``socket.poll(timeout)`` of pyzmq's asyncio sockets. Those are woken by an
edge-triggered file descriptor; rarely (a few notebooks in a hundred here) the wake-up is missed
while the message already sits in the socket. Nothing then happens until the poll times out, when
pyzmq checks the socket once more, finds the message and carries on: the cell "hangs" for the whole
per-cell timeout (5 min under nbmake, 20 min in the book build), client and kernel both idle, and
then succeeds (py-spy showed both processes waiting in their event loops).

`patch` makes ``AsyncZMQSocketChannel.get_msg`` poll in slices of `SLICE` seconds until its own
timeout, so a missed wake-up costs at most one slice. The messages, their order and the timeouts are
unchanged. The test command applies it (``conftest.py``), the book build loads this file as a Sphinx
extension (``_config.yml``).
"""

from __future__ import annotations

import time
from queue import Empty

SLICE = 0.5  # seconds: the longest a missed wake-up can now delay a message


async def get_msg(self, timeout: float | None = None) -> dict:
    """A message from the channel's socket, waiting at most ``timeout`` seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE if deadline is None else max(0.0, min(SLICE, deadline - time.monotonic()))
        if await self.socket.poll(int(left * 1000)):   # a poll that times out looks at the socket once more
            return await self._recv()
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty


def patch() -> None:
    """Make jupyter_client's asyncio channels poll in slices (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    AsyncZMQSocketChannel.get_msg = get_msg


def setup(app) -> dict:
    """The Sphinx extension: patch before myst-nb executes the chapters."""
    patch()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
