//! safetensors header parser: the metadata step after (or instead of) a
//! download. Discovery reads tensors, dtypes and the exact parameter count
//! from here; `inspect` reads only the headers of remote shards through
//! range requests (`header_length` tells how many bytes to fetch).
//!
//! Layout of a file: 8-byte little-endian length `N`, `N` bytes of UTF-8
//! JSON, then the data section, which the tensors' `data_offsets` (relative
//! to the data section) must cover exactly. Every input-derived number goes
//! through checked arithmetic: hostile headers yield a `HeaderError`, never a
//! panic or a huge allocation.

mod dtype;
mod error;
mod fast;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::{DeserializeSeed, IgnoredAny};

pub use dtype::Dtype;
pub use error::HeaderError;

/// Largest JSON header accepted, as in the reference implementation.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Bytes of the little-endian length prefix.
const LENGTH_BYTES: u64 = 8;

/// One tensor as described by the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// `[begin, end)` relative to the start of the data section.
    pub data_offsets: (u64, u64),
    /// Stored elements (product of `shape`; 1 for a scalar).
    pub numel: u64,
}

/// A validated header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Length of the JSON part (without the 8 length bytes).
    pub header_size: u64,
    /// Bytes of tensor data described (end of the last tensor).
    pub data_size: u64,
    /// In file order (by `data_offsets`).
    pub tensors: Vec<TensorInfo>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// Sum of `numel` over tensors. u128: sub-byte dtypes allow more
    /// elements than a u64 of bytes.
    pub parameter_count: u128,
    pub parameters_by_dtype: BTreeMap<Dtype, u128>,
}

fn check_length(len: u64, file_size: Option<u64>) -> Result<u64, HeaderError> {
    if len > MAX_HEADER_BYTES {
        return Err(HeaderError::TooLarge {
            len,
            max: MAX_HEADER_BYTES,
        });
    }
    let total = len + LENGTH_BYTES; // cannot overflow: len <= MAX_HEADER_BYTES
    if let Some(file_size) = file_size {
        if total > file_size {
            return Err(HeaderError::BeyondFile { len, file_size });
        }
    }
    Ok(total)
}

/// Total bytes (8 + JSON length) needed to parse the header whose first
/// bytes are `prefix`; validates the declared length.
pub fn header_length(prefix: &[u8]) -> Result<u64, HeaderError> {
    let Some(bytes) = prefix.first_chunk::<8>() else {
        return Err(HeaderError::MissingLength {
            got: prefix.len() as u64,
        });
    };
    check_length(u64::from_le_bytes(*bytes), None)
}

/// Parses the JSON part (exactly the `len` bytes after the prefix).
fn parse_json(json: &[u8], data_section: Option<u64>) -> Result<SafetensorsHeader, HeaderError> {
    let text = std::str::from_utf8(json).map_err(|e| HeaderError::Utf8 {
        offset: e.valid_up_to() as u64,
    })?;
    let header_size = json.len() as u64;
    if let Some(fields) = fast::read(text) {
        return validate::finish(fields, header_size, data_section);
    }
    // Not well-typed: read it again slowly to say exactly what is wrong.
    if let Some(err) = not_an_object(text) {
        return Err(err);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let header = raw::HeaderSeed
        .deserialize(&mut de)
        .and_then(|h| de.end().map(|()| h))
        .map_err(|e| HeaderError::Json {
            detail: e.to_string(),
        })?;
    let fields = validate::from_entries(header)?;
    validate::finish(fields, header_size, data_section)
}

/// A clearer error than serde's "invalid type" when the JSON does not start
/// with an object: says what it is instead, or that the header is empty.
fn not_an_object(text: &str) -> Option<HeaderError> {
    let kind = match text.trim_start().bytes().next() {
        Some(b'{') => return None,
        None => {
            return Some(HeaderError::Json {
                detail: "the header is empty (a file without tensors still holds \"{}\")"
                    .to_owned(),
            })
        }
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(_) => "a number",
    };
    Some(match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => HeaderError::NotObject { kind },
        Err(e) => HeaderError::Json {
            detail: e.to_string(),
        },
    })
}

/// Parses a header from the first bytes of a file (e.g. a range response).
/// `data` may extend past the header; `file_size`, when known, enables the
/// checks against the real data section.
pub fn parse_header(data: &[u8], file_size: Option<u64>) -> Result<SafetensorsHeader, HeaderError> {
    let got = data.len() as u64;
    if let Some(file_size) = file_size {
        if got > file_size {
            return Err(HeaderError::LongerThanFile { got, file_size });
        }
    }
    let Some(bytes) = data.first_chunk::<8>() else {
        return Err(HeaderError::MissingLength { got });
    };
    let len = u64::from_le_bytes(*bytes);
    let needed = check_length(len, file_size)?;
    // `needed` <= MAX_HEADER_BYTES + 8, so it fits usize on every target we build.
    let json = usize::try_from(needed)
        .ok()
        .and_then(|n| data.get(8..n))
        .ok_or(HeaderError::Truncated { needed, len, got })?;
    parse_json(json, file_size.map(|s| s - needed))
}

/// Reads and parses the header of a local file: one open, one `fstat`, two
/// reads (the length, then the JSON). The data section is never read.
pub fn read_header(path: &Path) -> Result<SafetensorsHeader, HeaderError> {
    let io = |source| HeaderError::Io {
        path: path.to_owned(),
        source,
    };
    let in_file = |e: HeaderError| HeaderError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    };
    let mut file = File::open(path).map_err(io)?;
    let file_size = file.metadata().map_err(io)?.len();
    if file_size < LENGTH_BYTES {
        return Err(in_file(HeaderError::MissingLength { got: file_size }));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io)?;
    let len = u64::from_le_bytes(prefix);
    let needed = check_length(len, Some(file_size)).map_err(in_file)?;
    // Bounded by MAX_HEADER_BYTES and by the file size, checked just above.
    let mut json = vec![0u8; (needed - LENGTH_BYTES) as usize];
    file.read_exact(&mut json).map_err(io)?;
    parse_json(&json, Some(file_size - needed)).map_err(in_file)
}

#[cfg(test)]
mod tests;
