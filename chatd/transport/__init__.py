"""The transport: accepted sockets, TLS through memory BIOs, lines in and out.

Nothing here knows about rooms, nicknames or commands: an endpoint turns bytes
into lines for its session (chatd.core) and queues the bytes the core
delivers. Each endpoint is driven by exactly one I/O worker thread.
"""
