"""The cluster's engine layer: several chatd nodes on one Redis.

Imported only when the configuration has a `cluster:` section; standalone
chatd never imports this package or redis-py (`pip install chatd[cluster]`
brings them). What lives here is the Redis side, with no chat logic and no
client connections: the chat core's `Engine` port (core/network.py) on it,
and the node that runs it:

    node.py         this process as a node: start, threads, fencing, reseeding
    engine.py       ClusterEngine: each operation of the core as a script call
    registration.py a node's incarnation: registered, a dead run's lease waited out
    state.py        the snapshot script's reply as the core's NetworkState
    keys.py         the key layout under `cluster.prefix`
    entry.py        a log entry and how it is stored in the stream
    lua/            the scripts: each one atomic, each checks the caller's epoch
    scripts.py      the scripts loaded, and each call pre-encoded with its reply
                    decoder (`Calls`)
    link.py         one connection (redis-py with hiredis): pipelined calls,
                    NOSCRIPT handled, errors sorted into "not sent" and "no reply"
    backoff.py      reconnect delays
    writer.py       the thread shape that sends every waiting call in one write
    reader.py       XREAD BLOCK from a position: entries in id order, a trimmed
                    or rewound log detected, Redis restarts survived
    lease.py        the node's lease: heartbeat, self-fencing, reaping dead nodes
    persistence.py  the start-up check of Redis's append-only settings

docs/architecture.md, "Cluster", says how it plugs into the core.
"""
