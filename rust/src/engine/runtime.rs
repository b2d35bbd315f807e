//! The one tokio runtime of the process, shared by every engine and
//! transfer (created on first use, never torn down).

use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("ome-engine")
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the engine runtime", e))?;
    // a concurrent first call may have won the race: use whichever is stored
    let _ = RUNTIME.set(rt);
    RUNTIME
        .get()
        .ok_or_else(|| Error::InvalidInput("engine runtime unavailable".into()))
}
