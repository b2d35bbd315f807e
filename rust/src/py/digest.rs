//! Python face of the engine's CRC-64/NVME (`Crc64Nvme` in `_core.pyi`): the
//! same SIMD code the engine checks downloads with, for the files Python hashes
//! itself (a model directory adopted against an S3 listing). Hashing runs with
//! the GIL released, as `hashlib` does on large buffers.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::engine::hasher::Crc64Nvme;

#[pyclass(name = "Crc64Nvme", module = "ome_agent._core")]
pub(crate) struct PyCrc64Nvme {
    inner: Crc64Nvme,
}

#[pymethods]
impl PyCrc64Nvme {
    #[new]
    fn new() -> Self {
        Self {
            inner: Crc64Nvme::new(),
        }
    }

    /// Advance over a bytes-like object (bytes, bytearray, memoryview).
    fn update(&mut self, py: Python<'_>, data: PyBuffer<u8>) -> PyResult<()> {
        if !data.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "Crc64Nvme.update: the buffer must be contiguous",
            ));
        }
        let (ptr, len) = (data.buf_ptr() as usize, data.len_bytes());
        let inner = &mut self.inner;
        py.detach(move || {
            // SAFETY: `data` holds the buffer export until this returns, so the
            // memory stays allocated and the exporter cannot be resized (as for
            // hashlib, which also reads a buffer with the GIL released); a
            // contiguous buffer of item size 1 is `len` bytes from `ptr`.
            let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
            inner.update(bytes);
        });
        Ok(())
    }

    /// 16 hex digits, big-endian (S3's base64 value, decoded, in hex).
    fn hexdigest(&self) -> String {
        self.inner.hex()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCrc64Nvme>()?;
    Ok(())
}
