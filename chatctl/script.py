"""`chatctl connect` in script mode: stdin lines out, server lines to stdout.

`ScriptSession` is one thread with a selector over the socket and stdin. It
prints every server line as it is, and keeps what they say in a
`ClientState` (chatctl/state.py).

With `--reconnect` it also comes back after a lost connection, as the
terminal UI does (docs/client.md, "Reconnecting in script mode"): notices go to stderr, the
new connection's lines are printed as they come (a second `HELLO`/`WELCOME`
tells a program that it happened), the rooms are joined again, and each
room's missed events are fetched (chatctl/timeline.py) and printed in order,
each once: an event already printed is not printed again, and the replies to
the client's own `/history` requests end without their `HISTORY` line.
Without it the output is exactly the server's lines.

# NOTE: one thread owns the SSL socket (docs/architecture.md,
# openssl/openssl#20446). Never add a reader or writer thread here.
"""

from __future__ import annotations

import os
import selectors
import sys
import time
from typing import BinaryIO, Final

from chatctl.connection import (
    QUIT_TIMEOUT,
    READ_SIZE,
    ClientError,
    Dialer,
    Exit,
    LineChannel,
    Outcome,
    bye_outcome,
    dropped_outcome,
)
from chatctl.reconnect import (
    Attempts,
    Outbox,
    Restore,
    acknowledge,
    backoff,
    gives_up,
    reconnects_after_bye,
)
from chatctl.render import sanitize
from chatctl.state import ClientState, split_line
from chatctl.timeline import Timeline

STDIN_HIGH_WATER: Final = 256 * 1024  # stop reading stdin while this much waits to be sent


def report(message: str) -> None:
    """One line on stderr, as every chatctl message."""
    sys.stderr.write(f"chatctl: {message}\n")
    sys.stderr.flush()


class _Lost(Exception):
    """The connection is gone and may be dialled again."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class ScriptSession:
    """Script mode: stdin lines out, server lines verbatim to stdout, one thread.

    One selector watches the socket and stdin (fd 0, read with `os.read`).
    Registration is automatic: the nickname is sent when `NICK` arrives (after
    `HELLO` from a v2 server, first from a v1 server), and stdin is read only
    after `WELCOME` (and, after a reconnect, once the rooms are back), so no
    input line is mistaken for a nickname or sent to the wrong room. A second
    `NICK` means the nickname was refused: exit 6. At end of input `/quit` is
    sent and the session ends at the server's `BYE`.
    """

    def __init__(
        self,
        channel: LineChannel,
        nick: str,
        stdin_fd: int = 0,
        stdout: BinaryIO | None = None,
        dialer: Dialer | None = None,
    ) -> None:
        self.channel = channel
        self.nick = nick  # the one asked for; the server's answer is in state
        self.stdin_fd = stdin_fd
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.dialer = dialer  # None: no reconnecting
        self._sanitize_output = self.stdout.isatty()
        self.state = ClientState()
        self.timeline = Timeline()
        self._restore: Restore | None = None
        self.outbox = Outbox()  # the client's own commands, paced
        self._connected = True
        self._registered_once = False
        self.attempts = Attempts()
        self._bye: str | None = None
        self._nick_sent = False
        self._last_error = ""
        self._stdin_open = True
        self._stdin_partial = b""
        self._quit_deadline: float | None = None
        self._after_bye: Outcome | None = None  # what to report once BYE (or EOF) arrives

    def run(self) -> int:
        """Returns the exit status; failures are reported on stderr, one sentence."""
        try:
            try:
                outcome = self._connections()
            except KeyboardInterrupt:
                if not self._connected:
                    raise  # reconnecting: nobody to say goodbye to
                # Ctrl-C: leave politely (/quit, wait for BYE); a second Ctrl-C gives up.
                self._quit(Outcome(Exit.INTERRUPTED))
                try:
                    outcome = self._connections()
                except (ClientError, KeyboardInterrupt):
                    outcome = Outcome(Exit.INTERRUPTED)
        except KeyboardInterrupt:
            outcome = Outcome(Exit.INTERRUPTED, "interrupted while reconnecting")
        except ClientError as exc:
            outcome = Outcome(exc.status, exc.message)
        finally:
            self.channel.close()
        if outcome.message:
            report(outcome.message)
        return int(outcome.status)

    def _connections(self) -> Outcome:
        """Run the session, over as many connections as it takes."""
        while True:
            try:
                return self._loop()
            except _Lost as lost:
                self._reconnect(lost.why)

    def _may_reconnect(self) -> bool:
        return (
            self.dialer is not None
            and self._registered_once
            and self._quit_deadline is None
            and (self._bye is None or reconnects_after_bye(self._bye))
        )

    def _reconnect(self, why: str) -> None:
        """Dial again until connected (or a failure that retrying cannot mend).

        Raises:
            ClientError: the last attempt's failure, when it is one to give up on.
        """
        assert self.dialer is not None
        unsent = self.channel.backlog
        self.channel.close()
        self._connected = False
        if unsent:
            report(f"{unsent} bytes of input were not sent before the connection was lost")
        self._restore = Restore.after_loss(self._restore, self.state)
        self.outbox.reset()
        self.timeline.connection_lost()
        self.nick = self.state.nick or self.nick
        self.state.connection_lost()
        report(f"connection lost: {why}")
        while True:
            attempt = self.attempts.next(time.monotonic())
            delay = backoff(attempt)
            report(f"reconnecting in {delay:.1f} s (attempt {attempt})")
            time.sleep(delay)  # nothing else to do meanwhile: stdin waits
            try:
                sock = self.dialer.connect()
            except ClientError as exc:
                if gives_up(exc):
                    raise
                report(f"could not reconnect: {exc.message}")
                continue
            self.channel = LineChannel(sock)
            self._connected = True
            self._bye = None
            self._nick_sent = False
            self._last_error = ""
            return

    def _quit(self, then: Outcome) -> None:
        """Send /quit and end with `then` when BYE arrives (or on timeout)."""
        if self._quit_deadline is None:
            self.channel.send_line(b"/quit")
            self._quit_deadline = time.monotonic() + QUIT_TIMEOUT
        self._after_bye = then
        self._stdin_open = False

    def _loop(self) -> Outcome:
        try:
            return self._select()
        except ClientError as exc:
            if self._may_reconnect():
                raise _Lost(exc.message.removesuffix("; try connecting again")) from exc
            raise

    def _select(self) -> Outcome:
        selector = selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.DefaultSelector()
        # NOTE: poll, not epoll: epoll refuses regular files, and `< file` is a normal stdin here.
        with selector:
            selector.register(self.channel.fileno(), selectors.EVENT_READ)
            stdin_watched = False
            while True:
                # Read first: the handshake may have left lines in OpenSSL's buffer,
                # where the selector cannot see them.
                outcome = self._read_socket()
                if outcome is not None:
                    return outcome
                self.channel.flush()
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.channel.wants_write else 0)
                selector.modify(self.channel.fileno(), events)
                restoring = self._restore is not None and not self._restore.done
                want_stdin = (
                    self.state.registered
                    and not restoring
                    and self._stdin_open
                    and self.channel.backlog < STDIN_HIGH_WATER
                )
                if want_stdin != stdin_watched:
                    if want_stdin:
                        selector.register(self.stdin_fd, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.stdin_fd)
                    stdin_watched = want_stdin
                timeout = None
                if self._quit_deadline is not None:
                    timeout = max(0.0, self._quit_deadline - time.monotonic())
                ready = selector.select(timeout)
                if not ready and self._quit_deadline is not None and time.monotonic() >= self._quit_deadline:
                    raise ClientError(Exit.DROPPED, f"the server did not answer /quit within {QUIT_TIMEOUT:g} s")
                for key, _mask in ready:
                    if key.fd == self.stdin_fd:
                        self._read_stdin()

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            if self._stdin_partial:
                self._send(self._stdin_partial)
                self._stdin_partial = b""
            self._quit(Outcome(Exit.OK))
            return
        *lines, self._stdin_partial = (self._stdin_partial + data).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if line:
                self._send(line)

    def _send(self, line: bytes) -> None:
        if self.dialer is not None:
            self.timeline.on_command(line.decode("utf-8", "replace"))
        self.channel.send_line(line)

    def _read_socket(self) -> Outcome | None:
        lines = self.channel.read_lines()
        for line in lines:
            if self.dialer is None:
                self._print(line)
            outcome = self._handle(line.decode("utf-8", "replace"))
            if outcome is not None:
                return outcome
        if self.channel.closed:
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye
            if self._may_reconnect():
                raise _Lost("the server closed the connection" + ("" if self._bye else " without saying why"))
            return bye_outcome(self._bye) if self._bye is not None else dropped_outcome()
        return None

    def _handle(self, line: str) -> Outcome | None:
        self.state.on_line(line)
        verb, rest = split_line(line)
        if self.dialer is not None:
            self._follow(line, verb, rest)
        if verb == "NICK":
            if self._nick_sent:
                self._quit(self._nick_refused())
            else:
                self.channel.send_line(self.nick.encode())
                self._nick_sent = True
        elif verb == "WELCOME":
            self._registered_once = True
            self.attempts.registered(time.monotonic())
        elif verb == "ERR":
            self._last_error = rest
        elif verb == "BYE":
            self._bye = rest
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye  # we asked to leave because of an error: report that
            if self._may_reconnect():
                return None  # the close that follows is where reconnecting starts
            return bye_outcome(rest)
        return None

    def _follow(self, line: str, verb: str, rest: str) -> None:
        """With --reconnect: the timeline decides what is printed; the restore and
        the catch-up send their commands, through the outbox."""
        step = self.timeline.feed(line, self.state.nick, self.outbox.history_in_flight)
        ours = self.outbox.on_pong(rest) if verb == "PONG" else None
        for shown in step.show:
            if ours is None:  # the acknowledgement of our own command is not printed
                self._print(shown.line.encode("utf-8"))
        for command in step.send:
            self._push(command)
        restore = self._restore
        restoring = restore is not None and not restore.done
        if ours is not None:
            for text in acknowledge(ours, self.timeline, restore):
                self.channel.send_line(text.encode())
        if restore is not None and not restore.sent:
            for command in restore.on_line(verb, rest, self.state):
                self._push(command)
        if restoring and restore is not None and restore.done:
            self.state.reorder(restore.rooms)
            self.timeline.forget_catch_up()
        for room, missed in step.caught_up:
            report(f"{room}: caught up, {missed} missed event" + ("" if missed == 1 else "s"))  # on stderr
        for room in step.incomplete:
            report(f"{room}: could not fetch everything said while disconnected")

    def _push(self, command: str) -> None:
        for text in self.outbox.push(command):
            self.channel.send_line(text.encode())

    def _nick_refused(self) -> Outcome:
        code, _, text = self._last_error.partition(" ")
        if code == "nick_taken":
            why = "is taken"
        else:
            why = "was refused" + (f" ({sanitize(text)})" if text else "")
        return Outcome(Exit.NICK_REFUSED, f"the nickname {self.nick!r} {why}; choose another with --nick")

    def _print(self, line: bytes) -> None:
        if self._sanitize_output:
            line = sanitize(line.decode("utf-8", "replace")).encode("utf-8")
        try:
            self.stdout.write(line + b"\n")
            self.stdout.flush()
        except BrokenPipeError:
            # Whoever reads our output has gone (`| head`): stop printing, leave politely.
            # Python's recipe: point stdout at /dev/null so the exit-time flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
            self._quit(Outcome(Exit.OTHER))
