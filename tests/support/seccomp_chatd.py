"""chatd under a seccomp filter that refuses `setpriority` with EPERM, as
systemd's `SystemCallFilter=~@resources` (without `SystemCallFilter=setpriority`
after it) does:

    python -m tests.support.seccomp_chatd --config FILE

The filter is installed on the main thread before chatd's `main()` starts any
thread, so every thread inherits it. x86-64 and aarch64 only (`supported()`).
"""

from __future__ import annotations

import ctypes
import errno
import platform
import sys

from chatd import cli

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
# (AUDIT_ARCH_*, __NR_setpriority) by machine
_ARCHES = {"x86_64": (0xC000003E, 141), "aarch64": (0xC00000B7, 140)}


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def supported() -> bool:
    return platform.machine() in _ARCHES


def refuse_setpriority() -> None:
    arch, number = _ARCHES[platform.machine()]
    load, jump_eq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    program = [
        (load, 0, 0, 4),  # seccomp_data.arch
        (jump_eq, 0, 3, arch),  # another ABI: allow
        (load, 0, 0, 0),  # seccomp_data.nr
        (jump_eq, 0, 1, number),
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
    ]
    filters = (_Filter * len(program))(*(_Filter(*row) for row in program))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    prog = _Program(len(program), filters)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    refuse_setpriority()
    sys.exit(cli.main(sys.argv[1:]))
