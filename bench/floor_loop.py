"""The floor's Python end (bench/floors.ts): a minimal loop on a Unix socket that answers
each length-prefixed request with a fixed small reply. No decoding, no sandbox: what one
IPC round trip to a Python process costs, and nothing more.

    python floor_loop.py SOCKET_PATH
"""

from __future__ import annotations

import socket
import struct
import sys

REPLY = b"\xa1ax\x01"  # CBOR {"x": 1}: what the no-op block answers
FRAME = struct.pack(">I", len(REPLY)) + REPLY


def main() -> None:
    connection = socket.socket(socket.AF_UNIX)
    connection.connect(sys.argv[1])
    reader = connection.makefile("rb")
    while True:
        header = reader.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack(">I", header)
        if len(reader.read(size)) < size:
            return
        connection.sendall(FRAME)


if __name__ == "__main__":
    main()
