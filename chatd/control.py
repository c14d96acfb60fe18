"""The control socket: operator requests over a Unix socket, one JSON line each way.

Request `{"cmd": "status" | "who" | "kick" | "broadcast" | "reload", ...}`,
reply `{"ok": true, "result": ...}` or `{"ok": false, "error": "<sentence>"}`,
then the server closes the connection.

Accounts (with `accounts.enabled`; chatd/account_operations.py does them).
Fields are strings unless marked (int); a change is answered once it is on
disk. Times in replies are ISO 8601, UTC; absent ones null.

- `user_add {name, password_hash}`: `password_hash` is an argon2id hash string
  (chatctl hashes the password: the plaintext never crosses the socket). A
  deleted account's name may be given out again. Result: an account,
  `{name, created, disabled, reason, deleted}`.
- `user_passwd {name, password_hash}`: revokes every token and closes the
  account's connection (`BYE kicked`). Result `{name, tokens_revoked}`.
- `user_disable {name, reason?}` (closes its connection, `BYE banned
  <reason>`), `user_enable {name}`, `user_delete {name}` (tokens revoked,
  connection closed, name kept reserved): result, the account.
- `user_list {}`: every account not deleted.
- `user_sessions {name}`: `{connection: {nick, peer, since, method, token} |
  null, tokens: [{id, created, expires, last_used}]}`; `id` is the first 12
  hex digits of the token's SHA-256, never the token.
- `user_revoke {name, token?}`: revokes the tokens whose id starts with
  `token` (at least 8 characters), or all; the connection that signed in
  with one is closed (`BYE kicked`). Result `{revoked}`.
- `invite_create {uses? (int, default 1), expires_s? (int, seconds; none:
  never), note?}`: result `{code, id, uses_left, used, created, expires,
  note}`; `code` is shown this once (only its SHA-256 is kept).
- `invite_list {}`, `invite_revoke {id (int)}`: invites without their codes.
- `ban_add {network, for_s? (int, seconds; none: until removed), reason?}`:
  an address or a CIDR network; closes the connections it covers
  (`BYE banned`). Result `{network, reason, created, expires, closed}`.
- `ban_list {}`, `ban_remove {network}` (exactly as listed).

Registered rooms (with `accounts.enabled`; chatd/room_operations.py does
them). `room` is a room name, `name` an account's; the operator is above
every role. A room is `{room, owner, flags, members, created, topic, roles:
[{name, role}], bans: [{mask, reason, by, set}]}`.

- `room_list {}`: `[{room, owner, flags, members}]`.
- `room_show {room}`, `room_roles {room}` (`[{name, role}]`), `room_bans
  {room}` (`[{mask, reason, by, set}]`).
- `room_owner {room, name}`: registers the room to that account (any room,
  a permanent one too), or hands it over (the owner before becomes an op).
- `room_role {room, name, role}`: `owner`, `op`, `voice` or `member`.
- `room_flag {room, flag, value}`: `topic_ops`, `private`, `moderated`,
  `accounts_only`; `on` or `off`.
- `room_ban {room, mask, reason?}` (removes the members it covers: result
  `{mask, reason, by, set, removed}`), `room_unban {room, mask}`.
- `room_drop {room}`: no longer registered.

The socket is created with mode 0600
(bound under a temporary name, restricted, then renamed into place, so it is
never reachable with wider permissions), and every request's peer credentials
are checked: only the daemon's own user and root are served.

A request that is not one of the documented ones is answered with a sentence
saying what is wrong, and costs nothing else: not JSON, not valid UTF-8, text
with a lone surrogate (`"\\ud800"`, which JSON allows and no line can carry),
nested too deeply, larger than `MAX_REQUEST_BYTES`, an unknown command or
field. The operator's action runs only on a request that passed all of that.

One `chatd-control` thread serves up to `MAX_CONNECTIONS` connections at once
through a selector (chatd/oneshot.py), each with its own deadlines fixed at
accept (`REQUEST_TIMEOUT` to send the request, `EXCHANGE_TIMEOUT` until the
reply has left), so a stalled or silent client delays nobody: it is cut off
at its deadline, or sooner if newer connections need its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from chatd.oneshot import Limits, OneShotServer

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES: Final = 65536
REQUEST_TIMEOUT: Final = 5.0
EXCHANGE_TIMEOUT: Final = 10.0
MAX_CONNECTIONS: Final = 8
_UCRED = struct.Struct("3i")  # struct ucred, as SO_PEERCRED returns it: pid, uid, gid
# Per command, the fields it takes and whether each is required.
_FIELDS: dict[str, dict[str, bool]] = {
    "status": {},
    "who": {},
    "rooms": {},
    "kick": {"nick": True, "reason": False},
    "broadcast": {"text": True},
    "reload": {},
}
# The account commands (chatd/account_operations.py): per field, its type and
# whether it is required.
ACCOUNT_FIELDS: dict[str, dict[str, tuple[type, bool]]] = {
    "user_add": {"name": (str, True), "password_hash": (str, True)},
    "user_passwd": {"name": (str, True), "password_hash": (str, True)},
    "user_disable": {"name": (str, True), "reason": (str, False)},
    "user_enable": {"name": (str, True)},
    "user_delete": {"name": (str, True)},
    "user_list": {},
    "user_sessions": {"name": (str, True)},
    "user_revoke": {"name": (str, True), "token": (str, False)},
    "invite_create": {"uses": (int, False), "expires_s": (int, False), "note": (str, False)},
    "invite_list": {},
    "invite_revoke": {"id": (int, True)},
    "ban_add": {"network": (str, True), "for_s": (int, False), "reason": (str, False)},
    "ban_list": {},
    "ban_remove": {"network": (str, True)},
}
# The room commands (chatd/room_operations.py), typed as the account commands are.
ROOM_FIELDS: dict[str, dict[str, tuple[type, bool]]] = {
    "room_list": {},
    "room_show": {"room": (str, True)},
    "room_owner": {"room": (str, True), "name": (str, True)},
    "room_roles": {"room": (str, True)},
    "room_role": {"room": (str, True), "name": (str, True), "role": (str, True)},
    "room_flag": {"room": (str, True), "flag": (str, True), "value": (str, True)},
    "room_ban": {"room": (str, True), "mask": (str, True), "reason": (str, False)},
    "room_unban": {"room": (str, True), "mask": (str, True)},
    "room_bans": {"room": (str, True)},
    "room_drop": {"room": (str, True)},
}
_TYPED_FIELDS = {**ACCOUNT_FIELDS, **ROOM_FIELDS}


class Operator(Protocol):
    """What the control socket asks of the daemon; chatd.operations.Operations provides it.

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


class AccountOperator(Protocol):
    """The account commands (chatd.account_operations.AccountOperations)."""

    def perform(self, command: str, fields: dict[str, object]) -> object:
        """The command's result; raises an exception with `refusal = True`
        (OperatorError) whose text is the operator's answer."""


class BadRequest(Exception):
    """A request that is not one of the documented ones; the text is for the operator."""


class ControlServer:
    def __init__(
        self,
        path: Path,
        operator: Operator,
        accounts: AccountOperator | None = None,
        rooms: AccountOperator | None = None,
    ) -> None:
        """`accounts`, `rooms`: the account and room commands (None: no accounts)."""
        self.path = path
        self._operator = operator
        self._accounts = accounts
        self._rooms = rooms
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._server: OneShotServer | None = None

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
            listener.setblocking(False)
        except OSError:
            listener.close()
            temporary.unlink(missing_ok=True)
            raise
        self._identity = (info.st_dev, info.st_ino)
        limits = Limits(
            max_connections=MAX_CONNECTIONS,
            request_timeout=REQUEST_TIMEOUT,
            exchange_timeout=EXCHANGE_TIMEOUT,
            max_request_bytes=MAX_REQUEST_BYTES,
        )
        self._server = OneShotServer("control", listener, self._respond, limits)
        self._server.start()
        log.info("control_listening", socket=str(self.path))

    def stop(self) -> None:
        """Stop serving and remove the socket file."""
        if self._server is not None and self._server.stop():
            self._server = None
        # NOTE: only our own socket file: after a restart, a newer daemon may already own the name.
        with contextlib.suppress(FileNotFoundError):
            info = self.path.lstat()
            if (info.st_dev, info.st_ino) == self._identity:
                self.path.unlink()

    def _respond(self, conn: socket.socket, received: bytes, ended: bool) -> bytes | None:
        """The reply once `received` holds a whole request: a line, or all there is at EOF."""
        if not received or (b"\n" not in received and not ended):
            return None  # more to come, or a client that hung up without asking
        pid, uid, _gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid not in (os.geteuid(), 0):
            log.warning("control_refused", uid=uid, pid=pid)
            return _encode({"ok": False, "error": "permission denied: not the daemon's user or root"})
        try:
            line = _request_line(received)
            command, fields = _parse_account(line, self._accounts is not None) or _parse(line)
        except BadRequest as exc:
            log.warning("control_bad_request", error=str(exc), uid=uid, pid=pid)
            return _encode({"ok": False, "error": str(exc)})
        try:
            return _encode(self._perform(command, fields))
        except Exception:
            # One request's piece of work: a bug (chatd's or an operator action's) is
            # logged and answered; the control socket and the daemon keep running.
            log.exception("control_crashed", command=command)
            return _encode({"ok": False, "error": "internal error in chatd (its log says control_crashed)"})

    def _perform(self, command: str, fields: dict[str, Any]) -> dict[str, object]:
        if command in ACCOUNT_FIELDS:
            assert self._accounts is not None
            return self._perform_account(self._accounts, command, fields)
        if command in ROOM_FIELDS:
            assert self._rooms is not None
            return self._perform_account(self._rooms, command, fields)
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

    @staticmethod
    def _perform_account(performer: AccountOperator, command: str, fields: dict[str, object]) -> dict[str, object]:
        try:
            result = performer.perform(command, fields)
        except Exception as exc:
            if not getattr(exc, "refusal", False):
                raise
            log.info("operator_refused", command=command, error=str(exc))
            return {"ok": False, "error": str(exc)}
        log.info(f"operator_{command}")
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


def _request_line(received: bytes) -> bytes:
    """Up to the first newline, or all of it when the client ended without one."""
    end = received.find(b"\n")
    if end < 0 and len(received) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request larger than {MAX_REQUEST_BYTES} bytes")
    return received if end < 0 else received[:end]


def _parse_account(line: bytes, enabled: bool) -> tuple[str, dict[str, Any]] | None:
    """An account command with its typed fields (absent optional ones as ""
    or 0), or None when the request is not one (`_parse` then reads it)."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return None  # `_parse` says what is wrong
    command = request.get("cmd") if isinstance(request, dict) else None
    if not isinstance(command, str) or command not in _TYPED_FIELDS:
        return None
    if not enabled:
        raise BadRequest(f"{command}: this server has no accounts; set accounts.enabled: true and restart")
    known = _TYPED_FIELDS[command]
    if unknown := [name for name in request if name != "cmd" and name not in known]:
        raise BadRequest(f"{command} takes no field {unknown[0]!r} (it takes: {', '.join(known) or 'none'})")
    fields: dict[str, Any] = {}
    for name, (kind, required) in known.items():
        value = request.get(name)
        if value is None and not required:
            value = kind()
        if kind is int and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 40):
            raise BadRequest(f"{command} needs {name!r}, a whole number 0 or more")
        if kind is str and (not isinstance(value, str) or (required and not value.strip()) or not _is_unicode(value)):
            raise BadRequest(f"{command} needs {name!r}, a non-empty string of valid Unicode")
        fields[name] = value
    return command, fields


def _parse(line: bytes) -> tuple[str, dict[str, str]]:
    """The command and its string fields (absent optional ones as ""), or BadRequest."""
    if not line.strip():
        raise BadRequest('empty request; send one JSON object on one line, e.g. {"cmd": "status"}')
    try:
        request = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise BadRequest(f"the request is not valid JSON ({exc})") from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise BadRequest(
            'the request is nested too deeply; send one flat JSON object, e.g. {"cmd": "status"}'
        ) from None
    if not isinstance(request, dict):
        raise BadRequest('a request is a JSON object, e.g. {"cmd": "status"}')
    if not all(_is_unicode(text) for item in request.items() for text in item if isinstance(text, str)):
        # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 line (a
        # kick's BYE, a broadcast's INFO, a log event) can carry.
        raise BadRequest("text fields must be valid Unicode without lone surrogates")
    command = request.get("cmd")
    if not isinstance(command, str) or command not in _FIELDS:
        raise BadRequest(
            f"unknown command {command!r} (known: {', '.join(_FIELDS)}) (with accounts: {', '.join(_TYPED_FIELDS)})"
        )
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


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encode(reply: dict[str, object]) -> bytes:
    return json.dumps(reply).encode() + b"\n"  # TypeError here is a bug: the caller logs it
