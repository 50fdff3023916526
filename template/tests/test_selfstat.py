"""runtime.selfstat: the thread count and resident memory from a kept-open /proc/self/stat."""

from __future__ import annotations

import os
import threading

from runtime.selfstat import SelfStat


def test_counts_threads_and_memory_as_proc_does():
    stat = SelfStat()
    assert stat.threads() == len(os.listdir("/proc/self/task"))
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    try:
        assert stat.threads() == len(os.listdir("/proc/self/task"))
    finally:
        done.set()
        thread.join()
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(stat.resident_bytes() - resident) < 16 << 20


def test_a_closed_or_replaced_descriptor_is_opened_again(tmp_path):
    stat = SelfStat()
    before = stat.threads()
    os.close(stat._fd)  # as a block closing every descriptor would
    assert stat.threads() == before
    os.close(stat._fd)
    decoy = tmp_path / "stat"
    decoy.write_bytes(b"1 (x) S " + b"999 " * 30)
    fd = os.open(decoy, os.O_RDONLY)  # takes the freed number
    try:
        assert stat.threads() == before
    finally:
        os.close(fd)


def test_a_forked_child_reads_its_own_process():
    stat = SelfStat()
    stat.threads()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        stat.threads()
        os.write(write, str(stat._pid == os.getpid()).encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"True"
