"""Stores for the chat core's history (chatd.core.history.EventStore)."""
