"""Standalone mode's main loop: manifests in, reconcile core, state file out (adapter, layer 5).

``once``: reconcile until nothing is left to do (retries of failed models are not
waited for), then return 0, or 1 if a model failed, a manifest was unusable or a
removal was refused. The state file is written in every case, with the manifest
errors under ``rejected``.
Otherwise the manifests directory is polled (names, mtimes and sizes every
``poll_interval`` seconds) and every change is handed to the core as a full relist;
SIGTERM or SIGINT stops it (downloads cancelled, partial files kept for a resume),
exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from pathlib import Path

from ome_agent.adapters.standalone.documents import DEFAULT_LIMITS, ManifestLimits
from ome_agent.adapters.standalone.manifests import fingerprint, load_manifests
from ome_agent.adapters.standalone.secrets import StandaloneSecretReader
from ome_agent.adapters.standalone.state import StateFileReporter
from ome_agent.api import KINDS
from ome_agent.errors import BadInput
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.options import AgentOptions

log = logging.getLogger("ome_agent.standalone")


async def run_standalone(
    options: AgentOptions,
    *,
    manifests: Path,
    node_labels: Mapping[str, str],
    state_file: Path,
    once: bool,
    poll_interval: float = 2.0,
    limits: ManifestLimits = DEFAULT_LIMITS,
) -> int:
    reporter = StateFileReporter(state_file, options.node_name)
    secrets = StandaloneSecretReader()
    reconciler = Reconciler(options, reporter, secrets)
    loaded = load_manifests(manifests, limits)  # first: it names a missing directory clearly
    secrets.update(loaded.secrets)
    seen = fingerprint(manifests)
    for error in loaded.errors:
        log.error("manifest rejected", extra={"error": error})
    reporter.set_rejected(loaded.errors)
    reconciler.set_node(options.node_name, node_labels)
    reconciler.replace_all(KINDS, loaded.resources)
    await reconciler.start()
    if once:
        try:
            ok = await reconciler.run_until_idle()
        finally:
            await reporter.flush()
        failed = sorted(str(k) for k, s in reconciler.states.items() if s.value == "Failed")
        if failed:
            log.error("models failed", extra={"models": ",".join(failed)})
        return 0 if ok and not loaded.errors else 1
    await reporter.flush()  # the state file exists from the start, models or not
    worker = asyncio.create_task(reconciler.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not worker.done() and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
            if stop.is_set():
                break
            now = fingerprint(manifests)
            if now == seen:
                continue
            seen = now
            try:
                fresh = load_manifests(manifests, limits)
            except BadInput as e:  # the directory vanished: keep what runs, say why
                log.error("manifests unreadable", extra={"error": str(e)})
                continue
            for error in fresh.errors:
                log.error("manifest rejected", extra={"error": error})
            reporter.set_rejected(fresh.errors)
            secrets.update(fresh.secrets)
            reconciler.replace_all(KINDS, fresh.keeping(loaded))
            loaded = fresh
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        reconciler.close()  # run() returns once the handlers in flight are cancelled
        await worker
        await reporter.flush()
    return 0
