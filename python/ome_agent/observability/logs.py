"""One line per event on stderr: ``time level logger message key=value ...``
(docs/architecture.md, layer 0: observability; set up by every long-running command).

``extra`` fields become ``key=value`` pairs, newlines are folded so a hostile value
cannot forge a line, and client libraries that log request headers at DEBUG are kept
at WARNING so a token never reaches the log.
"""

from __future__ import annotations

import logging
import sys
import time

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class OneLineFormatter(logging.Formatter):
    """``2026-01-01T00:00:00Z INFO logger message key=value ...`` with ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        parts = [when, record.levelname, record.name, _quote(record.getMessage())]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_quote(str(value))}")
        if record.exc_info and record.levelno >= logging.ERROR:
            exc = record.exc_info[1]
            parts.append(f"exception={_quote(f'{type(exc).__name__}: {exc}')}")
        return " ".join(parts)


def _quote(text: str) -> str:
    text = text.replace("\n", " ")
    return f'"{text}"' if (" " in text or "=" in text or not text) else text


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # client libraries log request details (headers included) at DEBUG: keep them quiet
    for noisy in ("urllib3", "huggingface_hub", "filelock", "kubernetes_asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["OneLineFormatter", "configure_logging"]
