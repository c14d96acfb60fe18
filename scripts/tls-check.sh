#!/usr/bin/env bash
# Scan a temporary chatd with sslyze against Mozilla's "intermediate" TLS profile.
# sslyze lives in its own virtual environment (.venv-sslyze): it is a tool, not a dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.venv-sslyze
[ -x "$tools/bin/sslyze" ] || { python3 -m venv "$tools"; "$tools/bin/pip" install --quiet sslyze; }
work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/chatd.yaml" <<EOF
server: {host: 127.0.0.1, port: $port}
tls: {cert: $PWD/certs/server.crt, key: $PWD/certs/server.key}
log: {format: json, level: warning}
control: {socket: null}
metrics: {listen: null}
EOF
.venv/bin/chatd --config "$work/chatd.yaml" 2>"$work/chatd.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
# The development CA is private, so sslyze is told to trust it for path validation.
"$tools/bin/sslyze" --mozilla_config intermediate --certinfo_ca_file certs/ca.crt "127.0.0.1:$port"
