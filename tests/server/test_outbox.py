"""Replies written together once per loop pass (werk.server.outbox): order and delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

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
