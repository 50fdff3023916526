"""MODAL_TASK_ID: which runtime a block runs in, as Modal names each of its containers.

Modal gives every container a task id starting with ``ta-``, and Roboflow Inference's own tests
read ``os.environ["MODAL_TASK_ID"]`` inside a block to prove that it ran remotely. blockgate
gives each runtime one too (a local worker, an E2B sandbox's runtime server or kernel): ``ta-``
and 16 random hex digits, new for every runtime process, nothing secret or guessable in it.
"""

from __future__ import annotations

import os
import secrets

PREFIX = "ta-"


def assign_task_id() -> str:
    """A new task id for this process, set as MODAL_TASK_ID before any user code runs."""
    task_id = PREFIX + secrets.token_hex(8)  # os.urandom: a forked worker gets its own
    os.environ["MODAL_TASK_ID"] = task_id
    return task_id
