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
    session.py     one client: its state, its rooms, strikes; driven by the transport
    dispatch.py    a line's way to its command: flood.py's verdict, held lines,
                   the row of commands.py that runs it (functions of the session)
    registering.py a session's way to its nickname (functions of the session)
    flood.py       flood control: token bucket, held lines, the flood window
    chat.py        what sessions share, and what reaches several clients
    room_lines.py  the lines that show a client a room (TOPIC, ROLES, FLAGS, ...)
    rooms.py, nicks.py, identities.py
                   rooms, the nickname registry, certificate identities
    history.py     events, their ids and times; the EventStore and Lookups ports
"""
