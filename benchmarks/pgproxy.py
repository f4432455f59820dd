"""A loopback TCP proxy in front of PostgreSQL that counts round trips.

It forwards bytes unchanged both ways and reads the frontend (client)
messages of the PostgreSQL wire protocol as they pass: each simple query
(``Q``, what psycopg2 sends for every statement, ``BEGIN`` and ``COMMIT``
included) and each ``Sync`` (``S``, the end of an extended-protocol exchange,
what psycopg 3 or asyncpg send) is one request the client then waits on: one
round trip.  Connect with ``sslmode=disable`` (an encrypted stream cannot be
read) and ``gssencmode=disable``.
"""

from __future__ import annotations

import contextlib
import socket
import threading

_SPECIAL_STARTUP_CODES = {80877103, 80877104, 80877102}  # SSL, GSSENC, cancel


class RoundTripCounter:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        #: Every round trip so far: the statement text, or ``<sync>``.
        self.requests: list[str] = []
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RoundTripCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)
        self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return list(self.requests[mark:])

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(
                target=self._pump, args=(upstream, client), daemon=True
            ).start()
            threading.Thread(
                target=self._read_client, args=(client, upstream), daemon=True
            ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _read_client(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        startup = True
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
                buffer += data
                while True:
                    if startup:
                        if len(buffer) < 8:
                            break
                        length = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < length:
                            break
                        code = int.from_bytes(buffer[4:8], "big")
                        buffer = buffer[length:]
                        startup = code in _SPECIAL_STARTUP_CODES
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[:1]
                    length = int.from_bytes(buffer[1:5], "big")
                    if len(buffer) < 1 + length:
                        break
                    payload = buffer[5 : 1 + length]
                    buffer = buffer[1 + length :]
                    if kind == b"Q":
                        text = payload.rstrip(b"\0").decode("utf-8", "replace")
                        with self._lock:
                            self.requests.append(" ".join(text.split()))
                    elif kind == b"S":
                        with self._lock:
                            self.requests.append("<sync>")
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def short(statement: str, words: int = 3) -> str:
    """``UPDATE tokenauth_sessions SET ...`` -> ``UPDATE tokenauth_sessions``."""
    parts = statement.split()
    if not parts:
        return statement
    head = parts[0].upper()
    keep = {"INSERT": 3, "DELETE": 3, "UPDATE": 2, "WITH": 2}.get(
        head, 1 if head in {"BEGIN", "COMMIT", "ROLLBACK"} else words
    )
    if head == "SELECT" and statement.upper().startswith("SELECT 1"):
        return "SELECT 1"
    if head == "SELECT":
        frm = statement.upper().find(" FROM ")
        if frm >= 0:
            table = (
                statement[frm + 6 :].split()[0] if statement[frm + 6 :].split() else ""
            )
            return f"SELECT ... FROM {table}"
    return " ".join(parts[:keep])
