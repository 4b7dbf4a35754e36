"""Pure unit tests run with sockets off: under ``tests/unit/<pkg>/`` no test opens a network connection.

Every AWS call there goes to moto in memory (botocore never reaches a socket), so a connection
attempt is a test reaching something real: it fails at once, naming the address, instead of
hanging on a timeout or depending on the network. A test that needs a socket says so with
``@pytest.mark.sockets``. The flat files directly under ``tests/unit/`` (template, ASL and tool
checks) are not covered. Unix sockets (multiprocessing) stay allowed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
_NETWORK = (socket.AF_INET, socket.AF_INET6)


class SocketsOff(RuntimeError):
    """A unit test tried to open a network connection."""


def _refuse(original: Any) -> Any:
    def connect(self: socket.socket, address: Any, *args: Any) -> Any:
        if self.family in _NETWORK:
            raise SocketsOff(
                f"a unit test tried to connect to {address!r}: tests under tests/unit/<pkg>/ run with sockets off "
                "(use moto in memory, or mark the test @pytest.mark.sockets)"
            )
        return original(self, address, *args)

    return connect


@pytest.fixture(autouse=True)
def _sockets_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse network connections in the tests of a package's modules unless marked ``sockets``."""
    in_package = Path(str(request.node.path)).resolve().parent != HERE
    if in_package and request.node.get_closest_marker("sockets") is None:
        monkeypatch.setattr(socket.socket, "connect", _refuse(socket.socket.connect))
        monkeypatch.setattr(socket.socket, "connect_ex", _refuse(socket.socket.connect_ex))
    yield
