"""chatd/transport/sendqueue.py: one client's send queue on its own: what it
counts, how it joins blocks into TLS-record-sized writes, the senders it
pauses, who is a slow consumer, and what it lets go of.

The stream it writes to is `FakeStream` below, a TLS stream reduced to what
the queue sees of one: `send` takes plaintext while the socket has taken
what came before, `flush` hands it to a "socket" that takes as many bytes as
the test lets it.
"""

from __future__ import annotations

import math
import ssl
import weakref
from dataclasses import dataclass, field

import pytest

from chatd.config import LimitsConfig
from chatd.transport.sendqueue import WRITE_CHUNK, SendQueue
from chatd.transport.worker import IOStats

LIMIT = 20_000  # send_queue_bytes
BYE = b"BYE slow_consumer\n"


@dataclass
class Host:
    limits: LimitsConfig = field(default_factory=lambda: LimitsConfig(send_queue_bytes=LIMIT))


class FakeStream:
    """A TLS stream whose socket takes `room` more bytes (plaintext stands for ciphertext)."""

    def __init__(self, room: float = math.inf) -> None:
        self.room = room
        self.chunks: list[bytes] = []  # what each send() was given
        self.wire = bytearray()  # what the socket took, in order
        self._held = bytearray()  # taken by send(), not yet by the socket

    def send(self, data: bytes) -> int:
        if self._held and not self.flush():
            raise ssl.SSLWantWriteError("the socket's send buffer is full")
        self.chunks.append(data)
        self._held += data
        return len(data)

    def flush(self) -> bool:
        taken = int(min(len(self._held), self.room))
        self.wire += self._held[:taken]
        del self._held[:taken]
        self.room -= taken
        return not self._held


class Sender:
    """A client whose line this is, paused as an endpoint's `Intake` pauses it."""

    def __init__(self) -> None:
        self.waiting = False
        self.pauses = 0
        self.resumes = 0

    def pause_for_backlog(self) -> bool:
        if self.waiting:
            return False
        self.waiting = True
        self.pauses += 1
        return True

    def resume_after_backlog(self) -> None:
        self.waiting = False
        self.resumes += 1


class Owner:
    """The endpoint and its worker as its queue sees them: the worker flushes
    the owner when asked (`mark_dirty`)."""

    def __init__(self) -> None:
        self.scheduled = 0

    def mark_dirty(self, conn: object) -> None:
        assert conn is self
        self.scheduled += 1


def cut_anywhere(data: bytes, limit: int) -> int:
    return limit  # as LineCodec.cut


def rest_of_line(head: bytes) -> bytes:
    return head[: head.find(b"\n") + 1] or head  # as LineCodec.rest_of_unit


@pytest.fixture
def owner() -> Owner:
    return Owner()


@pytest.fixture
def stats() -> IOStats:
    return IOStats()


@pytest.fixture
def queue(owner: Owner, stats: IOStats) -> SendQueue:
    return SendQueue(Host(), stats, owner, owner)


def lines(count: int, size: int) -> bytes:
    """`count` lines of `size` bytes each, newline included, each one different."""
    return b"".join(b"%06d" % i + b"x" * (size - 7) + b"\n" for i in range(count))


def test_deliver_counts_bytes_and_lines_and_schedules_once_per_turn(queue: SendQueue, owner: Owner) -> None:
    queue.deliver(b"MSG #a alice hi\n")
    queue.deliver(b"MSG #a bob one\nMSG #a bob two\n", 2)
    assert (queue.queued, queue.messages_out, owner.scheduled) == (16 + 30, 3, 1)

    queue.take()  # the worker's turn
    queue.deliver(b"PONG\n")
    assert (queue.queued, queue.messages_out, owner.scheduled) == (16 + 30 + 5, 4, 2)


def test_what_the_socket_takes_is_no_longer_queued(queue: SendQueue, stats: IOStats) -> None:
    queue.deliver(b"one\n")
    queue.deliver(b"two\n")
    stream = FakeStream()
    queue.take()
    assert queue.write(stream, cut_anywhere)
    assert (bytes(stream.wire), queue.queued, stats.bytes_out, queue.refused) == (b"one\ntwo\n", 0, 8, False)


def written_one_by_one(queue: SendQueue, blocks: list[bytes], stream: FakeStream) -> FakeStream:
    """`blocks` delivered one call each, taken and written to `stream`, which takes them all."""
    for block in blocks:
        queue.deliver(block)
    queue.take()
    assert queue.write(stream, cut_anywhere)
    return stream


def test_small_blocks_are_joined_into_writes_of_at_most_one_tls_record(queue: SendQueue) -> None:
    blocks = [b"MSG #lobby alice %05d\n" % i for i in range(3000)]  # 23 bytes each, 69,000 in all
    stream = written_one_by_one(queue, blocks, FakeStream())
    assert bytes(stream.wire) == b"".join(blocks)
    assert all(len(chunk) <= WRITE_CHUNK for chunk in stream.chunks)
    assert all(len(chunk) > WRITE_CHUNK - 23 for chunk in stream.chunks[:-1])  # as full as whole blocks make them
    assert len(stream.chunks) == 5


@pytest.mark.parametrize("total", [WRITE_CHUNK - 1, WRITE_CHUNK, WRITE_CHUNK + 1])
def test_lines_that_fit_one_record_leave_in_one_write_and_one_more_byte_makes_two(queue: SendQueue, total: int) -> None:
    sizes = [101] * (total // 101) + ([total % 101] if total % 101 else [])
    blocks = [b"x" * (size - 1) + b"\n" for size in sizes]  # one call each, as at everyday load
    stream = written_one_by_one(queue, blocks, FakeStream())
    assert bytes(stream.wire) == b"".join(blocks)
    assert len(stream.chunks) == (1 if total <= WRITE_CHUNK else 2)
    assert queue.queued == 0
    written_one_by_one(queue, [b"more\n"], stream)  # the queue is usable again once drained
    assert stream.chunks[-1] == b"more\n"


def test_a_block_longer_than_a_record_is_cut_where_the_codec_says(queue: SendQueue) -> None:
    block = lines(40, 1000)
    queue.deliver(block, 40)
    stream = FakeStream()
    queue.take()
    assert queue.write(stream, cut_anywhere)
    assert [len(chunk) for chunk in stream.chunks] == [WRITE_CHUNK, WRITE_CHUNK, 40_000 - 2 * WRITE_CHUNK]
    assert bytes(stream.wire) == block


def test_a_line_cut_across_chunks_is_finished_before_the_bye(queue: SendQueue) -> None:
    block = lines(60, 1000)
    queue.deliver(block, 60)
    stream = FakeStream(room=WRITE_CHUNK)  # the socket takes one record and no more
    queue.take()
    assert not queue.write(stream, cut_anywhere)
    assert queue.refused and queue.slow_consumer(0)

    queue.drop(rest_of_line)
    queue.close_with(BYE)
    stream.room = math.inf  # the client reads again, too late
    queue.take()
    assert queue.write(stream, cut_anywhere)
    received = bytes(stream.wire)
    assert received.endswith(b"\n" + BYE)
    sent_lines = received[: -len(BYE)].split(b"\n")[:-1]
    assert sent_lines == block.split(b"\n")[: len(sent_lines)]  # whole lines, in order
    assert len(sent_lines) < 60
    assert queue.queued == 0  # the BYE counted while it waited, and left


def test_a_sender_is_paused_once_its_recipient_is_half_a_queue_behind_and_resumed_when_taken(
    queue: SendQueue,
) -> None:
    sender = Sender()
    queue.deliver(b"x" * (LIMIT // 2), 1, sender)
    assert sender.pauses == 0  # half a queue behind: not more

    queue.deliver(b"y", 1, sender)
    assert sender.pauses == 1
    queue.deliver(b"z", 1, sender)  # already waiting: paused once, resumed once
    assert sender.pauses == 1 and sender.resumes == 0

    queue.take()  # the recipient's worker took what waited
    assert sender.resumes == 1 and not sender.waiting

    queue.deliver(b"w", 1, sender)  # still queued, but taken by the worker: that does not count
    assert sender.pauses == 1


def test_over_half_is_about_all_that_waits(queue: SendQueue) -> None:
    queue.deliver(b"x" * (LIMIT // 2))
    assert not queue.over_half()
    queue.deliver(b"x")
    assert queue.over_half()
    queue.take()
    assert queue.over_half()  # taken by the worker, not yet by the socket
    queue.write(FakeStream(), cut_anywhere)
    assert not queue.over_half()


def test_only_bytes_the_socket_refused_make_a_slow_consumer(queue: SendQueue) -> None:
    queue.deliver(b"x" * (3 * LIMIT))
    assert not queue.slow_consumer(0)  # not written yet: the worker's lag, not the client's

    queue.take()
    assert queue.write(FakeStream(), cut_anywhere)
    assert not queue.slow_consumer(0)  # taken

    queue.deliver(b"x" * (3 * LIMIT))
    queue.take()
    assert not queue.write(FakeStream(room=0), cut_anywhere)
    assert queue.slow_consumer(0)
    assert not queue.slow_consumer(2 * LIMIT)  # an HTTP response in flight does not count
    assert queue.slow_consumer(2 * LIMIT - WRITE_CHUNK - 1)


def test_a_queue_with_its_last_line_takes_nothing_more(queue: SendQueue, owner: Owner) -> None:
    queue.deliver(b"x" * (3 * LIMIT))
    queue.take()
    queue.write(FakeStream(room=0), cut_anywhere)
    queue.close_with(b"BYE quit\n")
    queue.deliver(b"too late\n")
    assert queue.messages_out == 1
    assert queue.queued == 3 * LIMIT - WRITE_CHUNK + 9  # the first record went to TLS
    assert not queue.slow_consumer(0)  # already closing: the BYE's deadline decides


def test_close_drops_everything_resumes_the_waiting_and_lets_go_of_the_owner(stats: IOStats) -> None:
    owner = Owner()
    queue = SendQueue(Host(), stats, owner, owner)
    sender = Sender()
    queue.deliver(b"x" * LIMIT, 1, sender)
    assert sender.waiting
    gone = weakref.ref(owner)
    del owner
    assert gone() is not None  # the queue holds it

    queue.close()
    assert gone() is None  # at once, not at the next cyclic GC pass
    assert not sender.waiting
    assert queue.queued == 0
    queue.deliver(b"after\n")
    assert queue.queued == 0
