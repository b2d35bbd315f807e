//! Python exception types of `ome_agent._core` and the one place where Rust
//! errors become Python exceptions. They subclass builtins so callers can
//! catch `ConnectionError` / `ValueError` without knowing the engine.
//!
//! `create_exception!` allows one base only, while the contract
//! (`_core.pyi`) needs `TransferError(EngineError, ConnectionError)` and
//! `ChecksumMismatch(EngineError, ValueError)`; the classes are therefore
//! built once per interpreter with `type(name, bases, dict)`.

use pyo3::exceptions::{PyConnectionError, PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::Error;

struct Types {
    engine: Py<PyType>,
    transfer: Py<PyType>,
    http_status: Py<PyType>,
    checksum: Py<PyType>,
    cancelled: Py<PyType>,
    header: Py<PyType>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

fn make_type(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: &[&Bound<'_, PyType>],
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "ome_agent._core")?;
    dict.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let ty = py
        .get_type::<PyType>()
        .call1((name, bases, dict))?
        .cast_into::<PyType>()?;
    Ok(ty.unbind())
}

fn build(py: Python<'_>) -> PyResult<Types> {
    let exc = py.get_type::<PyException>();
    let conn = py.get_type::<PyConnectionError>();
    let val = py.get_type::<PyValueError>();
    let engine = make_type(
        py,
        "EngineError",
        "Base of every error raised by the engine.",
        &[&exc],
    )?;
    let eb = engine.bind(py).clone();
    let transfer = make_type(
        py,
        "TransferError",
        "Network failure that outlived the retries (resets, stalls, 5xx, ...).",
        &[&eb, &conn],
    )?;
    let tb = transfer.bind(py).clone();
    let http_status = make_type(
        py,
        "HttpStatusError",
        "The server answered with a status that is not retried (e.g. 401/403/404).",
        &[&tb],
    )?;
    let checksum = make_type(
        py,
        "ChecksumMismatch",
        "A digest of the received bytes differs from the expected one.\n\n\
         The file never appears under its final name.",
        &[&eb, &val],
    )?;
    let cancelled = make_type(
        py,
        "Cancelled",
        "The transfer was cancelled (``Transfer.cancel`` or a signal).",
        &[&eb],
    )?;
    let header = make_type(
        py,
        "HeaderError",
        "A safetensors header is malformed or hostile.",
        &[&eb, &val],
    )?;
    Ok(Types {
        engine,
        transfer,
        http_status,
        checksum,
        cancelled,
        header,
    })
}

fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || build(py))
}

/// Instantiate exception class `ty` with `args` and return it as a `PyErr`,
/// plus the instance so attributes can be set.
fn instantiate<'py>(py: Python<'py>, ty: &Py<PyType>, msg: String) -> PyResult<Bound<'py, PyAny>> {
    ty.bind(py).call1((msg,))
}

/// The typed fields of a `TransferError` (see `_core.pyi`): callers decide
/// on them, never on the message.
fn set_network(
    o: &Bound<'_, PyAny>,
    kind: &str,
    status: Option<u16>,
    retryable: bool,
    url: String,
) -> PyResult<()> {
    o.setattr("kind", kind)?;
    o.setattr("status", status)?;
    o.setattr("retryable", retryable)?;
    o.setattr("url", url)
}

fn convert(py: Python<'_>, err: Error) -> PyResult<PyErr> {
    let t = types(py)?;
    let msg = err.to_string();
    let obj = match err {
        Error::InvalidInput(m) => return Ok(PyValueError::new_err(m)),
        Error::Io { source, .. } => {
            // OSError(errno, strerror) picks the matching subclass
            // (FileNotFoundError, PermissionError, ...) by itself.
            return Ok(match source.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, msg)),
                None => PyOSError::new_err(msg),
            });
        }
        // every try failed, or a failure no retry heals: `kind` says which
        Error::Transfer { url, kind, .. } => {
            let o = instantiate(py, &t.transfer, msg)?;
            set_network(&o, kind.name(), kind.status(), kind.retried(), url)?;
            o
        }
        // a status that is not retried
        Error::HttpStatus { status, url } => {
            let o = instantiate(py, &t.http_status, msg)?;
            set_network(&o, "status", Some(status), false, url)?;
            o
        }
        Error::ChecksumMismatch {
            algorithm,
            expected,
            actual,
        } => {
            let o = instantiate(py, &t.checksum, msg)?;
            o.setattr("algorithm", algorithm)?;
            o.setattr("expected", expected)?;
            o.setattr("actual", actual)?;
            o
        }
        Error::Cancelled => instantiate(py, &t.cancelled, msg)?,
        Error::Header(_) => instantiate(py, &t.header, msg)?,
    };
    Ok(PyErr::from_value(obj))
}

/// The one conversion from engine errors to Python exceptions.
pub(crate) fn to_py_err(py: Python<'_>, err: Error) -> PyErr {
    convert(py, err).unwrap_or_else(|e| e)
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        Python::attach(|py| to_py_err(py, err))
    }
}

/// `HeaderError(msg)` for the safetensors edge.
#[allow(dead_code)]
pub(crate) fn header_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    to_py_err(py, Error::Header(msg.into()))
}

/// `EngineError` class, for callers that need the base type itself.
#[allow(dead_code)]
pub(crate) fn engine_error_type(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(types(py)?.engine.bind(py).clone())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let t = types(py)?;
    m.add("EngineError", t.engine.bind(py))?;
    m.add("TransferError", t.transfer.bind(py))?;
    m.add("HttpStatusError", t.http_status.bind(py))?;
    m.add("ChecksumMismatch", t.checksum.bind(py))?;
    m.add("Cancelled", t.cancelled.bind(py))?;
    m.add("HeaderError", t.header.bind(py))?;
    Ok(())
}
