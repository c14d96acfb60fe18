"""Room roles as `chatctl connect` shows them (docs/protocol.md "Room roles"):
the lines of a registered room (`REGISTERED`, `ROLES`, `ROLE`, `FLAGS`,
`FLAG`, `KICK`, `INVITE`, `BAN`, `BANS`) as fragments, and the marks people
know from IRC before a nickname: `@` for an op or the owner, `+` for a voice.

Pure functions, as chatctl/render.py (which calls `render_moderation` for
these verbs, and has already sanitised the line); the state they read is
chatctl/state.py's.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from chatctl.state import same_nick

Fragments: TypeAlias = list[tuple[str, str]]

MARKS: Final[dict[str, str]] = {"owner": "@", "op": "@", "voice": "+"}
_KICK_WORDS: Final[dict[str, str]] = {"kicked": "kicked", "banned": "banned"}
_FLAG_WORDS: Final[dict[str, str]] = {
    "topic_ops": "only ops set the topic",
    "private": "invite-only and hidden",
    "moderated": "only voiced members speak",
    "accounts_only": "no guests",
}


def mark(role: str) -> str:
    """`@`, `+` or "" for a role."""
    return MARKS.get(role, "")


def render_moderation(verb: str, room: str, rest: str, own: str) -> Fragments | None:
    """One of these lines after its room (`rest`), or None if malformed."""
    args = rest.split(" ")
    if verb == "ROLES":
        held = [item.rpartition(":") for item in args if ":" in item]
        if not held:
            return [("class:event", f"-- nobody holds a role in {room}")]
        fragments: Fragments = [("class:event", f"-- roles in {room}: ")]
        for index, (nick, _, role) in enumerate(held):
            fragments += [("class:event", ", ")] if index else []
            fragments += [(_style(nick, own), mark(role) + nick), ("class:event", f" ({role})")]
        return fragments
    if verb == "ROLE" and len(args) == 3:
        nick, role, by = args
        return [*_who(nick, own), ("class:event", f" is {_role_words(role)} of {room}"), *_by(by, own)]
    if verb == "FLAGS":
        flags = [flag for flag in args if flag]
        return [("class:event", f"-- {room}: " + ("; ".join(_flag_words(f) for f in flags) if flags else "no flags"))]
    if verb == "FLAG" and len(args) == 3 and args[1] in ("on", "off"):
        flag, value, by = args
        words = _flag_words(flag) if value == "on" else f"{flag} is off"
        return [("class:event", f"-- {room}: {words}"), *_by(by, own)]
    if verb == "KICK" and len(args) >= 3:
        nick, by, reason = args[0], args[1], " ".join(args[2:])
        code, _, text = reason.partition(" ")
        done = _KICK_WORDS.get(code, f"removed ({code})") if code else "removed"
        said = [("class:event", f": {text}")] if text else []
        if own and same_nick(nick, own):
            return [("class:bye", f"-- you were {done} from {room}"), *_by(by, own), *said]
        return [*_who(nick, own), ("class:event", f" was {done} from {room}"), *_by(by, own), *said]
    if verb == "INVITE" and len(args) == 2:
        nick, by = args
        if own and same_nick(nick, own):
            return [("class:info", f"-!- {by} invites you to {room}: /join {room} (within 24 hours)")]
        return [*_who(nick, own), ("class:event", f" may join {room} once (invited)"), *_by(by, own)]
    if verb == "BAN" and len(args) >= 3:
        mask, by, when = args[0], args[1], args[2]
        reason = " ".join(args[3:])
        return [("class:event", f"-- {room} bans {mask} (by {by} since {when})" + (f": {reason}" if reason else ""))]
    if verb == "BANS" and len(args) == 1:
        count = args[0]
        return [("class:event", f"-- {count} ban" + ("" if count == "1" else "s") + f" in {room}")]
    if verb == "REGISTERED" and len(args) == 1:
        if args[0] == "*":
            return [("class:event", f"-- {room} is no longer registered: no roles, no flags")]
        return [("class:event", f"-- {room} is registered to "), (_style(args[0], own), args[0])]
    return None


def _role_words(role: str) -> str:
    return {"owner": "the owner", "op": "an op", "voice": "a voice"}.get(role, "a member")


def _flag_words(flag: str) -> str:
    words = _FLAG_WORDS.get(flag)
    return f"{flag} ({words})" if words else flag


def _who(nick: str, own: str) -> Fragments:
    if own and same_nick(nick, own):
        return [("class:event", "-- "), ("class:own", "you")]
    return [("class:event", "-- "), ("class:event", nick)]


def _by(by: str, own: str) -> Fragments:
    if by == "*":
        return [("class:event", " (by the server)")]  # its operator, or a role taken on joining
    return [("class:event", " (by "), (_style(by, own), by), ("class:event", ")")]


def _style(nick: str, own: str) -> str:
    return "class:own" if own and same_nick(nick, own) else "class:event"
