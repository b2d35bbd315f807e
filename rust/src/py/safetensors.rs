//! Python face of `crate::safetensors`: `TensorInfo`, `SafetensorsHeader`,
//! `MAX_HEADER_BYTES` and the three parse functions of `_core.pyi`.
//! Parsing runs with the GIL released; Python objects for the tensors are
//! built only when `.tensors` is first read, so callers that want counts
//! only (e.g. `inspect` over hundreds of shards) never pay for them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::errors::to_py_err;
use crate::error::Error;
use crate::safetensors::{self as st, HeaderError};

/// The one mapping of parser errors onto the core error type: unreadable
/// files stay `OSError`s, everything about the content is `HeaderError`.
fn to_err(py: Python<'_>, e: HeaderError) -> PyErr {
    let core = match e {
        HeaderError::Io { path, source } => Error::io(
            format!("read safetensors header of {}", path.display()),
            source,
        ),
        other => Error::Header(other.to_string()),
    };
    to_py_err(py, core)
}

#[pyclass(frozen, module = "ome_agent._core", name = "TensorInfo")]
pub(crate) struct PyTensorInfo {
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    dtype: &'static str,
    #[pyo3(get)]
    shape: Vec<u64>,
    #[pyo3(get)]
    data_offsets: (u64, u64),
    #[pyo3(get)]
    numel: u64,
}

#[pymethods]
impl PyTensorInfo {
    fn __repr__(&self) -> String {
        format!(
            "TensorInfo(name={:?}, dtype={:?}, shape={:?}, data_offsets={:?})",
            self.name, self.dtype, self.shape, self.data_offsets
        )
    }
}

impl From<&st::TensorInfo> for PyTensorInfo {
    fn from(t: &st::TensorInfo) -> Self {
        PyTensorInfo {
            name: t.name.clone(),
            dtype: t.dtype.as_str(),
            shape: t.shape.clone(),
            data_offsets: t.data_offsets,
            numel: t.numel,
        }
    }
}

#[pyclass(frozen, module = "ome_agent._core", name = "SafetensorsHeader")]
pub(crate) struct PySafetensorsHeader {
    inner: st::SafetensorsHeader,
    tensors: PyOnceLock<Vec<Py<PyTensorInfo>>>,
}

#[pymethods]
impl PySafetensorsHeader {
    #[getter]
    fn header_size(&self) -> u64 {
        self.inner.header_size
    }

    #[getter]
    fn data_size(&self) -> u64 {
        self.inner.data_size
    }

    #[getter]
    fn parameter_count(&self) -> u128 {
        self.inner.parameter_count
    }

    /// A fresh list each time (the header is immutable); the `TensorInfo`
    /// objects themselves are created once.
    #[getter]
    fn tensors(&self, py: Python<'_>) -> PyResult<Vec<Py<PyTensorInfo>>> {
        let cached = self.tensors.get_or_try_init(py, || {
            self.inner
                .tensors
                .iter()
                .map(|t| Py::new(py, PyTensorInfo::from(t)))
                .collect::<PyResult<Vec<_>>>()
        })?;
        Ok(cached.iter().map(|t| t.clone_ref(py)).collect())
    }

    #[getter]
    fn metadata(&self) -> Option<BTreeMap<String, String>> {
        self.inner.metadata.clone()
    }

    #[getter]
    fn parameters_by_dtype(&self) -> BTreeMap<&'static str, u128> {
        self.inner
            .parameters_by_dtype
            .iter()
            .map(|(d, n)| (d.as_str(), *n))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "SafetensorsHeader(tensors={}, parameter_count={}, data_size={}, header_size={})",
            self.inner.tensors.len(),
            self.inner.parameter_count,
            self.inner.data_size,
            self.inner.header_size
        )
    }
}

impl From<st::SafetensorsHeader> for PySafetensorsHeader {
    fn from(inner: st::SafetensorsHeader) -> Self {
        PySafetensorsHeader {
            inner,
            tensors: PyOnceLock::new(),
        }
    }
}

/// Parse the header of a local file (reads only the header bytes).
#[pyfunction]
fn read_safetensors_header(py: Python<'_>, path: PathBuf) -> PyResult<PySafetensorsHeader> {
    py.detach(|| st::read_header(&path))
        .map(PySafetensorsHeader::from)
        .map_err(|e| to_err(py, e))
}

/// Parse from the file's first bytes (8-byte length + JSON), e.g. from a
/// range request. `file_size` enables the out-of-range offset checks.
#[pyfunction]
#[pyo3(signature = (data, file_size = None))]
fn parse_safetensors_header(
    py: Python<'_>,
    data: &[u8],
    file_size: Option<u64>,
) -> PyResult<PySafetensorsHeader> {
    py.detach(|| st::parse_header(data, file_size))
        .map(PySafetensorsHeader::from)
        .map_err(|e| to_err(py, e))
}

/// Total bytes (8 + JSON length) needed to parse; validates the length.
#[pyfunction]
fn safetensors_header_length(py: Python<'_>, prefix: &[u8]) -> PyResult<u64> {
    st::header_length(prefix).map_err(|e| to_err(py, e))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTensorInfo>()?;
    m.add_class::<PySafetensorsHeader>()?;
    m.add("MAX_HEADER_BYTES", st::MAX_HEADER_BYTES)?;
    m.add_function(wrap_pyfunction!(read_safetensors_header, m)?)?;
    m.add_function(wrap_pyfunction!(parse_safetensors_header, m)?)?;
    m.add_function(wrap_pyfunction!(safetensors_header_length, m)?)?;
    Ok(())
}
