"""One context-manager shape for every test server (test infrastructure).

A server says how it starts and stops; ``with Server(...) as s:`` then starts it and
stops it on the way out, also when the block fails.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
