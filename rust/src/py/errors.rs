//! Python exception types of `ome_agent._core` and the one place where Rust
//! errors become Python exceptions. They subclass builtins so callers can
//! catch `ConnectionError` / `ValueError` without knowing the engine.

use pyo3::exceptions::{PyConnectionError, PyException, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(_core, EngineError, PyException);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EngineError", py.get_type::<EngineError>())?;
    let _ = (
        py.get_type::<PyConnectionError>(),
        py.get_type::<PyValueError>(),
    );
    Ok(())
}
