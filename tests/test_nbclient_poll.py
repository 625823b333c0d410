"""book/_ext/nbclient_poll.py: the kernel's messages are polled in slices, so a missed wake-up costs at
most one slice instead of the whole per-cell timeout."""

import asyncio
import importlib.util
import time
from pathlib import Path
from queue import Empty

import pytest

EXTENSION = Path(__file__).parent.parent / "book" / "_ext" / "nbclient_poll.py"
spec = importlib.util.spec_from_file_location("nbclient_poll", EXTENSION)
nbclient_poll = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbclient_poll)


class Socket:
    """A socket whose message is there from the start but whose first polls are never woken: each
    poll returns 0 after its own timeout until ``misses`` polls have gone by."""

    def __init__(self, misses: int) -> None:
        self.misses, self.polls = misses, []

    async def poll(self, timeout_ms):
        self.polls.append(timeout_ms)
        if len(self.polls) <= self.misses:
            await asyncio.sleep(timeout_ms / 1000 / 100)   # a hundredth of the wait keeps the test fast
            return 0
        return 1


class Channel:
    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    async def _recv(self):
        return {"msg_type": "execute_reply"}


def test_a_missed_wake_up_costs_one_slice_not_the_timeout():
    channel = Channel(Socket(misses=2))
    msg = asyncio.run(nbclient_poll.get_msg(channel, timeout=300))
    assert msg == {"msg_type": "execute_reply"}
    assert len(channel.socket.polls) == 3 and max(channel.socket.polls) <= nbclient_poll.SLICE * 1000


def test_no_message_still_times_out_and_none_waits_in_slices():
    channel = Channel(Socket(misses=10**6))
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(nbclient_poll.get_msg(channel, timeout=0.2))
    assert time.monotonic() - start < 5 and all(t <= 200 for t in channel.socket.polls)
    forever = Channel(Socket(misses=4))
    assert asyncio.run(nbclient_poll.get_msg(forever, timeout=None)) and len(forever.socket.polls) == 5


def test_patch_replaces_jupyter_clients_asyncio_get_msg():
    from jupyter_client.channels import AsyncZMQSocketChannel

    nbclient_poll.patch()
    assert AsyncZMQSocketChannel.get_msg is nbclient_poll.get_msg
