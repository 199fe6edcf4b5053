"""Replies written together once per loop pass (werk.server.outbox): order and delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tests.helpers import Peer, push_line
from werk.protocol.resp import Simple
from werk.server.outbox import Outbox


def test_pipelined_commands_on_many_connections_get_their_replies_in_order(
    peer_factory: Callable[[], Peer],
) -> None:
    peers = [peer_factory() for _ in range(20)]
    for index, peer in enumerate(peers):
        assert peer.hello(wid=f"w{index}") == Simple("OK")
    for index, peer in enumerate(peers):  # all sent before any reply is read
        peer.send(
            push_line(f"outbox-jid-{index:04d}", queue=f"q{index}") + "\r\n" + f"FETCH q{index}\r\n"
        )
    for index, peer in enumerate(peers):
        assert peer.reply() == Simple("OK")
        fetched = peer.reply()
        assert isinstance(fetched, bytes)
        assert json.loads(fetched)["jid"] == f"outbox-jid-{index:04d}"
        assert peer.call(f'ACK {{"jid":"outbox-jid-{index:04d}"}}') == Simple("OK")


WAITING = {
    "fetch": ("", "FETCH idle"),
    "result": ("", 'RESULT {"jid":"outbox-pending","timeout":2}'),
    "limit": (
        'LIMIT ACQUIRE {"name":"outbox-one","kind":"concurrent","limit":1,"holder":"a"}',
        'LIMIT ACQUIRE {"name":"outbox-one","kind":"concurrent","limit":1,"holder":"b","wait":2}',
    ),
}


@pytest.mark.parametrize("command", sorted(WAITING))
def test_a_waiting_command_does_not_hold_back_the_replies_pipelined_before_it(
    peer_factory: Callable[[], Peer], command: str
) -> None:
    """Werk's worker sends a job's ACK and its next FETCH in one write: the ACK's +OK must
    come at once, not when the FETCH gives up waiting for a job ~2 s later; the same for
    every command that waits (RESULT and LIMIT with a timeout)."""
    peer = peer_factory()
    assert peer.hello(wid="w-pipelined") == Simple("OK")
    assert peer.call(push_line("outbox-pending", queue="held", custom={"result_ttl": 60})) == (
        Simple("OK")
    )
    setup, waits = WAITING[command]
    if setup:
        assert peer.call(setup) == Simple("OK")
    assert peer.call(push_line("outbox-acked", queue="idle")) == Simple("OK")
    assert json.loads(peer.call("FETCH idle"))["jid"] == "outbox-acked"
    peer.send('ACK {"jid":"outbox-acked"}\r\n' + waits + "\r\n")
    peer.sock.settimeout(1.0)  # well under the 2 s the next command waits
    assert peer.reply() == Simple("OK")
    peer.sock.settimeout(10.0)
    peer.reply()  # whatever the wait ends with


def test_a_reply_queued_before_the_connection_closes_is_delivered(
    peer_factory: Callable[[], Peer],
) -> None:
    peer = peer_factory()
    assert peer.hello() == Simple("OK")
    # END closes the connection in the same pass that queued the PUSH's +OK.
    peer.send(push_line("outbox-jid-last") + "\r\nEND\r\n")
    assert peer.reply() == Simple("OK")
    assert peer.closed()


async def test_outbox_keeps_each_connections_order_and_writes_once_per_pass() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(6))
        done.set()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    outbox = Outbox()
    outbox.put(writer, b"ab")
    outbox.put(writer, b"cd")
    assert len(outbox) == 1  # one connection, both replies joined
    outbox.flush(writer)  # written now, ahead of anything written next
    assert len(outbox) == 0
    outbox.put(writer, b"ef")
    await asyncio.sleep(0)  # the loop's next pass writes it
    assert len(outbox) == 0
    await asyncio.wait_for(done.wait(), 10)
    writer.close()
    listener.close()
    await listener.wait_closed()
    assert received == [b"abcdef"]


async def test_outbox_drops_the_reply_of_a_closed_connection() -> None:
    received: list[bytes] = []
    ended = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read())  # to the end: the abort
        except ConnectionError:
            pass
        ended.set()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    outbox = Outbox()
    outbox.put(writer, b"late")
    writer.transport.abort()
    outbox.write_all()  # no error: the aborted connection's reply is dropped
    assert len(outbox) == 0
    await asyncio.wait_for(ended.wait(), 10)
    listener.close()
    await listener.wait_closed()
    assert b"late" not in b"".join(received)
