//! Why a safetensors header was rejected. Each message names the tensor and
//! field at fault so a user can tell a corrupt download from a bad writer.
//! Converted to the Python `HeaderError` only at the PyO3 edge.

use std::path::PathBuf;

use thiserror::Error;

/// Why a safetensors header could not be read or is not trustworthy.
#[derive(Debug, Error)]
pub enum HeaderError {
    #[error(
        "truncated: a safetensors file starts with an 8-byte header length, got only {got} bytes"
    )]
    MissingLength { got: u64 },

    #[error(
        "header length {len} is over the {max}-byte limit; this is not a safetensors file or it is corrupt"
    )]
    TooLarge { len: u64, max: u64 },

    #[error(
        "header length {len} (+8 length bytes) is beyond the end of the {file_size}-byte file; the file is truncated or not a safetensors file"
    )]
    BeyondFile { len: u64, file_size: u64 },

    #[error(
        "truncated: the header needs {needed} bytes (8 + {len} of JSON) but only {got} were given; pass the first {needed} bytes of the file"
    )]
    Truncated { needed: u64, len: u64, got: u64 },

    #[error("{got} bytes were given but file_size is {file_size}; file_size must be the size of the whole file")]
    LongerThanFile { got: u64, file_size: u64 },

    #[error("header is not valid UTF-8 (invalid byte at JSON offset {offset})")]
    Utf8 { offset: u64 },

    #[error("header is not valid JSON: {detail}")]
    Json { detail: String },

    #[error("header must be a JSON object of tensor name -> tensor info, got {kind}")]
    NotObject { kind: &'static str },

    #[error("duplicate key {key:?} in the header; each tensor name may appear once")]
    DuplicateKey { key: String },

    #[error("\"__metadata__\": {reason}")]
    Metadata { reason: String },

    #[error("tensor {tensor:?}: {reason}")]
    Field { tensor: String, reason: String },

    #[error("tensor {tensor:?}: unknown dtype {dtype:?}; valid dtypes are {valid}")]
    UnknownDtype {
        tensor: String,
        dtype: String,
        valid: String,
    },

    #[error("tensor {tensor:?}: the element count of shape {shape:?} overflows 64 bits")]
    ShapeOverflow { tensor: String, shape: Vec<u64> },

    #[error(
        "tensor {tensor:?}: {numel} elements of {dtype} do not fill whole bytes ({bits} bits)"
    )]
    Misaligned {
        tensor: String,
        dtype: String,
        numel: u64,
        bits: u128,
    },

    #[error("tensor {tensor:?}: data_offsets [{begin}, {end}] end before they begin")]
    OffsetsReversed {
        tensor: String,
        begin: u64,
        end: u64,
    },

    #[error(
        "tensor {tensor:?}: shape {shape:?} of {dtype} needs {expected} bytes but data_offsets [{begin}, {end}] span {actual}"
    )]
    SizeMismatch {
        tensor: String,
        dtype: String,
        shape: Vec<u64>,
        expected: u128,
        begin: u64,
        end: u64,
        actual: u64,
    },

    #[error(
        "tensor {tensor:?}: data_offsets end {end} is beyond the {data_size}-byte data section of the file"
    )]
    BeyondData {
        tensor: String,
        end: u64,
        data_size: u64,
    },

    #[error(
        "tensor {tensor:?} (bytes {begin}..{end}) overlaps tensor {other:?} (bytes {other_begin}..{other_end})"
    )]
    Overlap {
        tensor: String,
        begin: u64,
        end: u64,
        other: String,
        other_begin: u64,
        other_end: u64,
    },

    #[error(
        "bytes {from}..{to} of the data section belong to no tensor (before tensor {tensor:?}); the tensors must cover the data section without gaps"
    )]
    Gap { from: u64, to: u64, tensor: String },

    #[error(
        "the tensors cover {covered} bytes but the file's data section holds {data_size}; the file has trailing bytes no tensor describes"
    )]
    Uncovered { covered: u64, data_size: u64 },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<HeaderError>,
    },
}

impl HeaderError {
    /// The I/O error underneath, if reading the file (not its content) failed.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            HeaderError::Io { source, .. } => Some(source),
            HeaderError::InFile { source, .. } => source.io_error(),
            _ => None,
        }
    }
}
