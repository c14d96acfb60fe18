"""The chat core: sessions, commands, rooms, nicknames, flood control and
history, sans-I/O.

Nothing here touches a socket, TLS or a file, or starts a thread: a session
talks to its transport through the narrow `Outlet` protocol (chatd/outlet.py)
and is handed lines; it reads time from the clock `Chat` is given. What may
block lives behind the core's ports, implemented outside it: `EventStore`
(chatd/storage/sqlite.py) and `Lookups` (chatd/storage/lookups.py), both in
history.py. The TLS line transport and the WebSocket one (chatd/transport/)
drive the same core.

    protocol.py    the line protocol: parsing (its GRAMMAR of slash commands),
                   formatting, ERR codes
    commands.py    the command table: verb -> handler, usable before
                   registration, speaks in a room
    session.py     one client: registration, strikes; asks flood.py, runs commands.py
    flood.py       flood control: token bucket, held lines, the flood window
    chat.py        what sessions share, and what reaches several clients
    rooms.py, nicks.py, identities.py
                   rooms, the nickname registry, certificate identities
    history.py     events, their ids and times; the EventStore and Lookups ports
"""
