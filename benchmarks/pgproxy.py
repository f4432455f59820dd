"""A loopback TCP proxy in front of PostgreSQL that counts round trips.

It forwards bytes unchanged and reads the client's messages of the wire
protocol as they pass: each simple query (``Q``: what psycopg2 sends for
every statement, ``BEGIN`` and ``COMMIT`` included) and each ``Sync``
(``S``: the end of an extended-protocol exchange, psycopg 3 or asyncpg) is
one request the client then waits on, one round trip.  Connect with
``sslmode=disable`` and ``gssencmode=disable`` (it must read the stream).
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

_SPECIAL_STARTUP = {80877103, 80877104, 80877102}  # SSL, GSSENC, cancel


class RoundTripCounter:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        #: Every round trip so far: the statement's first words, or ``<sync>``.
        self.requests: list[str] = []
        self.stopped = threading.Event()

    def __enter__(self) -> RoundTripCounter:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except TimeoutError:
                continue
            except OSError:
                return
            upstream.settimeout(None)
            client.settimeout(None)
            for target in (self._pump, self._read_client):
                threading.Thread(
                    target=target, args=(client, upstream), daemon=True
                ).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        with suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
        _close(client, upstream)

    def _read_client(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer, startup = b"", True
        with suppress(OSError):
            while data := client.recv(65536):
                upstream.sendall(data)
                buffer += data
                while len(buffer) >= (8 if startup else 5):
                    if startup:  # length, then a code; no type byte
                        length = int.from_bytes(buffer[:4], "big")
                    else:
                        length = int.from_bytes(buffer[1:5], "big") + 1
                    if len(buffer) < length:
                        break
                    message, buffer = buffer[:length], buffer[length:]
                    if startup:
                        startup = (
                            int.from_bytes(message[4:8], "big") in _SPECIAL_STARTUP
                        )
                    elif message[:1] == b"Q":
                        words = message[5:].rstrip(b"\0").decode("utf-8", "replace")
                        self.requests.append(" ".join(words.split()[:4]))
                    elif message[:1] == b"S":
                        self.requests.append("<sync>")
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
