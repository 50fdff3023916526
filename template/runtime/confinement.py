"""How a worker confines itself, between the zygote's fork and the first user code.

The zygote already runs inside bubblewrap (src/backends/local/bubblewrap.ts: no network, a
read-only minimal filesystem, its own PID namespace, no capabilities, an unprivileged uid).
Each worker then goes further, so that tenants are apart from each other too:

- its own user, PID, mount, IPC and network namespaces: it is PID 1 of a namespace, so it
  cannot see or signal other workers, and killing it takes every process it started with
  it; abstract Unix sockets of one worker are out of another's reach;
- its own ``/proc`` (read-only, showing only its own processes), its own ``/dev/pts``
  (no terminal of another worker) and a private ``/tmp``; the proxy's socket and
  shared-memory directories hidden once the worker has connected and mapped its region;
- no capabilities, no new privileges, not dumpable (no ptrace or /proc/<pid>/mem of it);
- a seccomp filter: no sockets but Unix ones (so no network, loopback included), no new
  namespaces, mounts, ptrace, keyrings, bpf, io_uring or kernel modules;
- rlimits (address space, CPU seconds, processes, file size, open files, no core files);
- fresh seeds for every RNG, since a fork copies the zygote's.

Linux-only, through ctypes; every step raises ConfinementError naming what failed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import resource
import signal
import struct
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = 0x7E020000  # every CLONE_NEW* flag, for the clone() check

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x1, 0x2, 0x4, 0x8, 0x4000, 0x40000

AF_UNIX = 1
EPERM, EACCES, ENOSYS = 1, 13, 38


class ConfinementError(RuntimeError):
    """A confinement step failed; the worker must not run user code."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise ConfinementError(f"{what} failed: {os.strerror(errno)} (errno {errno})")


@dataclass(frozen=True)
class Limits:
    address_space_bytes: int
    cpu_seconds: int
    processes: int
    file_size_bytes: int
    open_files: int


def enter_namespaces() -> None:
    """In the first child: new user, PID, mount, IPC and network namespaces (the PID one
    applies to the next fork), with this process's uid and gid mapped to themselves."""
    uid, gid = os.getuid(), os.getgid()
    _check(
        _libc.unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET),
        "unshare",
    )
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def become_worker(
    limits: Limits, keep_fds: tuple[int, ...] = (), hide: tuple[str, ...] = ()
) -> None:
    """In the second child (PID 1 of its namespace): everything up to running user code.

    ``hide``: directories to cover with an empty read-only tmpfs (the proxy's socket and
    region directories: connected and mapped already, nothing a block should reach).
    """
    _check(
        _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)"
    )  # its holder dies → it dies
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    # A procfs of this PID namespace: the zygote's /proc would show (and let a block write
    # to, e.g. oom_score_adj) the zygote and every other tenant's processes.
    _check(
        _libc.mount(b"proc", b"/proc", b"proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        "mounting a private /proc",
    )
    _check(
        _libc.mount(
            b"devpts",
            b"/dev/pts",
            b"devpts",
            MS_NOSUID | MS_NOEXEC,
            b"newinstance,ptmxmode=0666,mode=0620",
        ),
        "mounting a private /dev/pts",
    )
    for directory in hide:
        _check(
            _libc.mount(
                b"tmpfs",
                directory.encode(),
                b"tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                b"size=4k,mode=0555",
            ),
            f"hiding {directory}",
        )
    _check(
        _libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=256m,mode=1777"),
        "mounting a private /tmp",
    )
    close_other_fds(keep_fds)
    _drop_capabilities()
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    apply_limits(limits)
    run_as_batch()
    install_seccomp()
    reseed()


def close_other_fds(keep: tuple[int, ...]) -> None:
    # The zygote's control pipes and wakeup fd must not reach user code.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the fd of the listdir itself, already gone


def _drop_capabilities() -> None:
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == EPERM:
            raise ConfinementError(f"dropping capability {cap} from the bounding set failed")
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # effective, permitted, inheritable: all zero, for both 32-bit halves
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")


def apply_limits(limits: Limits) -> None:
    for resource_id, value, name in (
        (resource.RLIMIT_AS, limits.address_space_bytes, "address space"),
        (resource.RLIMIT_CPU, limits.cpu_seconds, "CPU seconds"),
        (resource.RLIMIT_NPROC, limits.processes, "processes"),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, "file size"),
        (resource.RLIMIT_NOFILE, limits.open_files, "open files"),
        (resource.RLIMIT_CORE, 0, "core files"),
    ):
        try:
            resource.setrlimit(resource_id, (value, value))
        except (ValueError, OSError) as exc:
            raise ConfinementError(f"setting the {name} limit to {value} failed: {exc}") from None


def run_as_batch() -> None:
    """SCHED_BATCH for the worker and what it starts: the server's write of a request wakes
    the worker on the server's own CPU (a Unix-socket send is a synchronous wake-up), and a
    normal-policy worker then preempts the server's one thread until it has answered. As
    batch it waits for the server to go back to its event loop (or for another CPU): the
    server's frame write took ~185 µs of wall time at concurrency 64, ~20 µs as batch
    (bench/README, "Where a no-op run's CPU goes"). Unprivileged; a block may set its policy
    back, which only restores the old behaviour."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux, or refused
        pass


def end_stray_processes() -> int:
    """As PID 1 of the worker's namespace: end every other process in it and reap them.

    Called after each request, so nothing a run started outlives it (no child left
    burning CPU, holding memory or connections, and no zombie). Outside its own PID
    namespace (no isolation) a worker is not PID 1, and kill(-1) would reach every
    process of its uid on the machine: then it does nothing. Returns how many ended.
    """
    if os.getpid() != 1:
        return 0
    ended = 0
    while True:
        # kill(-1) from PID 1 signals every process of the namespace but itself; orphans
        # are re-parented to PID 1, so "no child left" means nothing else runs.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return ended
        ended += 1


def reseed() -> None:
    random.seed(os.urandom(32))
    try:
        import numpy as np

        np.random.seed(int.from_bytes(os.urandom(4), "little"))
    except ImportError:  # pragma: no cover - numpy is in the runtime's requirements
        pass


# --- seccomp ---------------------------------------------------------------------

_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Syscalls a block never needs and a sandbox escape often does.
_DENIED = {
    "x86_64": dict(
        ptrace=101,
        mount=165,
        umount2=166,
        pivot_root=155,
        chroot=161,
        unshare=272,
        setns=308,
        keyctl=250,
        add_key=248,
        request_key=249,
        bpf=321,
        perf_event_open=298,
        userfaultfd=323,
        process_vm_readv=310,
        process_vm_writev=311,
        kexec_load=246,
        init_module=175,
        finit_module=313,
        delete_module=176,
        reboot=169,
        swapon=167,
        swapoff=168,
        io_uring_setup=425,
        io_uring_enter=426,
        io_uring_register=427,
    ),
    "aarch64": dict(
        ptrace=117,
        mount=40,
        umount2=39,
        pivot_root=41,
        chroot=51,
        unshare=97,
        setns=268,
        keyctl=219,
        add_key=217,
        request_key=218,
        bpf=280,
        perf_event_open=241,
        userfaultfd=282,
        process_vm_readv=270,
        process_vm_writev=271,
        kexec_load=104,
        init_module=105,
        finit_module=273,
        delete_module=106,
        reboot=142,
        swapon=224,
        swapoff=225,
        io_uring_setup=425,
        io_uring_enter=426,
        io_uring_register=427,
    ),
}
_SOCKET = {"x86_64": 41, "aarch64": 198}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435

# BPF opcodes
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_X32_SYSCALL_BIT = 0x40000000
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000
_RET_ERRNO = 0x00050000


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def seccomp_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as BPF instructions (code, jt, jf, k) for this machine's architecture."""
    machine = machine or platform.machine()
    if machine not in _ARCH:
        raise ConfinementError(f"no seccomp filter for architecture {machine}")
    denied = sorted(_DENIED[machine].values())
    program = [
        _stmt(_LD_W_ABS, 4),  # seccomp_data.arch
        _jump(_JEQ_K, _ARCH[machine], 1, 0),
        _stmt(_RET_K, _RET_KILL),  # another ABI: nothing a block needs
        _stmt(_LD_W_ABS, 0),  # seccomp_data.nr
        _jump(_JGE_K, _X32_SYSCALL_BIT, 0, 1),  # x32 numbers would dodge every check below
        _stmt(_RET_K, _RET_KILL),
    ]
    for nr in denied:
        program += [_jump(_JEQ_K, nr, 0, 1), _stmt(_RET_K, _RET_ERRNO | EPERM)]
    # clone3 hides its flags in memory: refuse it, and libc falls back to clone.
    program += [_jump(_JEQ_K, _CLONE3, 0, 1), _stmt(_RET_K, _RET_ERRNO | ENOSYS)]
    # clone: no new namespaces (arg 0 holds the flags).
    program += [
        _jump(_JEQ_K, _CLONE[machine], 0, 3),
        _stmt(_LD_W_ABS, 16),
        _jump(_JSET_K, NAMESPACE_FLAGS, 0, 5),
        _stmt(_RET_K, _RET_ERRNO | EPERM),
    ]
    # socket: Unix sockets only (arg 0 is the domain).
    program += [
        _jump(_JEQ_K, _SOCKET[machine], 0, 3),
        _stmt(_LD_W_ABS, 16),
        _jump(_JEQ_K, AF_UNIX, 1, 0),
        _stmt(_RET_K, _RET_ERRNO | EACCES),
    ]
    program += [_stmt(_RET_K, _RET_ALLOW)]
    return program


def install_seccomp() -> None:
    program = seccomp_program()
    packed = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(packed, len(packed))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    _check(
        _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
        "installing the seccomp filter",
    )
