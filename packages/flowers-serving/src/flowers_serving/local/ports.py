"""Ports: a free one, who holds a busy one, and binding one so that a busy port is said at once and clearly."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
import time
from typing import Final

__all__ = ["HANDSHAKE_PATH", "SERVICE", "PortInUse", "bind_listener", "free_port", "probe_owner"]

#: Every front answers ``GET`` here with who it is, so a port held by another
#: ``flowers-serve`` can be told apart from a foreign program.
HANDSHAKE_PATH: Final = "/.well-known/flowers-local"
SERVICE: Final = "flowers-local"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortInUse(OSError):
    """The port is taken; ``option`` is the command-line option that changes it."""

    def __init__(self, host: str, port: int, option: str, owner: str) -> None:
        self.host, self.port, self.option, self.owner = host, port, option, owner
        hint = f"choose another port with {option} PORT" if option else "choose another port"
        self.message = f"port {port} on {host} is already in use {owner}; stop it or {hint}"
        super().__init__(errno.EADDRINUSE, self.message)

    def __str__(self) -> str:
        return self.message


def probe_owner(host: str, port: int, timeout: float = 0.5) -> str | None:
    """Who listens on ``host:port``: a description, or None when nothing accepts a connection.

    Asks our handshake path: another ``flowers-serve`` says so (and its pid);
    anything else, answering or not, is "another program". Bounded by ``timeout``
    for the connection and again for the answer.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    with sock:
        try:
            sock.sendall(f"GET {HANDSHAKE_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            deadline = time.monotonic() + timeout
            data = b""
            while len(data) < 4096 and (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        else:
            _head, _, body = data.partition(b"\r\n\r\n")
            with contextlib.suppress(ValueError):
                info = json.loads(body)
                if isinstance(info, dict) and info.get("service") == SERVICE:
                    return f"by another flowers-serve (pid {info.get('pid')})"
    return "by another program"


def bind_listener(host: str, port: int, option: str) -> socket.socket:
    # Something already answering is busy whatever bind() would say: on macOS and
    # Windows a socket may bind a specific address under another's wildcard listener.
    if port and (owner := probe_owner(host, port)) is not None:
        raise PortInUse(host, port, option, owner)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sys.platform == "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
        else:
            # Rebinding right after a restart must not wait out TIME_WAIT; a live listener still refuses us.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUse(host, port, option, probe_owner(host, port) or "by another program") from None
        raise
    return sock
