"""Metrics: chatd's figures in the Prometheus text format.

`ChatdCollector` is a custom prometheus_client collector: at each scrape it
takes one `Snapshot` (chatd/stats.py) and turns it into metric families.
Nothing here runs on the message path and nothing in the chat core or the
transport imports prometheus_client: the daemon counts with plain integers
where things happen, and this module reads them when asked. The registry also
holds prometheus_client's process and garbage-collector collectors (CPU,
memory, descriptors). chatd/metrics_http.py serves `render()` over HTTP.

Names follow Prometheus practice: the `chatd_` prefix, the unit in the name,
`_total` for counters. docs/operations.md lists them all.
"""

from __future__ import annotations

import platform
import re
import ssl
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from chatd import __version__
from chatd.stats import AccountFigures, Snapshot

# The classic text format, what generate_latest() writes, whatever the library's
# newer default content type is.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Samples = Mapping[tuple[str, ...], float]  # label values -> value
# What a stats source's keys may be: the tail of a metric name.
_KEY = re.compile(r"[a-z][a-z0-9_]*")
# HELP texts for the figures a source is known to report; others get a generic one.
SOURCE_HELP: Mapping[str, Mapping[str, str]] = {
    "history": {
        "rows_written_total": "Events written to the history store.",
        "write_failures_total": "Attempts to write to the history store that failed (they are retried).",
        "dropped_total": "Events lost because the history store's write queue was full.",
        "waiting_events": "Events appended to the history store and not written yet.",
        "write_lag_seconds": "How long the oldest event not written yet has waited.",
    },
    # A node of a cluster (chatd/cluster/node.py's `stats`; docs/operations.md, "Cluster").
    "cluster": {
        "serving": "1 while this node serves; 0 while it starts, is fenced or must be reseeded.",
        "appends_total": "Operations sent to Redis (each line said, join, part, nickname, ...).",
        "append_batches_total": "Writes to Redis that carried them (one round trip each).",
        "append_seconds_total": "Seconds from each batch's write to its last reply, summed.",
        "writer_waiting": "Operations waiting to be sent to Redis.",
        "refusals_total": "Operations a cluster script refused (nickname taken, node fenced, ...).",
        "applied_entries_total": "Entries of the shared log this node has applied.",
        "reader_position": "The id of the last entry of the shared log this node has applied.",
        "reader_lag_ids": "Ids handed out by Redis that this node has not applied yet, as of its last heartbeat.",
        "reader_lag_seconds": "How long this node has been behind a head of the log it saw.",
        "lease_failures_total": "Heartbeats to Redis that failed (unreachable, or no reply in time).",
        "fenced_total": "Times this node fenced itself (lease lost): its clients were told BYE shutdown.",
        "reaped_nodes_total": "Dead nodes (lease run out) whose nicknames this node freed.",
        "reaped_nicks_total": "Nicknames of dead nodes this node freed.",
        "redis_up": "1 while this node's writer and reader are connected to Redis.",
    },
}


class ChatdCollector:
    """Reads chatd's counters at each scrape; see chatd/stats.py for where each is counted."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing to check at registration; collect() is called per scrape only

    def collect(self) -> Iterable[Metric]:
        s = self._snapshot()
        yield _gauge(
            "chatd_build_info",
            "chatd's version and the Python and OpenSSL it runs on (always 1).",
            {(__version__, platform.python_version(), ssl.OPENSSL_VERSION): 1},
            ("version", "python", "openssl"),
        )
        yield _gauge(
            "chatd_clients",
            "Connections by state: handshaking (TLS), registering (no nickname yet), registered, closing.",
            _by(s.clients),
            ("state",),
        )
        yield _counter(
            "chatd_connections_accepted_total", "Connections accepted past the admission limits.", s.accepted
        )
        yield _counter(
            "chatd_connections_refused_total",
            "Connections refused by an admission limit, by the ERR code the client is sent.",
            _by(s.refused),
            ("reason",),
        )
        yield _counter(
            "chatd_disconnects_total",
            "Connections ended, by the reason in the disconnect "
            "event (the protocol's BYE reason codes and a few internal ones).",
            _by(s.disconnects),
            ("reason",),
        )
        yield _counter(
            "chatd_tls_handshake_failures_total", "TLS handshakes that failed or timed out.", s.tls_handshake_failures
        )
        yield _counter("chatd_lines_received_total", "Lines received from clients (commands too).", s.lines_received)
        yield _counter("chatd_lines_delivered_total", "Lines queued for clients, one per recipient.", s.lines_delivered)
        yield _counter("chatd_received_bytes_total", "Plaintext bytes read from clients (after TLS).", s.bytes_received)
        yield _counter("chatd_sent_bytes_total", "Plaintext bytes handed to TLS for clients.", s.bytes_sent)
        yield _counter("chatd_messages_received_total", "Chat messages (MSG, ACTION, DM) clients sent.", s.messages_in)
        yield _counter("chatd_rate_limited_lines_total", "Lines dropped with ERR rate_limited.", s.rate_limited_lines)
        yield _counter("chatd_slow_consumers_total", "Clients dropped as slow consumers.", s.slow_consumers)
        yield _gauge("chatd_rooms", "Rooms that exist, permanent ones included.", s.rooms)
        yield _gauge(
            "chatd_room_members", "Room memberships (a client in three rooms counts three times).", s.room_members
        )
        yield _gauge("chatd_send_queue_bytes", "Bytes waiting for clients, all queues together.", s.send_queue_bytes)
        yield _gauge(
            "chatd_send_queue_largest_bytes",
            "Bytes waiting for the client with the longest queue.",
            s.send_queue_largest_bytes,
        )
        yield _gauge(
            "chatd_io_worker_lag_seconds",
            "How late each I/O worker ran its last periodic tick "
            "(or how overdue the next one is): how long its turns take.",
            {(w.name,): w.lag_seconds for w in s.workers},
            ("worker",),
        )
        yield _gauge(
            "chatd_io_worker_up",
            "1 while the I/O worker's loop runs, 0 once it has stopped.",
            {(w.name,): int(w.running) for w in s.workers},
            ("worker",),
        )
        yield _counter("chatd_config_reloads_total", "Configuration reloads, by result.", _by(s.reloads), ("result",))
        if s.cert_expiry is not None:
            yield _gauge(
                "chatd_tls_cert_expiry_timestamp_seconds",
                "When the server certificate expires (its notAfter, Unix time), as loaded at start or the last reload.",
                s.cert_expiry,
            )
        for source, values in s.sources.items():
            yield from _source_metrics(source, values)
        if s.accounts is not None:
            yield from _account_metrics(s.accounts)


def _account_metrics(a: AccountFigures) -> Iterable[Metric]:
    """With accounts on (issue 21): sign-ins, password hashing, accounts."""
    yield _counter(
        "chatd_logins_total",
        "Sign-ins by method (password, register, token, certificate) and result (success, failure, "
        "throttled, busy, disabled, banned).",
        {key: float(value) for key, value in a.logins.items()},
        ("method", "result"),
    )
    yield _counter("chatd_auth_throttled_total", "Sign-ins refused by a login throttle, before any hash.", a.throttled)
    yield _counter("chatd_password_hashes_total", "Password hashes computed (argon2id).", a.hashes)
    summary = SummaryMetricFamily(
        "chatd_auth_hash_seconds", "CPU time the password hashes took (on the chatd-auth threads)."
    )
    summary.add_metric([], count_value=a.hashes, sum_value=a.hash_seconds)
    yield summary
    yield _gauge("chatd_auth_queue_length", "Password checks waiting for a chatd-auth thread.", a.queue_waiting)
    yield _gauge("chatd_auth_checks_running", "Password checks being hashed now.", a.queue_running)
    yield _gauge(
        "chatd_accounts",
        "Accounts (deleted ones left out), by state.",
        {("enabled",): a.accounts - a.disabled, ("disabled",): a.disabled},
        ("state",),
    )
    yield _gauge("chatd_account_tokens", "Sign-in tokens (/remember) that have not expired.", a.tokens)


def build_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of chatd's collector and the standard process and GC ones."""
    registry = CollectorRegistry()
    registry.register(ChatdCollector(snapshot))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the text format (CONTENT_TYPE)."""
    return generate_latest(registry)


def _source_metrics(source: str, values: Mapping[str, float]) -> Iterable[Metric]:
    """A component's figures (a `StatsSource`): `chatd_<source>_<key>`, a counter
    for a key ending in `_total`, a gauge otherwise. Keys that cannot be part of
    a metric name are left out."""
    helps = SOURCE_HELP.get(source, {})
    for key, value in sorted(values.items()):
        if not _KEY.fullmatch(key) or not _KEY.fullmatch(source):
            continue
        name = f"chatd_{source}_{key}"
        text = helps.get(key, f"{key} as reported by chatd's {source} component.")
        yield _counter(name, text, value) if key.endswith("_total") else _gauge(name, text, value)


def _by(counts: Mapping[str, int]) -> Samples:
    return {(key,): value for key, value in counts.items()}


def _counter(name: str, text: str, value: float | Samples, labels: tuple[str, ...] = ()) -> Metric:
    return _family(CounterMetricFamily(name, text, labels=labels), value)


def _gauge(name: str, text: str, value: float | Samples, labels: tuple[str, ...] = ()) -> Metric:
    return _family(GaugeMetricFamily(name, text, labels=labels), value)


def _family(family: CounterMetricFamily | GaugeMetricFamily, value: float | Samples) -> Metric:
    samples = value if isinstance(value, Mapping) else {(): value}
    for label_values, number in sorted(samples.items()):
        family.add_metric(list(label_values), number)
    return family
