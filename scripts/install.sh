#!/usr/bin/env bash
# Install chatd as a systemd service from this checkout. Run as root.
#   /opt/chatd               the program (its own virtual environment)
#   /etc/chatd/chatd.yaml    the config (kept if present)
#   /etc/chatd/certs/        server.crt + server.key, root:chatd, group-readable (kept if present)
#   /etc/systemd/system/chatd.service
set -euo pipefail
prefix=/opt/chatd
src=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chatd needs Python 3.11+")'

"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --upgrade pip
"$prefix/bin/python" -m pip install --quiet "$src"
install -d -m 0755 "$prefix/share/doc"
install -m 0644 "$src/docs/operations.md" "$src/docs/protocol.md" "$prefix/share/doc/"

getent passwd chatd >/dev/null || useradd --system --user-group --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin chatd
install -d -m 0755 /etc/chatd
install -d -m 0750 -o root -g chatd /etc/chatd/certs
[ -e /etc/chatd/chatd.yaml ] || install -m 0644 "$src/config/chatd.production.yaml" /etc/chatd/chatd.yaml
install -m 0644 "$src/systemd/chatd.service" /etc/systemd/system/chatd.service
systemctl daemon-reload

if [ ! -e /etc/chatd/certs/server.crt ]; then
    echo "Put the server certificate chain and key in /etc/chatd/certs/server.crt and server.key"
    echo "(owner root, group chatd, key mode 0640), or make a private CA for testing:"
    echo "  $prefix/bin/chatctl gen-certs --out /etc/chatd/certs --host $(hostname -f 2>/dev/null || hostname)"
    echo "  chgrp chatd /etc/chatd/certs/server.key && chmod 0640 /etc/chatd/certs/server.key"
fi
if systemctl is-active --quiet chatd; then
    echo "Installed. chatd is still running the previous version: systemctl restart chatd"
else
    echo "Installed. Start it with: systemctl enable --now chatd"
fi
