"""One context-manager shape for every test server (test infrastructure).

A server says how it starts and stops; ``with Server(...) as s:`` then starts it and
stops it on the way out, also when the block fails. A server started by a function
goes to a fixture through ``yield from stop_after(server)``; a server run from the
command line stays up through ``wait_for_interrupt()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self, TypeVar


class Managed:
    """Base of the test servers: ``start`` returns the running server, ``stop`` ends
    it and is safe to call twice."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Stoppable)


def stop_after(server: _S) -> Iterator[_S]:
    """For a fixture: hand out an already started server, stop it afterwards (also
    when the tests using it fail)."""
    try:
        yield server
    finally:
        server.stop()


def wait_for_interrupt() -> None:
    """Keep a server run from the command line up until Ctrl-C."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
