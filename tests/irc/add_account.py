"""Make an account on a running chatd as its operator does (`make irctest`):
the password, read from stdin, hashed by chatd's own code (argon2id at the
cost given), then `user_add` on the control socket. Run in chatd's
virtualenv by tests/irc/chatd_controller.py, whose own has no argon2.

    python tests/irc/add_account.py <control socket> <name> <memory_kib> <time_cost> < password
"""

from __future__ import annotations

import sys
from pathlib import Path

from chatctl.control import request
from chatd.config_accounts import Argon2Config
from chatd.passwords import Argon2


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    socket, name, memory_kib, time_cost = argv[1], argv[2], int(argv[3]), int(argv[4])
    hashed = Argon2(Argon2Config(memory_kib=memory_kib, time_cost=time_cost, parallelism=1)).hash(sys.stdin.read())
    reply = request(Path(socket), {"cmd": "user_add", "name": name, "password_hash": hashed})
    if reply.get("ok") is not True:
        print(f"user_add {name}: {reply}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
