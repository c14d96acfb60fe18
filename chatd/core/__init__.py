"""The chat core: registration, commands, rooms, nicknames and flood control.

Nothing here touches a socket, TLS or a thread of its own. A session talks to
its transport through the narrow `Outlet` protocol (chatd/outlet.py), and a
transport hands it lines; the TLS line transport (chatd.transport) and, later,
a WebSocket one plug into the same core.
"""
