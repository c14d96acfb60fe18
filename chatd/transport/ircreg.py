"""IRC registration without I/O: capability negotiation (`CAP LS`, `REQ`,
`LIST`, `END`, IRCv3 capability-negotiation 3.2), the registration burst
(001-005 with ISUPPORT, then the MOTD), and what the listener says of
itself (`Settings`).

The codec (irc.py) reads NICK, USER and PASS into `IrcState` and asks
`ready` whether to hand the nickname to its chat session; the session's
`WELCOME` comes back as `welcome(...)`. What is not here: the nickname's
rules and whether it is free (the chat core decides: chatd/core/session.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chatd.transport import ircmessage
from chatd.transport.ircmessage import Message
from chatd.transport.ircstate import CAPS, IrcState

_TOKENS_PER_LINE: Final = 12  # ISUPPORT tokens per 005 (at most 13 fit in 15 parameters)


@dataclass(frozen=True)
class Settings:
    """What the IRC listener says of itself (from `irc.*` and the server's config)."""

    server: str  # irc.server_name: the source of server lines
    network: str  # server.name
    version: str
    created: str  # when the daemon started, for RPL_CREATED
    nick_length: int
    rooms_per_client: int
    backlog: int  # irc.backlog: events replayed on join (as PRIVMSGs with server-time)
    history_page: int = 100  # CHATHISTORY's largest answer
    # SASL mechanisms (PLAIN with accounts, EXTERNAL with tls.nick_from_cert);
    # none: no `sasl` capability.
    sasl: tuple[str, ...] = ()
    # Whether clients can be proven (accounts, or certificates' names): then
    # `account-tag` and `account-notify` are offered, and `sasl` if it has mechanisms.
    accounts: bool = False

    @property
    def caps(self) -> tuple[str, ...]:
        """The capabilities offered."""
        extra = ("account-notify", "account-tag") if self.accounts else ()
        return tuple(sorted((*CAPS, *extra, *(("sasl",) if self.sasl else ()))))

    def cap_ls(self, version: int) -> str:
        """`CAP LS`'s list; from 302 on, with values (`sasl=PLAIN,EXTERNAL`)."""
        if version < 302 or not self.sasl:
            return " ".join(self.caps)
        return " ".join(f"sasl={','.join(self.sasl)}" if cap == "sasl" else cap for cap in self.caps)

    def isupport(self) -> list[str]:
        return [
            "AWAYLEN=200",
            "CASEMAPPING=ascii",
            f"CHANLIMIT=#:{self.rooms_per_client}",
            "CHANMODES=b,,,Rmnst",  # bans; the flags of a registered room (ircout.FLAG_MODES)
            "CHANNELLEN=33",
            "CHANTYPES=#",
            f"CHATHISTORY={self.history_page}",
            "MSGREFTYPES=msgid",
            f"NETWORK={self.network}",
            f"NICKLEN={self.nick_length}",
            "PREFIX=(ov)@+",
            "TARGMAX=JOIN:,PART:,PRIVMSG:4,NOTICE:4,TAGMSG:4,WHOIS:1,ISON:,USERHOST:5",
            "TOPICLEN=390",
            "UTF8ONLY",
        ]

    def motd(self) -> list[str]:
        return [
            f"{self.server} is a chatd server ({self.version}).",
            "Its rooms are shared with chatd's terminal and web clients.",
        ]


def welcome(state: IrcState, settings: Settings) -> list[bytes]:
    """RPL_WELCOME to RPL_ISUPPORT, then the MOTD: what a client sees on registering."""
    nick, server = state.nick, settings.server
    lines = [
        state.numeric("001", f"Welcome to the {settings.network} IRC network, {nick}!{state.user}@irc"),
        state.numeric("002", f"Your host is {server}, running version {settings.version}"),
        state.numeric("003", f"This server was created {settings.created}"),
        ircmessage.line(server, "004", nick, server, settings.version, "i", "nov", "ov"),
    ]
    tokens = settings.isupport()
    for start in range(0, len(tokens), _TOKENS_PER_LINE):
        lines.append(state.numeric("005", *tokens[start : start + _TOKENS_PER_LINE], "are supported by this server"))
    return lines + motd(state, settings)


def motd(state: IrcState, settings: Settings) -> list[bytes]:
    return [
        state.numeric("375", f"- {settings.server} Message of the day -"),
        *(state.numeric("372", f"- {text}") for text in settings.motd()),
        state.numeric("376", "End of /MOTD command."),
    ]


def cap(state: IrcState, message: Message, settings: Settings) -> list[bytes]:
    """Answer a CAP command; before registration, `LS` and `REQ` hold the
    registration back until `CAP END` (`state.negotiating`)."""
    sub = message.text(0).upper()
    server, shown = settings.server, state.shown
    if not sub:
        return [state.numeric("461", "CAP", "Not enough parameters")]
    if sub == "LS":
        if not state.registered:
            state.negotiating = True
        version = message.text(1)
        if version.isdigit() and int(version) >= 302:
            state.cap_version = 302
            state.caps.add("cap-notify")  # implied by 302 (capability-negotiation, "cap-notify")
            state.set_caps(state.caps)
        return [ircmessage.line(server, "CAP", shown, "LS", settings.cap_ls(state.cap_version))]
    if sub == "LIST":
        return [ircmessage.line(server, "CAP", shown, "LIST", " ".join(sorted(state.caps)))]
    if sub == "REQ":
        if not state.registered:
            state.negotiating = True
        asked = message.text(1)
        return [ircmessage.line(server, "CAP", shown, _request(state, asked, settings), asked)]
    if sub == "END":
        state.negotiating = False
        return []
    return [state.numeric("410", message.text(0), "Invalid CAP command")]


def _request(state: IrcState, asked: str, settings: Settings) -> str:
    """ACK (and apply) or NAK a `CAP REQ`: the whole list, or none of it."""
    caps = set(state.caps)
    for word in asked.split():
        name = word.removeprefix("-")
        if name not in settings.caps:
            return "NAK"
        if word.startswith("-"):
            caps.discard(name)
        else:
            caps.add(name)
    state.set_caps(caps)
    return "ACK"
