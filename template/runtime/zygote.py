"""The zygote: one Python with the whole CV stack imported, that forks ready workers.

    python -m runtime.zygote --socket PATH [limits…]

It runs inside bubblewrap and talks to the proxy over its stdin/stdout in the worker
frame format (the messages are runtime.protocol's): it says ``ZygoteReady`` once; then
``SpawnRequest`` → ``Spawned``, ``KillRequest``, and ``Exited`` when a worker ends. A spawned
worker confines itself (runtime.confinement), connects to the proxy's Unix socket at PATH,
says ``WorkerHello`` (its id and token) and then serves runs like any worker.
Forking a warm parent takes milliseconds where a fresh interpreter takes half a second.
"""

from __future__ import annotations

import argparse
import gc
import mmap
import os
import select
import signal
import socket
import sys
from typing import BinaryIO

# Threads do not survive fork: pin every numeric library to one before importing them.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

from . import confinement  # noqa: E402
from .executor import Executor  # noqa: E402
from .framing import FrameError, frame_parts, read_frame  # noqa: E402
from .prelude import preload  # noqa: E402
from .protocol import (  # noqa: E402
    DEFAULT_BLOCK_CACHE_SIZE,
    DEFAULT_MAX_CAPTURE_BYTES,
    DEFAULT_MAX_FRAME_BYTES,
    ZYGOTE_CONTROL_FRAME_BYTES,
    Exited,
    Spawned,
    WorkerHello,
    ZygoteReady,
)
from .task_id import assign_task_id  # noqa: E402
from .worker import claim_channel, serve  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runtime.zygote")
    parser.add_argument(
        "--socket", required=True, help="the proxy's Unix socket workers connect to"
    )
    parser.add_argument("--region-dir", help="where each worker's shared-memory region file is")
    parser.add_argument("--max-capture-bytes", type=int, default=DEFAULT_MAX_CAPTURE_BYTES)
    parser.add_argument("--block-cache-size", type=int, default=DEFAULT_BLOCK_CACHE_SIZE)
    parser.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES)
    parser.add_argument("--memory-bytes", type=int, default=4 << 30)
    parser.add_argument("--cpu-seconds", type=int, default=3600)
    parser.add_argument("--processes", type=int, default=64)
    parser.add_argument("--file-size-bytes", type=int, default=64 << 20)
    parser.add_argument("--open-files", type=int, default=256)
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="skip the per-worker namespaces and seccomp (tests of the zygote itself)",
    )
    return parser.parse_args(argv)


def _send(out: BinaryIO, message: ZygoteReady | Spawned | Exited | WorkerHello) -> None:
    for part in frame_parts(message):
        out.write(part)
    out.flush()


class Zygote:
    def __init__(self, args: argparse.Namespace, control_out: BinaryIO) -> None:
        self.args = args
        self.out = control_out
        self.holders: dict[int, str] = {}  # holder pid → worker id
        self.by_id: dict[str, int] = {}
        self.limits = confinement.Limits(
            address_space_bytes=args.memory_bytes,
            cpu_seconds=args.cpu_seconds,
            processes=args.processes,
            file_size_bytes=args.file_size_bytes,
            open_files=args.open_files,
        )

    def spawn(
        self, worker_id: str, token: str, region: str | None = None, region_bytes: int = 0
    ) -> None:
        # The child tells its pid as the proxy sees it (fork returns the one in our namespace),
        # so the proxy can move it into the worker's cgroup while the worker starts.
        said_read, said_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(said_read)
            os.write(said_write, str(_host_pid() or 0).encode())
            os.close(said_write)
            self._child(worker_id, token, region, region_bytes)  # never returns
        os.close(said_write)
        try:
            host_pid = int(os.read(said_read, 32) or b"0") or None
        except ValueError:
            host_pid = None
        finally:
            os.close(said_read)
        self.holders[pid] = worker_id
        self.by_id[worker_id] = pid
        _send(self.out, Spawned(op="spawned", id=worker_id, pid=pid, host_pid=host_pid))

    def kill(self, worker_id: str) -> None:
        pid = self.by_id.get(worker_id)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)  # the worker follows its holder (PDEATHSIG)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker_id = self.holders.pop(pid, None)
            if worker_id is None:
                continue
            self.by_id.pop(worker_id, None)
            code = os.waitstatus_to_exitcode(status)
            # A holder exits with its worker's status; 128+n means the worker died of signal n.
            signal_number = -code if code < 0 else (code - 128 if code > 128 else None)
            _send(
                self.out,
                Exited(
                    op="exited",
                    id=worker_id,
                    code=code if code >= 0 else None,
                    signal=signal_number,
                ),
            )

    def _child(
        self, worker_id: str, token: str, region_name: str | None, region_bytes: int
    ) -> None:
        status = 70
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            if not self.args.no_isolation:
                confinement.enter_namespaces()
                pid = os.fork()  # the namespace's PID 1 is the worker; this one holds it
                if pid != 0:
                    _, wait_status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(wait_status)
                    os._exit(128 - code if code < 0 else code)
            host_pid = _host_pid()  # before this worker mounts a /proc of its own
            channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            channel.connect(self.args.socket)
            region = _map_region(self.args.region_dir, region_name, region_bytes)
            keep = (channel.fileno(), 2) + ((region.fd,) if region else ())
            if self.args.no_isolation:
                confinement.close_other_fds(keep)
                confinement.apply_limits(self.limits)
                confinement.run_as_batch()
                confinement.reseed()
            else:
                hide = (os.path.dirname(self.args.socket),) + (
                    (self.args.region_dir,) if self.args.region_dir else ()
                )
                confinement.become_worker(self.limits, keep_fds=keep, hide=hide)
            status = run_worker(channel, worker_id, token, self.args, region, host_pid)
        except BaseException as exc:  # noqa: BLE001 - report and leave, whatever it was
            print(
                f"blockgate worker {worker_id}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
        finally:
            os._exit(status)


class _SocketReader:
    """``readinto`` straight from the socket: a file object's buffering only adds copies."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel

    def readinto(self, buffer) -> int:
        return self._channel.recv_into(buffer)


class Region(mmap.mmap):
    """The worker's shared-memory region (the proxy created it, 0666, by name), mapped once,
    with its file kept open to reserve pages before outputs are written into them."""

    fd: int

    def reserve(self, offset: int, length: int) -> bool:
        """Whether /dev/shm backs [offset, offset + length): a write to a page it has no room
        for is a SIGBUS, a failed reservation only sends those bytes through the socket."""
        try:
            os.posix_fallocate(self.fd, offset, length)
            return True
        except OSError:
            return False


def _map_region(directory: str | None, name: str | None, size: int) -> Region | None:
    if not directory or not name or size <= 0 or not name.isalnum():
        return None
    fd = os.open(os.path.join(directory, name), os.O_RDWR)
    region = Region(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    region.fd = fd
    return region


def _host_pid() -> int | None:
    """This process's pid as the proxy sees it: bubblewrap binds the host's /proc, whose
    /proc/self names it (os.getpid() gives the pid in our own namespace)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return None


def run_worker(
    channel: socket.socket,
    worker_id: str,
    token: str,
    args: argparse.Namespace,
    region: mmap.mmap | None = None,
    host_pid: int | None = None,
) -> int:
    reader = _SocketReader(channel)
    writer = channel.makefile("wb")
    assign_task_id()  # each forked worker its own, before any of its user code
    # Built while the worker's stderr is still the zygote's: a failure here is the
    # runtime's own and shows in the spawn's error.
    executor = Executor(
        cache_size=args.block_cache_size,
        max_capture_bytes=args.max_capture_bytes,
        sidecar_outputs=True,
        region=region,
        max_output_bytes=args.max_frame_bytes,
    )
    # Sent before any user code runs, so the proxy can trust host_pid to place this
    # worker in its cgroup.
    _send(
        writer,
        WorkerHello(op="hello", id=worker_id, token=token, pid=os.getpid(), host_pid=host_pid),
    )
    # From here on user code runs: what reaches fds 1 and 2 is the block's, and the
    # zygote's stderr is shared by every tenant (its last line shows up in messages).
    # Blocks' prints are captured per run; anything written to the fds directly is dropped.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    return serve(reader, writer, executor, args.max_frame_bytes, greet=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    control_in, control_out = claim_channel(buffered=False)
    preload()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    zygote = Zygote(args, control_out)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select through the fd
    gc.collect()
    gc.freeze()  # children share these pages: no refcount-driven copy-on-write storms
    _send(control_out, ZygoteReady(op="ready", pid=os.getpid()))
    while True:
        readable, _, _ = select.select([control_in, wakeup_read], [], [])
        if wakeup_read in readable:
            os.read(wakeup_read, 4096)
            zygote.reap()
        if control_in in readable:
            try:
                frame = read_frame(control_in, ZYGOTE_CONTROL_FRAME_BYTES)
            except FrameError as exc:
                print(f"blockgate zygote: {exc}", file=sys.stderr, flush=True)
                return 1
            if frame is None:
                return 0  # the proxy went away; bubblewrap takes the workers down with us
            message = frame.message
            if message.get("op") == "spawn":
                zygote.spawn(
                    str(message["id"]),
                    str(message["token"]),
                    message.get("region"),
                    int(message.get("region_bytes") or 0),
                )
            elif message.get("op") == "kill":
                zygote.kill(str(message["id"]))
            zygote.reap()


if __name__ == "__main__":
    sys.exit(main())
