"""The system calls a sandbox may not make, compiled once per worker with libseccomp.

Each denied call fails with EPERM, as under Docker's default profile, so a runtime that probes
for a feature sees an ordinary refusal instead of dying. The list covers what would let a
function reach past its namespaces: mounting, entering or creating namespaces (a new user
namespace would hand it every capability again), tracing or reading other processes' memory,
loading kernel code, kernel keyrings, raw packet sockets, swap and reboot. Calls of another
architecture's ABI (i386, x32) are not in the filter and kill the thread, libseccomp's default.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import Any

import pyseccomp

# Flags and values the argument rules test, as the kernel defines them.
_CLONE_NEWUSER = 0x10000000
_SOCK_TYPE_MASK = 0xF
_SOCK_PACKET = 10

DENIED = (
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "setns",
    "swapon",
    "swapoff",
    "reboot",
    "open_by_handle_at",
    "userfaultfd",
    "acct",
    "quotactl",
    "iopl",
    "ioperm",
)


def oci_profile() -> dict[str, Any]:
    """The same rules as an OCI runtime's `linux.seccomp`, for backends that load it."""
    eperm = {"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}

    def arg(index: int, op: str, value: int, mask: int | None = None) -> dict[str, Any]:
        if mask is None:
            return {"index": index, "value": value, "op": op}
        return {"index": index, "value": mask, "valueTwo": value, "op": op}

    new_user = arg(0, "SCMP_CMP_MASKED_EQ", _CLONE_NEWUSER, _CLONE_NEWUSER)
    rules: list[dict[str, Any]] = [
        {"names": list(DENIED), **eperm},
        {"names": ["unshare", "clone"], **eperm, "args": [new_user]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        {"names": ["socket"], **eperm, "args": [arg(0, "SCMP_CMP_EQ", socket.AF_PACKET)]},
    ]
    for family in (socket.AF_INET, socket.AF_INET6):
        for kind in (socket.SOCK_RAW, _SOCK_PACKET):
            kind_is = arg(1, "SCMP_CMP_MASKED_EQ", kind, _SOCK_TYPE_MASK)
            ip_family = arg(0, "SCMP_CMP_EQ", family)
            rules.append({"names": ["socket"], **eperm, "args": [ip_family, kind_is]})
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


@dataclass(frozen=True)
class CompiledFilter:
    """A filter as the BPF program bubblewrap loads with `--seccomp FD`."""

    program: bytes

    def open(self) -> int:
        """A new file descriptor positioned at the program's start, for one sandbox's start;
        the caller closes it once bubblewrap has been started."""
        fd = os.memfd_create("lamina-seccomp", os.MFD_CLOEXEC)
        os.write(fd, self.program)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd


def compile_filter() -> CompiledFilter:
    deny = pyseccomp.ERRNO(errno.EPERM)
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in DENIED:
        rules.add_rule(deny, name)

    new_user = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER)
    rules.add_rule(deny, "unshare", new_user)
    rules.add_rule(deny, "clone", new_user)
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes the C library fall
    # back to clone, whose flags the rule above sees.
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")

    # Packet sockets, and raw IP ones (netlink's raw sockets stay: the C library lists
    # network interfaces through them).
    rules.add_rule(deny, "socket", pyseccomp.Arg(0, pyseccomp.EQ, socket.AF_PACKET))
    for family in (socket.AF_INET, socket.AF_INET6):
        for kind in (socket.SOCK_RAW, _SOCK_PACKET):
            ip_family = pyseccomp.Arg(0, pyseccomp.EQ, family)
            kind_is = pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _SOCK_TYPE_MASK, kind)
            rules.add_rule(deny, "socket", ip_family, kind_is)

    fd = os.memfd_create("lamina-seccomp-build", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as program:
        rules.export_bpf(program)
        program.seek(0)
        return CompiledFilter(program.read())
