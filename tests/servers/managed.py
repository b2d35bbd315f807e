"""One context-manager shape for every test server (test infrastructure).

A server says how it starts and stops; ``with Server(...) as s:`` then starts it and
stops it on the way out, also when the block fails. A server started by a function
goes to a fixture through ``yield from stop_after(server)``, one the fixture starts
through ``yield from up_while_used(...)``; a server run from the command line parses
``command_line(...)``'s options and stays up through ``wait_for_interrupt()``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Stoppable)
_T = TypeVar("_T")


def stop_after(server: _S) -> Iterator[_S]:
    """For a fixture: hand out an already started server, stop it afterwards (also
    when the tests using it fail)."""
    try:
        yield server
    finally:
        server.stop()


def up_while_used(value: _T, up: Callable[[], object], down: Callable[[], object]) -> Iterator[_T]:
    """For a fixture: ``up()``, hand out ``value``, then ``down()``: also when ``up``
    failed half-way (``down`` ends what it started) or the tests using it fail."""
    try:
        up()
        yield value
    finally:
        down()


def command_line(description: str, root_help: str) -> argparse.ArgumentParser:
    """The parser of a server run from the command line, with the options every one
    takes: ``--root`` (what it serves; ``root_help`` says how), ``--host``, ``--port``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", required=True, type=Path, help=root_help)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser


def wait_for_interrupt() -> None:
    """Keep a server run from the command line up until Ctrl-C."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
