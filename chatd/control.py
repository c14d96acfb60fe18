"""The control socket: operator requests over a Unix socket, one JSON line each way.

Request `{"cmd": "status" | "who" | "kick" | "broadcast" | "reload", ...}`,
reply `{"ok": true, "result": ...}` or `{"ok": false, "error": "<sentence>"}`,
then the server closes the connection. The socket is created with mode 0600
(bound under a temporary name, restricted, then renamed into place, so it is
never reachable with wider permissions), and every request's peer credentials
are checked: only the daemon's own user and root are served.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import stat
import struct
import threading
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 65536
REQUEST_TIMEOUT = 5.0


class Operator(Protocol):
    def status(self) -> dict[str, object]: ...
    def who(self) -> list[dict[str, object]]: ...
    def kick(self, nick: str, reason: str) -> bool: ...
    def broadcast(self, text: str) -> int: ...
    def reload(self) -> dict[str, object]: ...


class ControlServer:
    def __init__(self, path: Path, operator: Operator) -> None:
        self.path = path
        self._operator = operator
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="chatd-control", daemon=True)

    def start(self) -> None:
        """Bind the socket (mode 0600) and start serving.

        Raises:
            ValueError: the path exists and is not a socket (it is never removed).
            OSError: the socket cannot be created there.
        """
        if self.path.is_symlink() or (self.path.exists() and not stat.S_ISSOCK(self.path.stat().st_mode)):
            raise ValueError(f"{self.path} exists and is not a socket; remove it or choose another path")
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(temporary))
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)  # also replaces a stale socket of a dead daemon
            listener.listen(16)
        except OSError:
            listener.close()
            temporary.unlink(missing_ok=True)
            raise
        self._listener = listener
        self._thread.start()
        log.info("control_listening", socket=str(self.path))

    def stop(self) -> None:
        self._wake_w.send(b"\0")
        self._thread.join(timeout=REQUEST_TIMEOUT + 1)
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        self._listener.close()
                        return
                    try:
                        conn, _ = self._listener.accept()
                    except OSError as exc:
                        log.warning("control_accept_failed", error=str(exc))
                        continue
                    try:
                        with conn:
                            self._handle(conn)
                    except Exception:
                        # A bug in one request must not take the control socket down.
                        log.exception("control_crashed")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT)
        uid = _peer_uid(conn)
        if uid not in (os.geteuid(), 0):
            log.warning("control_refused", uid=uid)
            _reply(conn, {"ok": False, "error": "permission denied: not the daemon's user or root"})
            return
        try:
            request = json.loads(_read_line(conn))
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            reply = {"ok": True, "result": self._dispatch(request)}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("control_bad_request", error=str(exc))
            reply = {"ok": False, "error": str(exc)}
        except OSError as exc:  # the client went away or stalled
            log.info("control_request_failed", error=str(exc))
            return
        _reply(conn, reply)

    def _dispatch(self, request: dict[str, Any]) -> object:
        command = request.get("cmd")
        operator = self._operator
        if command == "status":
            return operator.status()
        if command == "who":
            return operator.who()
        if command == "kick":
            nick, reason = str(request["nick"]), str(request.get("reason") or "")
            found = operator.kick(nick, reason)
            log.info("operator_kick", nick=nick, reason=reason, found=found)
            if not found:
                raise ValueError(f"nobody is called {nick}")
            return {"kicked": nick}
        if command == "broadcast":
            text = str(request["text"])
            if not text.strip():
                raise ValueError("nothing to broadcast")
            recipients = operator.broadcast(text)
            log.info("operator_broadcast", recipients=recipients, size=len(text))
            return {"recipients": recipients}
        if command == "reload":
            result = operator.reload()
            log.info("operator_reload", ok=result.get("ok"))
            return result
        raise ValueError(f"unknown command {command!r} (status, who, kick, broadcast, reload)")


def _peer_uid(conn: socket.socket) -> int:
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"request larger than {MAX_REQUEST_BYTES} bytes")
    return data.split(b"\n", 1)[0]


def _reply(conn: socket.socket, reply: dict[str, object]) -> None:
    try:
        conn.sendall(json.dumps(reply).encode() + b"\n")
    except OSError as exc:
        log.info("control_reply_failed", error=str(exc))
