//! The PyO3 edge: everything `ome_agent._core` exposes, and nothing else.
//! Each submodule registers its own classes and functions.

use pyo3::prelude::*;

mod digest;
mod engine;
mod errors;
mod safetensors;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    engine::register(m)?;
    digest::register(m)?;
    safetensors::register(m)?;
    Ok(())
}
