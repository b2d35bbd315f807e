"""How the node agent is configured (docs/architecture.md, layer 4: input of the reconcile core).

One frozen :class:`AgentOptions`, built by the CLI (``ome-agent run``) from its flags
and handed to the reconcile core and to the adapters, so each setting has one
meaning whichever mode runs. Checked on construction: a bad value is a
:class:`~ome_agent.errors.BadInput` naming the flag and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ome_agent.errors import BadInput
from ome_agent.transfer.settings import TransferSettings

# where the agent keeps its own bookkeeping, under the first models root
STATE_DIR_NAME = ".ome-agent"


@dataclass(frozen=True)
class AgentOptions:
    node_name: str
    # ``--models-root-dir`` (repeatable). Models without an absolute storage.path go
    # under the first; files are only ever written or removed inside one of these.
    models_roots: tuple[Path, ...]
    namespace: str = "ome"  # the agent's namespace: Secrets of ClusterBaseModels live here
    download_workers: int = 2  # ``--num-download-worker``: models fetched at once
    transfer: TransferSettings = field(default_factory=TransferSettings)
    progress_interval: float = 5.0  # seconds between two progress reports of one model
    retry_base: float = 5.0  # first retry of a Failed model after this many seconds
    retry_cap: float = 600.0  # retries back off exponentially up to this
    # periodic re-verification of Ready models (sizes and mtimes against the
    # manifest); None = off: a restart already confirms every model from disk
    verify_interval: float | None = None
    # ``--scrub-rate``: bytes per second the background scrub may read over all Ready
    # models, hashing them against their manifests (``reconcile.scrub``); 0 = off
    scrub_rate: float = 10e6
    # ``--local-source-dir`` (repeatable): folders a local-path storageUri may read
    # besides the models roots. A model's author chooses storageUri, and the model's
    # path may be mounted into their pods: without this limit a BaseModel could copy
    # any file of the node (kubelet credentials, say) to where its pods can read it.
    local_source_dirs: tuple[Path, ...] = ()
    # who writes this node's manifests: an agent removes only files whose manifest it
    # owns, so two agents that used one root in turn never delete each other's models
    # (standalone: its manifests folder; cluster mode: "cluster")
    owner: str = "cluster"

    def __post_init__(self) -> None:
        if not self.node_name:
            raise BadInput("--node-name is empty: set it or the NODE_NAME environment variable")
        if not self.models_roots:
            raise BadInput("--models-root-dir: give at least one directory for the models")
        roots = tuple(Path(r) for r in self.models_roots)
        for r in roots:
            if not r.is_absolute():
                raise BadInput(f"--models-root-dir {r}: give an absolute path")
        object.__setattr__(self, "models_roots", roots)
        sources = tuple(Path(d) for d in self.local_source_dirs)
        for d in sources:
            if not d.is_absolute():
                raise BadInput(f"--local-source-dir {d}: give an absolute path")
        object.__setattr__(self, "local_source_dirs", sources)
        if not self.namespace:
            raise BadInput("--namespace is empty: give the agent's namespace, e.g. ome")
        if not 1 <= self.download_workers <= 64:
            raise BadInput(f"--num-download-worker {self.download_workers}: give 1 to 64")
        if self.progress_interval <= 0:
            raise BadInput("progress interval must be positive (seconds)")
        if not 0 < self.retry_base <= self.retry_cap:
            raise BadInput("retry base must be positive and at most the retry cap (seconds)")
        if not self.scrub_rate >= 0:  # NaN too
            raise BadInput(f"--scrub-rate {self.scrub_rate / 1e6:g}: give MB/s, 0 or more (0: off)")
        if self.verify_interval is not None and self.verify_interval <= 0:
            raise BadInput("verify interval must be positive (seconds), or None for off")

    @property
    def default_root(self) -> Path:
        """Where models without an absolute storage.path go."""
        return self.models_roots[0]

    @property
    def state_dir(self) -> Path:
        """The agent's bookkeeping (manifests, staging), never inside a model directory."""
        return self.models_roots[0] / STATE_DIR_NAME
