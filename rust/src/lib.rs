//! ome-agent's native core: the byte-moving and byte-checking layer under the
//! Python agent (docs/architecture.md, layer 1).
//!
//! Pure Rust modules know nothing of Python; `py` is the only PyO3 edge and
//! is what `ome_agent._core` exposes.

pub mod engine;
pub mod error;
pub mod safetensors;

mod py;
