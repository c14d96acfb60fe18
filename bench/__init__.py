"""chatd's benchmark: a TLS load generator (engine, dialects, scenarios), the
targets it is pointed at (chatd, ngircd, the seed server) and the runner
behind `make bench` that writes bench/RESULTS.md. Not part of `make test`."""
