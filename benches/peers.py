"""Peer downloaders driven as separate processes: ``python -m benches.peers KIND ...``.

Where it sits: each invocation is one measured run of ``benches.run``. The
calls mirror what huggingface_hub 0.36 does by default, so the comparison is
against what users actually get; ``snapshot_download`` is also run by the newest
huggingface_hub's interpreter (``.venv-hub-latest``), where the same call is its default:

- ``hf_transfer URL DEST``: ``hf_transfer.download`` with huggingface_hub's
  arguments (100 parallel files, 10 MiB chunks, parallel_failures=3, max_retries=5);
- ``hf_http_get URL DEST``: huggingface_hub's plain (requests) download path;
- ``snapshot_download REPO DEST``: a whole repo with the default 8 workers
  (``HF_ENDPOINT`` from the environment; ``HF_HUB_ENABLE_HF_TRANSFER`` decides
  whether it goes through hf_transfer).
"""

from __future__ import annotations

import argparse
import sys


def _hf_transfer(url: str, dest: str) -> None:
    import hf_transfer

    hf_transfer.download(
        url=url,
        filename=dest,
        max_files=100,
        chunk_size=10 * 1024 * 1024,
        headers=None,
        parallel_failures=3,
        max_retries=5,
    )


def _hf_http_get(url: str, dest: str) -> None:
    from huggingface_hub.file_download import http_get

    with open(dest, "wb") as f:
        http_get(url, f)


def _snapshot_download(repo: str, dest: str) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo, local_dir=dest, max_workers=8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.peers")
    p.add_argument("kind", choices=["hf_transfer", "hf_http_get", "snapshot_download"])
    p.add_argument("source", help="URL, or repo id for snapshot_download")
    p.add_argument("dest", help="file, or directory for snapshot_download")
    a = p.parse_args(argv)
    {
        "hf_transfer": _hf_transfer,
        "hf_http_get": _hf_http_get,
        "snapshot_download": _snapshot_download,
    }[a.kind](a.source, a.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
