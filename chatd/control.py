"""The control socket: operator requests over a Unix socket, one JSON line each way.

Request `{"cmd": "status" | "who" | "kick" | "broadcast" | "reload", ...}`,
reply `{"ok": true, "result": ...}` or `{"ok": false, "error": "<sentence>"}`,
then the server closes the connection. The socket is created with mode 0600
(bound under a temporary name, restricted, then renamed into place, so it is
never reachable with wider permissions), and every request's peer credentials
are checked: only the daemon's own user and root are served.

One `chatd-control` thread serves requests one at a time, each within
`REQUEST_TIMEOUT` seconds in all: only root and the daemon's user can connect,
so there is no crowd to serve, and a stalled client is cut off at the deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 65536
REQUEST_TIMEOUT = 5.0
_UCRED = struct.Struct("3i")  # struct ucred, as SO_PEERCRED returns it: pid, uid, gid
# Per command, the fields it takes and whether each is required.
_FIELDS: dict[str, dict[str, bool]] = {
    "status": {}, "who": {}, "rooms": {}, "kick": {"nick": True, "reason": False},
    "broadcast": {"text": True}, "reload": {},
}


class Operator(Protocol):
    """What the control socket asks of the daemon; chatd.server.Server provides it.

    - status(): uptime_s, version, clients, messages_in, messages_out, tls_handshake_failures, ...
    - who(): per client: nick, peer, connected_since (ISO 8601, UTC), idle_s.
    - rooms(): per room: room, members (nicks), topic.
    - kick(nick, reason): `BYE kicked <reason>` to `nick`; False when nobody has that nick.
    - broadcast(text): `INFO <text>` to everyone; returns the number of recipients.
    - reload(): re-read the config: {"ok": bool, "error": str | None, "restart_needed": [keys]}.
    """

    def status(self) -> dict[str, object]: ...
    def who(self) -> list[dict[str, object]]: ...
    def rooms(self) -> list[dict[str, object]]: ...
    def kick(self, nick: str, reason: str) -> bool: ...
    def broadcast(self, text: str) -> int: ...
    def reload(self) -> dict[str, object]: ...


class BadRequest(Exception):
    """A request that is not one of the documented ones; the text is for the operator."""


class ControlServer:
    def __init__(self, path: Path, operator: Operator) -> None:
        self.path = path
        self._operator = operator
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._thread: threading.Thread | None = None
        self._wake: socket.socket | None = None  # the sending end of the thread's wake-up pair

    def start(self) -> None:
        """Bind the socket (mode 0600) and start serving.

        Raises:
            ValueError: the path is not a socket (it is never removed), or is in use.
            OSError: the socket cannot be created there.
        """
        _check_replaceable(self.path)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(temporary))
            os.chmod(temporary, 0o600)
            info = os.lstat(temporary)
            os.replace(temporary, self.path)  # also replaces a stale socket of a dead daemon
            listener.listen(16)
        except OSError:
            listener.close()
            temporary.unlink(missing_ok=True)
            raise
        self._identity = (info.st_dev, info.st_ino)
        wake, self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, args=(listener, wake), name="chatd-control")
        self._thread.daemon = True  # stop() joins it with a deadline; it never holds up exit
        self._thread.start()
        log.info("control_listening", socket=str(self.path))

    def stop(self) -> None:
        """Stop serving (waiting for a request in progress) and remove the socket file."""
        if self._thread and self._wake:
            self._wake.send(b"\0")
            self._thread.join(timeout=REQUEST_TIMEOUT + 1)
            if self._thread.is_alive():
                log.warning("control_still_running", socket=str(self.path))
            else:
                self._wake.close()
                self._wake = None
        # NOTE: only our own socket file: after a restart, a newer daemon may already own the name.
        with contextlib.suppress(FileNotFoundError):
            info = self.path.lstat()
            if (info.st_dev, info.st_ino) == self._identity:
                self.path.unlink()

    def _serve(self, listener: socket.socket, wake: socket.socket) -> None:
        with listener, wake, selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is wake:
                        return
                    try:
                        conn, _ = listener.accept()
                    except OSError as exc:  # e.g. EMFILE: pause instead of spinning on it
                        log.warning("control_accept_failed", error=str(exc))
                        selector.select(timeout=0.5)
                        continue
                    with conn:
                        try:
                            self._handle(conn)
                        except Exception:
                            # The thread's top: a bug (chatd's or an operator action's) is logged
                            # and answered; the control socket and the daemon keep running.
                            log.exception("control_crashed")
                            error = "internal error in chatd (its log says control_crashed)"
                            _reply(conn, {"ok": False, "error": error}, time.monotonic() + 1)

    def _handle(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + REQUEST_TIMEOUT
        pid, uid, _gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid not in (os.geteuid(), 0):
            # Read the request anyway: closing before the client has sent it would turn
            # this answer into EPIPE on the client's side.
            with contextlib.suppress(BadRequest, OSError):
                _read_line(conn, deadline)
            log.warning("control_refused", uid=uid, pid=pid)
            error = "permission denied: not the daemon's user or root"
            _reply(conn, {"ok": False, "error": error}, deadline)
            return
        try:
            command, fields = _parse(_read_line(conn, deadline))
        except BadRequest as exc:
            log.warning("control_bad_request", error=str(exc), uid=uid, pid=pid)
            _reply(conn, {"ok": False, "error": str(exc)}, deadline)
            return
        except OSError as exc:  # the client went away, or stalled past the deadline
            log.info("control_request_failed", error=str(exc) or type(exc).__name__, uid=uid, pid=pid)
            return
        _reply(conn, self._perform(command, fields), deadline)

    def _perform(self, command: str, fields: dict[str, str]) -> dict[str, object]:
        operator = self._operator
        if command in ("status", "who", "rooms"):
            log.debug(f"operator_{command}")
            query = {"status": operator.status, "who": operator.who, "rooms": operator.rooms}[command]
            return {"ok": True, "result": query()}
        if command == "kick":
            nick, reason = fields["nick"], fields["reason"]
            found = operator.kick(nick, reason)
            log.info("operator_kick", nick=nick, reason=reason, found=found)
            if not found:
                return {"ok": False, "error": f"nobody is called {nick}"}
            return {"ok": True, "result": {"kicked": nick}}
        if command == "broadcast":
            text = fields["text"]
            recipients = operator.broadcast(text)
            log.info("operator_broadcast", recipients=recipients, size=len(text.encode()))
            return {"ok": True, "result": {"recipients": recipients}}
        result = operator.reload()
        log.info("operator_reload", ok=result.get("ok"), restart_needed=result.get("restart_needed"))
        return {"ok": True, "result": result}


def _check_replaceable(path: Path) -> None:
    """Refuse a path that is not a socket, or a socket someone is listening on."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ValueError(f"{path} exists and is not a socket; remove it or choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return  # nobody listens: a socket left behind by a daemon that died
    raise ValueError(f"{path} is in use by a running process (another chatd?); stop it or choose another path")


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")  # what recv() says when its timeout expires
        conn.settimeout(remaining)
        if not (chunk := conn.recv(65536)):
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES and b"\n" not in data[: MAX_REQUEST_BYTES + 1]:
            raise BadRequest(f"request larger than {MAX_REQUEST_BYTES} bytes")
    return data.split(b"\n", 1)[0]


def _parse(line: bytes) -> tuple[str, dict[str, str]]:
    """The command and its string fields (absent optional ones as ""), or BadRequest."""
    if not line.strip():
        raise BadRequest('empty request; send one JSON object on one line, e.g. {"cmd": "status"}')
    try:
        request = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise BadRequest(f"the request is not valid JSON ({exc})") from None
    if not isinstance(request, dict):
        raise BadRequest('a request is a JSON object, e.g. {"cmd": "status"}')
    command = request.get("cmd")
    if not isinstance(command, str) or command not in _FIELDS:
        raise BadRequest(f"unknown command {command!r} (known: {', '.join(_FIELDS)})")
    known = _FIELDS[command]
    if unknown := [name for name in request if name != "cmd" and name not in known]:
        raise BadRequest(f"{command} takes no field {unknown[0]!r} (it takes: {', '.join(known) or 'none'})")
    fields: dict[str, str] = {}
    for name, required in known.items():
        value = request.get(name)
        if value is None and not required:
            value = ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise BadRequest(f"{command} needs {name!r}, a non-empty string")
        fields[name] = value
    return command, fields


def _reply(conn: socket.socket, reply: dict[str, object], deadline: float) -> None:
    data = json.dumps(reply).encode() + b"\n"  # TypeError here is a bug: the caller logs it
    try:
        conn.settimeout(max(deadline - time.monotonic(), 0.1))
        conn.sendall(data)
    except OSError as exc:
        log.info("control_reply_failed", error=str(exc) or type(exc).__name__)
