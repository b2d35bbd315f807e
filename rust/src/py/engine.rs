//! Python classes `Engine`, `Transfer`, `TransferResult` over `crate::engine`.

use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
