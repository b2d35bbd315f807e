//! Python classes `Engine`, `Transfer`, `TransferResult` over `crate::engine`.
//!
//! Every call that touches the network runs on the engine's tokio runtime
//! while the calling thread waits *without* the GIL, waking every 100 ms to
//! run Python signal handlers: Ctrl-C raises KeyboardInterrupt here and
//! cancels the work.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use super::errors::to_py_err;
use crate::engine::file::check_dest_length;
use crate::engine::runtime::runtime;
use crate::engine::sign::{RequestHeaders, Signer};
use crate::engine::spec::MAX_UNKNOWN_SIZE;
use crate::engine::transfer::{self, TransferOutcome, TransferSpec, TransferState};
use crate::engine::{simple, Engine, EngineConfig};
use crate::error::{redact_url, Error, TransferKind};

const POLL: Duration = Duration::from_millis(100);

fn invalid(msg: impl Into<String>) -> PyErr {
    Python::attach(|py| to_py_err(py, Error::InvalidInput(msg.into())))
}

/// Run `fut` on the runtime; wait without the GIL; on a Python signal call
/// `interrupt` and give the task a moment to wind down, then re-raise.
fn block_on<T, F>(py: Python<'_>, fut: F, interrupt: impl FnOnce()) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let rt = runtime().map_err(|e| to_py_err(py, e))?;
    let (tx, rx) = mpsc::channel();
    let handle = rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    // the receiver is moved in and out of each GIL-free wait (it is Send, not Sync)
    let mut rx = rx;
    loop {
        let (r, back) = py.detach(move || (rx.recv_timeout(POLL), rx));
        rx = back;
        match r {
            Ok(r) => return r.map_err(|e| to_py_err(py, e)),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(to_py_err(
                    py,
                    Error::Transfer {
                        url: String::new(),
                        kind: TransferKind::Internal,
                        message: "the engine task ended without a result".into(),
                    },
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(sig) = py.check_signals() {
                    interrupt();
                    // orderly shutdown (journal flushed) before we return;
                    // a task that does not stop in time is aborted
                    if py.detach(move || rx.recv_timeout(Duration::from_secs(5)).is_err()) {
                        handle.abort();
                    }
                    return Err(sig);
                }
            }
        }
    }
}

fn parse_url(url: &str) -> PyResult<Url> {
    let u = Url::parse(url).map_err(|e| {
        invalid(format!(
            "url: {e} ({}); pass an absolute http:// or https:// URL",
            redact_url(url)
        ))
    })?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(invalid(format!(
            "url: scheme {:?} is not supported; pass an http:// or https:// URL",
            u.scheme()
        )));
    }
    Ok(u)
}

/// Mapping[str, str] → HeaderMap; values are never echoed (they may be tokens).
fn headers_from(h: &Bound<'_, PyAny>) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::new();
    let items = h
        .call_method0("items")
        .map_err(|_| "pass a mapping of str to str".to_string())?;
    let items = items
        .try_iter()
        .map_err(|_| "pass a mapping of str to str".to_string())?;
    for item in items {
        let (k, v): (String, String) = item
            .and_then(|i| i.extract())
            .map_err(|_| "every name and value must be a str".to_string())?;
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{k:?} is not a valid header name"))?;
        let value = HeaderValue::from_str(&v).map_err(|_| {
            format!("the value of {k:?} contains characters not allowed in a header")
        })?;
        out.append(name, value);
    }
    Ok(out)
}

fn to_headers(headers: Option<&Bound<'_, PyAny>>) -> PyResult<HeaderMap> {
    match headers {
        Some(h) if !h.is_none() => headers_from(h).map_err(|e| invalid(format!("headers: {e}"))),
        _ => Ok(HeaderMap::new()),
    }
}

/// A Python callable returning request headers → a `Signer` the engine calls
/// before every request, from its own threads: the GIL is taken for the call
/// only. Failures name the exception type, never its text or a header value.
fn to_signer(sign: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Signer>> {
    let Some(f) = sign.filter(|f| !f.is_none()) else {
        return Ok(None);
    };
    if !f.is_callable() {
        return Err(invalid(
            "sign: pass a callable taking no argument and returning a mapping of str to str",
        ));
    }
    let f: Py<PyAny> = f.clone().unbind();
    Ok(Some(Signer::new(move || {
        Python::attach(|py| {
            let out = f.bind(py).call0().map_err(|e| {
                let ty = e
                    .get_type(py)
                    .qualname()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "exception".into());
                format!("signing the request failed: {ty}")
            })?;
            headers_from(&out)
                .map_err(|e| format!("signing the request failed: the returned headers: {e}"))
        })
    })))
}

fn request_headers(
    headers: Option<&Bound<'_, PyAny>>,
    sign: Option<&Bound<'_, PyAny>>,
) -> PyResult<RequestHeaders> {
    Ok(RequestHeaders::new(to_headers(headers)?, to_signer(sign)?))
}

fn non_negative(name: &str, v: i64) -> PyResult<u64> {
    u64::try_from(v).map_err(|_| invalid(format!("{name} must be >= 0, got {v}")))
}

fn positive_secs(name: &str, v: f64) -> PyResult<Duration> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(format!(
            "{name} must be a positive number of seconds, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

fn hex_digest(name: &str, v: Option<String>, len: usize) -> PyResult<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim().to_ascii_lowercase();
    if v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "{name}: expected {len} hexadecimal characters, got {:?}",
            v.chars().take(80).collect::<String>()
        )));
    }
    Ok(Some(v))
}

/// `(part_size, "hex-N")` as S3/OCI give it for a multipart upload.
fn multipart_digest((part_size, digest): (i64, String)) -> PyResult<(u64, String)> {
    if part_size < 1 {
        return Err(invalid(format!(
            "md5_multipart: the part size must be at least 1, got {part_size}"
        )));
    }
    let d = digest.trim().to_ascii_lowercase();
    let ok = d.split_once('-').is_some_and(|(h, n)| {
        h.len() == 32
            && h.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    if !ok {
        return Err(invalid(format!(
            "md5_multipart: expected \"<32 hex digits>-<number of parts>\", got {:?}",
            d.chars().take(80).collect::<String>()
        )));
    }
    Ok((part_size as u64, d))
}

/// One process-wide HTTP client: keep-alive pool, TLS roots, proxies.
#[pyclass(name = "Engine", module = "ome_agent._core", frozen)]
pub(crate) struct PyEngine {
    inner: Arc<Engine>,
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (
        *,
        ca_bundle = None,
        max_connections = 64,
        max_in_flight_bytes = 128 * 1024 * 1024,
        connect_timeout = 10.0,
        stall_timeout = 30.0,
        speed_limit = 1024,
        speed_time = 30.0,
        max_retries = 8,
        user_agent = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ca_bundle: Option<PathBuf>,
        max_connections: i64,
        max_in_flight_bytes: i64,
        connect_timeout: f64,
        stall_timeout: f64,
        speed_limit: i64,
        speed_time: f64,
        max_retries: i64,
        user_agent: Option<String>,
    ) -> PyResult<Self> {
        if max_connections < 1 {
            return Err(invalid(format!(
                "max_connections must be at least 1, got {max_connections}"
            )));
        }
        let cfg = EngineConfig {
            ca_bundle,
            max_connections: max_connections as usize,
            max_in_flight_bytes: non_negative("max_in_flight_bytes", max_in_flight_bytes)?,
            connect_timeout: positive_secs("connect_timeout", connect_timeout)?,
            stall_timeout: positive_secs("stall_timeout", stall_timeout)?,
            speed_limit: non_negative("speed_limit", speed_limit)?,
            speed_time: positive_secs("speed_time", speed_time)?,
            max_retries: u32::try_from(max_retries).map_err(|_| {
                invalid(format!(
                    "max_retries must be between 0 and 2^32-1, got {max_retries}"
                ))
            })?,
            user_agent,
        };
        // building the client loads the system trust store: no GIL needed
        let inner = py
            .detach(|| Engine::new(cfg))
            .map_err(|e| to_py_err(py, e))?;
        Ok(Self { inner })
    }

    /// GET bytes [start, start+length) (fewer at end of file); retried like a range.
    #[pyo3(signature = (url, start, length, *, headers = None, sign = None))]
    #[allow(clippy::too_many_arguments)]
    fn fetch_range<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        start: i64,
        length: i64,
        headers: Option<&Bound<'py, PyAny>>,
        sign: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let url = parse_url(url)?;
        let start = non_negative("start", start)?;
        let length = non_negative("length", length)?;
        let headers = request_headers(headers, sign)?;
        let engine = self.inner.clone();
        let data = block_on(
            py,
            async move { simple::fetch_range(&engine, &url, &headers, start, length).await },
            || {},
        )?;
        Ok(PyBytes::new(py, &data))
    }

    /// Probe a URL: {"size", "etag", "last_modified", "accept_ranges", "final_url"}.
    #[pyo3(signature = (url, *, headers = None, sign = None))]
    fn head<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        headers: Option<&Bound<'py, PyAny>>,
        sign: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let url = parse_url(url)?;
        let headers = request_headers(headers, sign)?;
        let engine = self.inner.clone();
        let info = block_on(
            py,
            async move { simple::head(&engine, &url, &headers).await },
            || {},
        )?;
        let d = PyDict::new(py);
        d.set_item("size", info.size)?;
        d.set_item("etag", info.etag)?;
        d.set_item("last_modified", info.last_modified)?;
        d.set_item(
            "accept_ranges",
            if info.accept_ranges { "bytes" } else { "none" },
        )?;
        d.set_item("final_url", info.final_url)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "Engine(max_connections={}, max_in_flight_bytes={})",
            c.max_connections, c.max_in_flight_bytes
        )
    }
}

/// One URL into one destination file.
#[pyclass(name = "Transfer", module = "ome_agent._core", frozen)]
pub(crate) struct PyTransfer {
    engine: Arc<Engine>,
    spec: Arc<TransferSpec>,
    state: Arc<TransferState>,
    running: AtomicBool,
}

#[pymethods]
impl PyTransfer {
    #[new]
    #[pyo3(signature = (
        engine, url, dest, *,
        headers = None,
        expected_size = None,
        sha256 = None,
        md5 = None,
        git_sha1 = None,
        crc32c = None,
        crc64nvme = None,
        md5_multipart = None,
        expected_etag = None,
        sign = None,
        hash = true,
        xxh3 = false,
        connections = None,
        chunk_size = None,
        direct_io = None,
        resume = true,
        max_unknown_size = MAX_UNKNOWN_SIZE as i64,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        engine: &Bound<'_, PyEngine>,
        url: &str,
        dest: PathBuf,
        headers: Option<&Bound<'_, PyAny>>,
        expected_size: Option<i64>,
        sha256: Option<String>,
        md5: Option<String>,
        git_sha1: Option<String>,
        crc32c: Option<String>,
        crc64nvme: Option<String>,
        md5_multipart: Option<(i64, String)>,
        expected_etag: Option<String>,
        sign: Option<&Bound<'_, PyAny>>,
        hash: bool,
        xxh3: bool,
        connections: Option<i64>,
        chunk_size: Option<i64>,
        direct_io: Option<bool>,
        resume: bool,
        max_unknown_size: i64,
    ) -> PyResult<Self> {
        parse_url(url)?;
        if max_unknown_size < 1 {
            return Err(invalid(format!(
                "max_unknown_size must be at least 1, got {max_unknown_size}"
            )));
        }
        if dest.as_os_str().is_empty() || dest.is_dir() {
            return Err(invalid(format!(
                "dest: {:?} is a directory or empty; pass the path of the file to create",
                dest
            )));
        }
        check_dest_length(&dest)?;
        if let Some(parent) = dest.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(invalid(format!(
                    "dest: directory {} does not exist; create it first",
                    parent.display()
                )));
            }
        }
        let connections = match connections {
            Some(c) if c < 1 => {
                return Err(invalid(format!("connections must be at least 1, got {c}")))
            }
            c => c.map(|c| c as usize),
        };
        let chunk_size = match chunk_size {
            Some(c) if c < 1 => {
                return Err(invalid(format!("chunk_size must be at least 1, got {c}")))
            }
            c => c.map(|c| c as u64),
        };
        let spec = TransferSpec {
            url: url.to_string(),
            dest,
            headers: to_headers(headers)?,
            expected_size: expected_size
                .map(|v| non_negative("expected_size", v))
                .transpose()?,
            sha256: hex_digest("sha256", sha256, 64)?,
            md5: hex_digest("md5", md5, 32)?,
            git_sha1: hex_digest("git_sha1", git_sha1, 40)?,
            crc32c: hex_digest("crc32c", crc32c, 8)?,
            crc64nvme: hex_digest("crc64nvme", crc64nvme, 16)?,
            md5_multipart: md5_multipart.map(multipart_digest).transpose()?,
            expected_etag: expected_etag.filter(|e| !e.trim().is_empty()),
            sign: to_signer(sign)?,
            hash,
            xxh3,
            connections,
            chunk_size,
            direct_io,
            resume,
            max_unknown_size: Some(max_unknown_size as u64),
        };
        Ok(Self {
            engine: engine.get().inner.clone(),
            spec: Arc::new(spec),
            state: Arc::new(TransferState::default()),
            running: AtomicBool::new(false),
        })
    }

    /// Blocking; releases the GIL. Raises the errors of the module.
    fn run(&self, py: Python<'_>) -> PyResult<PyTransferResult> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(invalid("this Transfer is already running"));
        }
        let (engine, spec, state) = (self.engine.clone(), self.spec.clone(), self.state.clone());
        let cancel_state = self.state.clone();
        let r = block_on(py, transfer::run(engine, spec, state), move || {
            cancel_state.cancel.cancel()
        });
        self.running.store(false, Ordering::SeqCst);
        r.map(PyTransferResult::from)
    }

    /// Thread-safe; `run` raises `Cancelled` soon after.
    fn cancel(&self) {
        self.state.cancel.cancel();
    }

    #[getter]
    fn done_bytes(&self) -> u64 {
        self.state.progress.done()
    }

    #[getter]
    fn total_bytes(&self) -> Option<u64> {
        self.state.progress.total()
    }

    /// Bytes per second over the last few seconds.
    #[getter]
    fn rate(&self) -> f64 {
        self.state.progress.rate()
    }

    /// The retries made since the last call, oldest first, each
    /// `(number, of, kind, message, wait_seconds)`; thread-safe.
    fn take_retries(&self) -> Vec<(u32, u32, &'static str, String, f64)> {
        self.state
            .retries
            .take()
            .into_iter()
            .map(|r| {
                (
                    r.number,
                    r.of,
                    r.kind.name(),
                    r.message,
                    r.wait.as_secs_f64(),
                )
            })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Transfer({}, {:?})",
            redact_url(&self.spec.url),
            self.spec.dest
        )
    }
}

/// Outcome of `Transfer.run`.
#[pyclass(name = "TransferResult", module = "ome_agent._core", frozen, get_all)]
pub(crate) struct PyTransferResult {
    size: u64,
    seconds: f64,
    fetched_bytes: u64,
    resumed_bytes: u64,
    retries: u64,
    connections: usize,
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: Option<String>,
    md5: Option<String>,
    git_sha1: Option<String>,
    xxh3_128: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    verified: Vec<String>,
    ranged: bool,
    sized: bool,
    direct_io: bool,
}

impl From<TransferOutcome> for PyTransferResult {
    fn from(o: TransferOutcome) -> Self {
        Self {
            size: o.size,
            seconds: o.seconds,
            fetched_bytes: o.fetched_bytes,
            resumed_bytes: o.resumed_bytes,
            retries: o.retries,
            connections: o.connections,
            etag: o.etag,
            last_modified: o.last_modified,
            sha256: o.digests.sha256,
            md5: o.digests.md5,
            git_sha1: o.digests.git_sha1,
            xxh3_128: o.digests.xxh3_128,
            crc32c: o.digests.crc32c,
            crc64nvme: o.digests.crc64nvme,
            verified: o.verified,
            ranged: o.ranged,
            sized: o.sized,
            direct_io: o.direct_io,
        }
    }
}

#[pymethods]
impl PyTransferResult {
    fn __repr__(&self) -> String {
        format!(
            "TransferResult(size={}, seconds={:.3}, fetched_bytes={}, resumed_bytes={}, \
             retries={}, connections={}, verified={:?}, ranged={}, sized={}, direct_io={})",
            self.size,
            self.seconds,
            self.fetched_bytes,
            self.resumed_bytes,
            self.retries,
            self.connections,
            self.verified,
            self.ranged,
            self.sized,
            self.direct_io
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<PyTransfer>()?;
    m.add_class::<PyTransferResult>()?;
    Ok(())
}
