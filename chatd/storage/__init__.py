"""What implements the chat core's ports (chatd/core/history.py): the event
stores (`EventStore`; sqlite.py) and the thread that asks them for the core
(`Lookups`; lookups.py)."""
