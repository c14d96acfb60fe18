"""IrcCodec: IRC (RFC 1459/2812 as modern.ircdocs.horse has them, and IRCv3)
on a TLS connection of the IRC listener, driving the same chat session as
every other client.

Coming in, it reads IRC lines (ircmessage.py), registers the client itself
(CAP, NICK, USER, PASS: ircreg.py), then hands its chat session (the same
`Session` a line client has) the nickname, and afterwards each command as
the session's own (ircin.py's table): the PRIVMSGs and NOTICEs of one read
together, so that the session says them to a room's members as one block
(a plain `PRIVMSG <target> :<text>`, the line nearly every message is, is
read by `_said` without the general parser: the fan-out's path, see
bench/INSTRUCTIONS.md "IRC clients"). Going out, it is the session's outlet:
what the session delivers are lines of the line protocol, which it
translates into IRC lines: the events a room's members share through the
server's `Frames` (ircout.py), once per block and set of capabilities,
and handed to all of a room's IRC members in one call (`IrcGroup`, the
listener's delivery group); a reply to this client (ircreplies.py) by the
command it answers.

Which command a reply answers: the codec is the session's `Tracer`, told
when each command it handed over begins and ends being handled; what the
session delivers on this connection's thread in between answers it (with
`labeled-response`, inside a batch carrying its label). A CHATHISTORY's
events come later, from the history thread: those answers come in the order
asked, so they go to the oldest CHATHISTORY still waiting, and a PING asked
after one is answered after it (clients synchronise on PONG).

What is not here: TLS, reading and writing (the endpoint's), and any chat
logic (the session's: chatd/core/).
"""

from __future__ import annotations

import collections
import functools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog

from chatd.outlet import Command, Deliver, Outlet, Sender
from chatd.transport import ircin, ircmessage, ircsasl
from chatd.transport.endpoint import Endpoint
from chatd.transport.forwarding import ForwardingOutlet
from chatd.transport.framing import TOO_LONG, LineBuffer
from chatd.transport.ircout import Directory, Frames, Translated
from chatd.transport.ircreg import Settings
from chatd.transport.ircreplies import Lines, Personal, add_tag
from chatd.transport.ircstate import Asked, IrcState, Reply

log = structlog.get_logger(__name__)


class IrcSession(Protocol):
    """The chat session, as the IRC codec drives it (chatd.core.session.Session)."""

    nick: str
    messages_in: int
    rate_limited: int

    def on_open(self, reject: str | None, cert_nick: str | None) -> None: ...
    def on_lines(self, lines: Sequence[bytes | Command | None]) -> None: ...
    def charge(self, frames: int) -> bool: ...
    def on_timer(self, now: float) -> None: ...
    def on_close(self, reason: str, text: str) -> bytes: ...
    def limits_changed(self) -> None: ...


# The messages of one read are handed to the session together, so that those to
# one room leave as one block for its members (one delivery each, not one per
# line); any other command first hands over what came before it.
_GATHERED = frozenset({"PRIVMSG", "NOTICE"})
# The line almost every PRIVMSG is: no tags, no source, one target, text that
# needs no cleaning (no control character, so no CTCP, not only spaces). Read
# by `_said` without the general parser; anything else takes `_read`.
# NOTE: its classes are ranges of what is allowed, not negated sets of what
# is not: the same bytes, and sre reads a text against them in half the time.
_PLAIN: Final = re.compile(rb"(PRIVMSG|NOTICE) ([!-+\--9;-\xff][!-+\--\xff]*) :( *[!-~\x80-\xff][ -~\x80-\xff]*)\r?")
_PLAIN_MAX: Final = ircmessage.BODY_MAX - 2  # longer: `_read` refuses it (417)
_PLAIN_KEPT: Final = 64  # targets whose `Asked` a codec keeps


class IrcGroup:
    """The IRC codecs of a listener as one delivery group (chatd/outlet.py):
    a room hands a block to all of its IRC members in one call."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames

    def deliver_to(self, outlets: tuple[Outlet, ...]) -> Deliver:
        codecs = tuple(outlet for outlet in outlets if isinstance(outlet, IrcCodec))
        if len(codecs) != len(outlets):
            raise TypeError("an IRC delivery group holds IRC codecs only")
        return functools.partial(IrcCodec.deliver_each, self.frames, codecs)


class IrcCodec(ForwardingOutlet):
    exempt_bytes = 0  # an IRC reader that takes nothing is a slow consumer like any other

    def __init__(
        self,
        endpoint: Endpoint,
        settings: Settings,
        frames: Frames,
        open_session: Callable[[IrcCodec], IrcSession],
    ) -> None:
        self.endpoint = endpoint
        self.peer = endpoint.peer
        self.connected_at = endpoint.connected_at
        self.settings = settings
        self.frames = frames
        self.directory: Directory = frames.directory
        self.state = IrcState(settings.server)
        self._personal = Personal(self.state, frames, settings)
        self._buffer = LineBuffer(ircmessage.LINE_MAX)
        self._in_thread = endpoint.worker.in_thread
        self._queue = endpoint.deliver  # the send queue's
        self._plain: dict[tuple[bytes, bytes], Asked] = {}  # by command and target: `_said`
        self._lock = threading.Lock()  # the history answers' state, shared with the history thread
        self._asked: collections.deque[tuple[Command | bytes, Asked]] = collections.deque()  # handed over
        self._queued: list[tuple[Command | bytes, Asked]] = []  # of the line being read
        self._queued_histories: list[Asked] = []  # those of `_queued` that are CHATHISTORYs
        self._window: Asked | None = None  # the command the session is handling now
        self._histories: collections.deque[Asked] = collections.deque()  # CHATHISTORYs awaiting events
        self._after_history: list[Reply] = []  # PONGs waiting for those
        self.app = open_session(self)

    # -- the session's outlet (any thread) ---------------------------------------------------

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        self.deliver_each(self.frames, (self,), data, lines, sender)

    @staticmethod
    def deliver_each(
        frames: Frames, codecs: tuple[IrcCodec, ...], data: bytes, lines: int, sender: Sender | None
    ) -> None:
        """`data` to each of `codecs`: a room's block, translated once per
        profile, to its IRC members in one call (`IrcGroup`), or one
        delivery to one codec (NOTE: a room's fan-out: per member, few lookups
        and no call but the send queue's; bench/INSTRUCTIONS.md)."""
        profile = -1  # none: the first codec's is translated
        translated: Translated | None = None
        for codec in codecs:
            window = codec._window
            if window is not None and codec._in_thread():  # its own command's answer
                codec._answered(window, codec._personal.block(data, window))
                continue
            state = codec.state
            if state.profile != profile:
                profile = state.profile
                translated = frames.translate(data, profile)
            if translated is not None:
                if translated.about != state.key:
                    if translated.lines:
                        codec._queue(translated.data, translated.lines, sender)
                    continue
                if translated.said:  # its own lines: their echo is what the others got, if it asked for one
                    if translated.lines and "echo-message" in state.caps:
                        codec.endpoint.deliver(translated.data, translated.lines, sender)
                    continue
            codec._outside(data, sender)

    # -- the session's tracer (this connection's thread) ---------------------------------------

    def wants_events(self, item: bytes | Command | None) -> bool:
        """A labeled command's answer goes whole: with `echo-message`, its echo
        is in it. Any other's events join the read's block, and its echo comes
        when that block leaves, still before the answer to anything sent later."""
        if not self._asked:
            return False
        handed, asked = self._asked[0]
        return handed is item and asked.reply.label is not None

    def begin(self, item: bytes | Command | None) -> None:
        handed, asked = self._asked.popleft() if self._asked else (None, None)
        self._window = asked if handed is item else None

    def end(self) -> None:
        asked, self._window = self._window, None
        if asked is None:
            return
        reply = asked.reply
        if reply.label is None and not reply.out and reply.command in _GATHERED:
            return  # nothing to send (`_settle` would send nothing), and no label waits for it
        with self._lock:
            reply.waiting -= 1
        self._settle(reply)

    # -- the codec (this connection's thread) ------------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        log.info("irc_opened", **self.endpoint.context)
        self.app.on_open(reject, cert_nick)

    def on_data(self, data: bytes) -> None:
        lines = self._buffer.feed(data)
        if lines:
            self.endpoint.worker.stats.lines_in += len(lines)
        is_open = self.endpoint.is_open
        if not is_open():
            return
        for raw in lines:
            if raw is not TOO_LONG and self.state.registered and self._said(raw):
                continue  # only queued: nothing that could have closed the connection
            self._read(raw)
            if not is_open():
                break
        self._hand_over()

    def _said(self, raw: bytes) -> bool:
        """`PRIVMSG <target> :<text>` (or NOTICE) queued for the session as
        `_read` and ircin's `_message` would queue it, or False for any line
        that is not that plain (NOTE: the fan-out's path, bench/INSTRUCTIONS.md)."""
        plain = _PLAIN.fullmatch(raw) if len(raw) <= _PLAIN_MAX else None
        if plain is None:
            return False
        command, target, text = plain.groups()
        if not text.isascii():
            try:
                if not text.decode().isprintable():  # what clean_text would change, or keep as is
                    return False
            except UnicodeDecodeError:
                return False  # FAIL INVALID_UTF8
        asked = self._plain.get((command, target))
        if asked is None:
            asked = self._plain_asked(command, target)
        self._queued.append((Command("msg", text, asked.target, tags=b"notice" if asked.reply.quiet else b""), asked))
        return True

    def _plain_asked(self, command: bytes, target: bytes) -> Asked:
        """What a plain message to `target` asks: one `Asked` for them all, with
        one `Reply` for all such PRIVMSGs (another for NOTICEs). Unlabeled, a
        message's reply is flushed at the end of each (`end`), and its count
        of commands waiting is read by no one."""
        if len(self._plain) >= _PLAIN_KEPT:
            self._plain.clear()
        quiet = command == b"NOTICE"
        reply = Reply("NOTICE", quiet=True) if quiet else Reply("PRIVMSG")
        asked = self._plain[command, target] = Asked(reply, target=target.decode("utf-8", "replace"))
        return asked

    def _read(self, raw: bytes | None) -> None:
        state = self.state
        try:
            message = ircmessage.parse(raw) if raw is not TOO_LONG else None
        except ircmessage.TooLong:
            message, raw = None, TOO_LONG
        except UnicodeDecodeError:
            self._hand_over()
            self._send([state.fail("*", "INVALID_UTF8", "Tags must be UTF-8.")])
            return
        if raw is TOO_LONG:
            self._hand_over()
            self._send([state.numeric("417", "Input line was too long")])
            return
        if message is None:
            return  # an empty line
        gathered = message.command in _GATHERED
        if not gathered:
            self._hand_over()  # its answer comes after theirs, and it may read what they change
        label = message.tags.get("label") if message.tags and state.has("labeled-response") else None
        reply = Reply(message.command, label, waiting=1)  # one until this line is read
        handler = ircin.COMMANDS.get(message.command)
        if not state.registered and message.command not in ircin.BEFORE_REGISTRATION:
            reply.out.append(state.numeric("451", "You have not registered"))
        elif handler is None:
            if self.app.charge(1):
                reply.out.append(state.numeric("421", message.command, "Unknown command"))
        else:
            handler(self, message, reply)
        if not state.registered:
            self._register(reply)
        if reply.out or not gathered:
            self._hand_over()
        with self._lock:
            reply.waiting -= 1
        self._settle(reply)

    def _register(self, reply: Reply) -> None:
        """Hand the session the nickname once NICK and USER have come (and CAP END)."""
        state = self.state
        if state.wanted and state.user and not state.negotiating:
            if state.sasl_mechanism:  # an exchange begun, not finished: aborted (sasl-3.1)
                ircsasl.reset(state)
                reply.out.append(state.numeric("906", "SASL authentication aborted"))
            # After SASL, the account's name: an account's name is its nickname.
            nick, state.wanted = state.account or state.wanted, ""
            self.ask(reply, nick.encode(), Asked(reply, target=nick))

    def ask(self, reply: Reply, command: Command | bytes, asked: Asked) -> None:
        reply.waiting += 1
        if asked.history is not None:
            reply.waiting += 1  # its events, later
            self._queued_histories.append(asked)
        self._queued.append((command, asked))

    def charge(self) -> bool:
        return self.app.charge(1)

    def _hand_over(self) -> None:
        queued, self._queued = self._queued, []
        if not queued:
            return
        if self._queued_histories:
            histories, self._queued_histories = self._queued_histories, []
            with self._lock:
                self._histories.extend(histories)
        self._asked.extend(queued)
        self.app.on_lines([command for command, _ in queued])

    def on_timer(self, now: float) -> None:
        self.app.on_timer(now)

    def on_close(self, reason: str, text: str) -> bytes:
        bye = self.app.on_close(reason, text)
        window, self._window = self._window, None
        said = window.reply.out if window is not None else []
        code, _, detail = bye.decode().rstrip("\n").partition(" ")[2].partition(" ")
        words = ircmessage_reason(code, detail)
        return b"".join(said) + ircmessage.line(None, "ERROR", f"Closing link: {words}")

    def limits_changed(self) -> None:
        self.app.limits_changed()

    def cut(self, data: bytes, limit: int) -> int:
        return limit  # anywhere: `rest_of_unit` finishes a line cut short

    def rest_of_unit(self, head: bytes) -> bytes:
        return head[: head.find(b"\n") + 1] or head

    def drained(self) -> None:
        pass  # never asked for

    # -- answers ------------------------------------------------------------------------------

    def _answered(self, asked: Asked, lines: Lines) -> None:
        """What the session said, in this connection's thread, while handling `asked`."""
        if lines.other:
            self._send(lines.other)
        reply = asked.reply
        reply.out.extend(lines.answer)
        if asked.history is not None and lines.history_answered:
            with self._lock:  # answered at once (an error, or a store that never blocks)
                if asked in self._histories:
                    self._histories.remove(asked)
                reply.waiting -= 1

    def _outside(self, data: bytes, sender: Sender | None) -> None:
        """A block for this client alone, outside any command of its own: another
        client's, an operator's, or the events of a CHATHISTORY (the history thread)."""
        answer = data.endswith(b"\n") and (
            data.startswith(b"ERR no_history") or b"\nHISTORY " in b"\n" + data or b"\nTARGETS " in b"\n" + data
        )
        with self._lock:
            asked = self._histories[0] if answer and self._histories else None
        lines = self._personal.block(data, asked)
        if asked is None or not lines.history_answered:
            self._send(lines.other + lines.answer, sender)
            return
        self._send(lines.other, sender)
        with self._lock:
            self._histories.popleft()
            asked.reply.out.extend(lines.answer)
            asked.reply.waiting -= 1
            parked = [] if self._histories else self._after_history
            if parked:
                self._after_history = []
        for reply in (asked.reply, *parked):
            self._settle(reply, parked=reply is not asked.reply)

    def _settle(self, reply: Reply, parked: bool = False) -> None:
        """Send what `reply` has so far; with a label, only once it is complete."""
        with self._lock:
            if (reply.label is not None or reply.command == "PING") and reply.waiting > 0:
                return  # a labeled answer goes whole; a PONG after all that came before
            if reply.command == "PING" and self._histories and not parked:
                self._after_history.append(reply)  # after the CHATHISTORY asked before it
                return
            out, reply.out = reply.out, []
            label, reply.label = reply.label, None
            done = reply.waiting <= 0
        if label is not None and done:
            out = self._labeled(label, out)
        self._send(out)

    def _labeled(self, label: str, out: list[bytes]) -> list[bytes]:
        state = self.state
        tag = f"label={ircmessage.escape_value(label)}"
        if not out:
            return [ircmessage.line(state.server, "ACK", tags=tag)]
        if len(out) == 1 or not state.has("batch"):
            return [add_tag(out[0], tag), *out[1:]]
        ident = state.batch_id()
        return [
            add_tag(ircmessage.line(state.server, "BATCH", f"+{ident}", "labeled-response"), tag),
            *(add_tag(line, f"batch={ident}") for line in out),
            ircmessage.line(state.server, "BATCH", f"-{ident}"),
        ]

    def _send(self, lines: list[bytes], sender: Sender | None = None) -> None:
        if lines:
            self.endpoint.deliver(b"".join(lines), len(lines), sender)


_REASONS = {
    "quit": "Quit",
    "register_timeout": "Registration timed out",
    "nick_failed": "Too many refused nicknames",
    "server_full": "The server is full",
    "too_many_connections": "Too many connections from your address",
    "throttled": "Too many connections from your address in the last minute",
    "shutdown": "Server shutting down",
    "kicked": "Kicked by an operator",
    "flood": "Excess flood",
    "slow_consumer": "SendQ exceeded",
    "write_timeout": "Write timeout",
    "too_many_errors": "Too many errors",
}


def ircmessage_reason(code: str, detail: str) -> str:
    words = _REASONS.get(code, code or "Closed")
    return f"{words} ({detail})" if detail else words
