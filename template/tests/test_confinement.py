"""How a worker confines itself (runtime.confinement), in a real forked child."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import tempfile
import time

import pytest

from runtime import confinement

LIMITS = confinement.Limits(
    address_space_bytes=2 << 30,
    cpu_seconds=60,
    processes=16,
    file_size_bytes=1 << 20,
    open_files=64,
)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_is_well_formed(machine):
    program = confinement.seccomp_program(machine)
    assert program[-1] == (0x06, 0, 0, 0x7FFF0000)  # ends by allowing what it did not refuse
    assert len(program) < 256
    for index, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:  # a jump must land inside the program
            assert index + 1 + max(jt, jf) < len(program)


def test_an_unknown_architecture_is_refused_not_guessed():
    with pytest.raises(
        confinement.ConfinementError, match="no seccomp filter for architecture sparc"
    ):
        confinement.seccomp_program("sparc")


def _probe(hidden: str, parents_channel: str) -> dict:
    """What a block would find, run inside the finished confinement."""
    found: dict = {"pid": os.getpid(), "uid": os.getuid(), "tmp": os.listdir("/tmp")}
    found["proc_pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    found["pts"] = os.listdir("/dev/pts")
    found["hidden"] = os.listdir(hidden)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        found["proc_writable"] = True
    except OSError:
        found["proc_writable"] = False
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        channel.connect(parents_channel)
        found["parents_channel"] = "connected"
    except OSError as exc:
        found["parents_channel"] = type(exc).__name__
    # A process the "run" left behind: the worker, PID 1, ends it and reaps it.
    if os.fork() == 0:
        while True:
            time.sleep(1)
    found["ended"] = confinement.end_stray_processes()
    try:
        os.waitpid(-1, os.WNOHANG)
        found["children_left"] = True
    except ChildProcessError:
        found["children_left"] = False
    for name, attempt in {
        "inet": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "inet6": lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
        "unshare": lambda: (
            os.unshare(0x10000000)
            if hasattr(os, "unshare")
            else confinement._check(confinement._libc.unshare(0x10000000), "unshare")
        ),
        "mount": lambda: confinement._check(
            confinement._libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None), "mount"
        ),
    }.items():
        try:
            attempt()
            found[name] = "allowed"
        except (OSError, confinement.ConfinementError) as exc:
            found[name] = type(exc).__name__
    found["unix"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).fileno() > 0
    status = open("/proc/self/status").read()
    found["cap_eff"] = status.split("CapEff:")[1].split()[0]
    found["no_new_privs"] = status.split("NoNewPrivs:")[1].split()[0]
    import resource

    found["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    found["policy"] = os.sched_getscheduler(0)
    return found


def test_a_forked_worker_isolates_itself():
    # Outside /tmp, which the worker replaces anyway: as the proxy's /run/blockgate is.
    hidden = pathlib.Path(tempfile.mkdtemp(dir="/dev/shm", prefix="blockgate-test-"))
    (hidden / "workers.sock").write_text("")
    # An abstract socket of this (the zygote's) network namespace: a worker must not reach it.
    parents_channel = f"\0blockgate-test-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(parents_channel)
    listener.listen(1)
    read_end, write_end = os.pipe()
    holder = os.fork()
    if holder == 0:
        code = 1
        try:
            confinement.enter_namespaces()
            worker = os.fork()
            if worker == 0:
                try:
                    confinement.become_worker(LIMITS, keep_fds=(write_end, 2), hide=(str(hidden),))
                    os.write(write_end, json.dumps(_probe(str(hidden), parents_channel)).encode())
                    os._exit(0)
                except BaseException as exc:  # noqa: BLE001
                    os.write(write_end, json.dumps({"error": repr(exc)}).encode())
                    os._exit(1)
            _, status = os.waitpid(worker, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    os.close(write_end)
    report = b""
    while chunk := os.read(read_end, 65536):
        report += chunk
    os.close(read_end)
    os.waitpid(holder, 0)
    listener.close()
    shutil.rmtree(hidden)
    found = json.loads(report)
    assert "error" not in found, found
    assert found["pid"] == 1  # PID 1 of its own namespace: no other process is visible to signal
    assert found["tmp"] == []  # a private /tmp
    assert found["inet"] == found["inet6"] == "PermissionError"  # no network at all
    assert found["unix"] is True
    assert found["unshare"] != "allowed" and found["mount"] != "allowed"
    assert int(found["cap_eff"], 16) == 0
    assert found["no_new_privs"] == "1"
    assert found["nproc"] == LIMITS.processes
    assert found["policy"] == os.SCHED_BATCH  # woken by the server, it does not preempt it
    assert found["proc_pids"] == [1]  # a /proc of its own PID namespace
    assert found["proc_writable"] is False
    assert found["pts"] == ["ptmx"]  # a devpts of its own: no other worker's terminal
    assert found["hidden"] == []  # the proxy's directories are covered
    assert found["parents_channel"] != "connected"  # a network namespace of its own
    assert found["ended"] == 1 and found["children_left"] is False


def test_ending_stray_processes_is_a_no_op_outside_a_pid_namespace():
    # Not PID 1: kill(-1) would reach every process of this uid on the machine.
    assert os.getpid() != 1
    assert confinement.end_stray_processes() == 0
