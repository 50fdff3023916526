"""This process's thread count and resident memory, from one /proc/self/stat descriptor kept
open and read again (pread) after every request: an open, read and close of statm plus a
listing of /proc/self/task cost tens of microseconds a request, one pread a few.

The descriptor is reopened when the process is not the one that opened it (a worker forked
from the zygote) or when it no longer is that file (a block closed or replaced it).
"""

from __future__ import annotations

import os

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# Fields of /proc/<pid>/stat counted after the command's closing parenthesis (state is 0).
_THREADS = 17  # num_threads, field 20
_RSS_PAGES = 21  # rss, field 24


class SelfStat:
    def __init__(self) -> None:
        self._fd = -1
        self._pid = -1
        self._identity: tuple[int, int] | None = None

    def _fields(self) -> list[bytes]:
        fd = self._fd
        try:
            status = os.fstat(fd) if fd >= 0 else None
        except OSError:
            status = None  # closed under us
        ours = status is not None and (status.st_dev, status.st_ino) == self._identity
        if not ours or self._pid != os.getpid():
            if ours:
                os.close(fd)  # the parent's file, inherited across a fork
            # Not ours any more (closed, or its number reused): left alone, never closed.
            fd = self._fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
            status = os.fstat(fd)
            self._pid, self._identity = os.getpid(), (status.st_dev, status.st_ino)
        text = os.pread(fd, 4096, 0)
        return text[text.rindex(b")") + 2 :].split()

    def threads(self) -> int:
        """Threads of this process now; 1 if /proc cannot say."""
        try:
            return int(self._fields()[_THREADS])
        except (OSError, ValueError, IndexError):
            return 1

    def resident_bytes(self) -> int:
        """Resident memory of this process now; 0 if /proc cannot say."""
        try:
            return int(self._fields()[_RSS_PAGES]) * _PAGE_BYTES
        except (OSError, ValueError, IndexError):
            return 0


SELF = SelfStat()
