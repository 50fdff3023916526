"""MODAL_TASK_ID: ``ta-`` and 16 random hex digits, new per runtime process (also after a fork)."""

import os
import re

from runtime.task_id import assign_task_id


def test_a_task_id_is_set_for_the_blocks_of_this_process(monkeypatch):
    monkeypatch.delenv("MODAL_TASK_ID", raising=False)
    task_id = assign_task_id()
    assert re.fullmatch(r"ta-[0-9a-f]{16}", task_id)
    assert os.environ["MODAL_TASK_ID"] == task_id


def test_a_forked_worker_gets_its_own(monkeypatch):
    monkeypatch.delenv("MODAL_TASK_ID", raising=False)
    parent = assign_task_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a worker forked from the zygote
        os.write(write, assign_task_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child.startswith("ta-")
    assert child != parent
