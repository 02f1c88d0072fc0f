"""Things at a RAY_ADDRESS that are no Ray head node: TCP servers on 127.0.0.1 for the network-wait tests and bench."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def server(kind: str) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that answers each connection as `kind` says ('refused': a port nobody listens on);
    its port. Stopped on exit."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    if kind == "refused":
        port = listening.getsockname()[1]
        listening.close()
        yield port
        return
    listening.listen(16)
    listening.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():  # bounded: each accept waits 0.2 s, and the test sets `stop`
            try:
                connection, _ = listening.accept()
            except OSError:
                continue
            if kind == "garbage":
                connection.sendall(b"\xde\xad\xbe\xef not a frame " * 8)
            elif kind == "http":
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    connection.recv(64)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif kind == "grpc":  # the first thing an HTTP/2 server says: an empty SETTINGS frame
                connection.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            elif kind == "close":
                connection.close()
                continue
            held.append(connection)  # "silent": accepted, never a byte

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listening.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listening.close()
