"""`chatctl connect` in script mode: stdin lines out, server lines to stdout.

`ScriptMode` is one thread with a selector over the socket and stdin. It
prints every server line as it is; what the lines mean (registration, the
restore after a reconnect, the catch-up, the pacing of the client's own
commands) is the `Session`'s (chatctl/session.py), which the terminal UI
drives too. This module does the I/O: the socket, stdin, stdout, stderr and
the waits.

With `--reconnect` it also comes back after a lost connection, as the
terminal UI does (docs/client.md, "Reconnecting in script mode"): notices go to stderr, the
new connection's lines are printed as they come (a second `HELLO`/`WELCOME`
tells a program that it happened), the rooms are joined again, and each
room's missed events are fetched (chatctl/timeline.py) and printed in order,
each once: an event already printed is not printed again, and the replies to
the client's own `/history` requests end without their `HISTORY` line.
Without it the output is exactly the server's lines.

With `--login` the session signs in (chatctl/signin.py): the password comes
from `--password-file` (read again when a kept token is refused), a refusal
ends the run with status 6, the token is kept in its file, and these
notices go to stderr. The `TOKEN` line that answers chatctl's own
`/remember` is never printed.

# NOTE: one thread owns the SSL socket (docs/architecture.md,
# openssl/openssl#20446). Never add a reader or writer thread here.
"""

from __future__ import annotations

import os
import selectors
import sys
import time
from collections.abc import Sequence
from typing import BinaryIO, Final

from chatctl.connection import QUIT_TIMEOUT, READ_SIZE, ClientError, Dialer, Exit, LineChannel, Outcome
from chatctl.credentials import CredentialError, Login, read_password_file
from chatctl.reconnect import backoff, gives_up
from chatctl.render import sanitize
from chatctl.session import (
    Action,
    CaughtUp,
    Ended,
    Incomplete,
    KeepToken,
    Lost,
    NickNeeded,
    PasswordNeeded,
    Send,
    Session,
    Shown,
)

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


class ScriptMode:
    """Script mode: stdin lines out, server lines verbatim to stdout, one thread.

    One selector watches the socket and stdin (fd 0, read with `os.read`).
    Registration is automatic: the nickname is sent when `NICK` arrives (after
    `HELLO` from a v2 server, first from a v1 server), and stdin is read only
    once the session is `ready` (after `WELCOME` and, after a reconnect, once
    the rooms are back), so no input line is mistaken for a nickname or sent
    to the wrong room. A second `NICK` means the nickname was refused: exit 6.
    At end of input `/quit` is sent and the run ends at the server's `BYE`.

    Lines are decoded with `surrogateescape` and encoded back the same way:
    what is printed and sent is byte for byte what came.
    """

    def __init__(
        self,
        channel: LineChannel,
        nick: str,
        stdin_fd: int = 0,
        stdout: BinaryIO | None = None,
        dialer: Dialer | None = None,
        login: Login | None = None,
    ) -> None:
        self.channel = channel
        self.login = login
        self.stdin_fd = stdin_fd
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.dialer = dialer  # None: no reconnecting
        # Without --reconnect every line is printed as it came (follow=False).
        signin = login.signin if login is not None else None
        self.session = Session(nick, follow=dialer is not None, reconnect=dialer is not None, signin=signin)
        self._sanitize_output = self.stdout.isatty()
        self._connected = True
        self._stdin_open = True
        self._stdin_partial = b""
        self._quit_deadline: float | None = None

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
        report(f"connection lost: {why}")
        while True:
            attempt = self.session.attempts.next(time.monotonic())
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
            return

    def _quit(self, then: Outcome) -> None:
        """Send /quit and end with `then` when BYE arrives (or on timeout)."""
        sends = self.session.quit(then=then)
        if sends:
            self._quit_deadline = time.monotonic() + QUIT_TIMEOUT
        self._act(sends)
        self._stdin_open = False

    def _loop(self) -> Outcome:
        try:
            return self._select()
        except ClientError as exc:
            if self.session.quitting:
                raise  # leaving anyway: the failure (or the /quit timeout) says how it ended
            return self._closed(exc)

    def _closed(self, error: ClientError | None) -> Outcome:
        """The connection ended: the outcome, or `_Lost` to dial again."""
        result = self.session.closed(error)
        if isinstance(result, Lost):
            raise _Lost(result.why)
        return result.outcome

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
                want_stdin = self.session.ready and self._stdin_open and self.channel.backlog < STDIN_HIGH_WATER
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
        self._act(self.session.command(line.decode("utf-8", "surrogateescape")))

    def _read_socket(self) -> Outcome | None:
        for line in self.channel.read_lines():
            outcome = self._act(self.session.feed(line.decode("utf-8", "surrogateescape"), time.monotonic()))
            if outcome is not None:
                return outcome
        if self.channel.closed:
            return self._closed(None)
        return None

    def _act(self, actions: Sequence[Action]) -> Outcome | None:
        """Do what the session says; returns the outcome when it ended."""
        outcome: Outcome | None = None
        for action in actions:
            match action:
                case Send(text):
                    self.channel.send_line(text.encode("utf-8", "surrogateescape"))
                case Shown(line):  # quiet lines too: they are the protocol's
                    self._print(line)
                case CaughtUp(room, missed):  # on stderr
                    report(f"{room}: caught up, {missed} missed event" + ("" if missed == 1 else "s"))
                case Incomplete(room):
                    report(f"{room}: could not fetch everything said while disconnected")
                case NickNeeded(refused, error):
                    self._quit(_nick_refused(refused or "", error))
                case PasswordNeeded(_account, error, refused):
                    self._password(error, refused)
                case KeepToken(token, expires):
                    self._keep(token, expires)
                case Ended(ended):
                    outcome = ended
        return outcome

    def _password(self, error: str, refused: bool) -> None:
        """The password again (a kept token was refused): from --password-file,
        read anew; none there, or the file's own refused: leave with why."""
        assert self.login is not None
        if refused or self.login.password_file is None:
            self._quit(Outcome(Exit.NICK_REFUSED, self.login.signin.refusal(error)))
            return
        try:
            password = read_password_file(self.login.password_file)
        except CredentialError as exc:
            self._quit(Outcome(Exit.USAGE, str(exc)))
            return
        self._act(self.session.offer_password(password))

    def _keep(self, token: str | None, expires: str) -> None:
        assert self.login is not None
        try:
            notice = self.login.keep(token, expires)
        except CredentialError as exc:
            notice = f"{exc}; signing in again will need the password"
        if notice:
            report(notice)

    def _print(self, line: str) -> None:
        data = line.encode("utf-8", "surrogateescape")
        if self._sanitize_output:
            data = sanitize(data.decode("utf-8", "replace")).encode("utf-8")
        try:
            self.stdout.write(data + b"\n")
            self.stdout.flush()
        except BrokenPipeError:
            # Whoever reads our output has gone (`| head`): stop printing, leave politely.
            # Python's recipe: point stdout at /dev/null so the exit-time flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
            self._quit(Outcome(Exit.OTHER))


def _nick_refused(nick: str, error: str) -> Outcome:
    code, _, text = error.partition(" ")
    if code == "nick_taken":
        why = "is taken"
    else:
        why = "was refused" + (f" ({sanitize(text)})" if text else "")
    return Outcome(Exit.NICK_REFUSED, f"the nickname {nick!r} {why}; choose another with --nick")
