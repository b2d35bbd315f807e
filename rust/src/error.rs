//! Error type shared by the engine and the safetensors parser. Converted to
//! Python exceptions in exactly one place (`py::errors`).
//!
//! Messages never contain credentials: URLs are stored without their query
//! string (signed URLs carry secrets there) and headers are never echoed.

use std::io;

/// Everything the native core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied argument is wrong; the message names the field and
    /// how to fix it.
    #[error("{0}")]
    InvalidInput(String),

    /// Network failure that outlived the retries (resets, stalls, 5xx, ...);
    /// `kind` says which, for callers that act on it.
    #[error("transfer of {url} failed: {message}")]
    Transfer {
        url: String,
        kind: TransferKind,
        message: String,
    },

    /// The server answered with a status that is not retried.
    #[error("HTTP {status} from {url}")]
    HttpStatus { status: u16, url: String },

    /// A digest (or the size) of the received bytes differs from the expected one.
    #[error("{algorithm} mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        algorithm: String,
        expected: String,
        actual: String,
    },

    /// The transfer was cancelled.
    #[error("transfer cancelled")]
    Cancelled,

    /// A safetensors header is malformed or hostile.
    #[error("invalid safetensors header: {0}")]
    Header(String),

    /// A local file operation failed; `context` says which and on what path.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Which network failure ended a transfer: decided where the failure is
/// first seen (`engine::fetch`), carried unchanged to the Python exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// Every try was answered with a retried status (5xx, 408, 429); the
    /// last one is kept.
    Status(u16),
    /// No connection could be made (refused, unreachable, DNS timeout, TLS).
    Connect,
    /// The host name does not exist (NXDOMAIN). Never retried: the resolver
    /// answered, and asking again gets the same answer.
    Dns,
    /// No body bytes within the stall timeout.
    Timeout,
    /// Below the low-speed limit for its whole period (`EngineConfig::speed_limit`
    /// bytes/s over `speed_time`), or no complete response head within `speed_time`.
    /// Retried at most `retry::SLOW_RETRIES` times: a new connection may reach a
    /// faster server, the same path rarely heals.
    Slow,
    /// The connection broke or the body ended early.
    Broken,
    /// The server's answer broke the protocol (Content-Range, ...).
    Protocol,
    /// The response head is not HTTP/1.1: an invalid status line, a negative or
    /// conflicting Content-Length, a head larger than the client accepts. Never
    /// retried: the server answers the same way again.
    Malformed,
    /// A body of unknown size (no Content-Length, no Content-Range total) passed
    /// `TransferSpec::max_unknown_size`. Never retried.
    TooLarge,
    /// A redirect not followed: to a URL that is not http(s), or one too many.
    /// Never retried: the same server redirects the same way again.
    Redirect,
    /// The object kept changing on the server while it was fetched.
    Changed,
    /// Resumed data kept failing its check.
    Corrupt,
    /// The request signer (a Python callable) failed.
    Sign,
    /// The engine itself failed (a task ended without a result).
    Internal,
}

impl TransferKind {
    /// The name Python sees (`TransferError.kind`).
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::Status(_) => "status",
            TransferKind::Connect => "connect",
            TransferKind::Dns => "dns",
            TransferKind::Timeout => "timeout",
            TransferKind::Slow => "slow",
            TransferKind::Broken => "broken",
            TransferKind::Protocol => "protocol",
            TransferKind::Malformed => "malformed",
            TransferKind::TooLarge => "too-large",
            TransferKind::Redirect => "redirect",
            TransferKind::Changed => "changed",
            TransferKind::Corrupt => "corrupt",
            TransferKind::Sign => "sign",
            TransferKind::Internal => "internal",
        }
    }

    /// Whether the engine retries this kind at all (`TransferError.retryable`).
    pub fn retried(self) -> bool {
        !matches!(
            self,
            TransferKind::Dns | TransferKind::Malformed | TransferKind::TooLarge
        )
    }

    /// The HTTP status of a `Status` failure.
    pub fn status(self) -> Option<u16> {
        match self {
            TransferKind::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// Result alias of the native core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wrap an `io::Error` with what was being done (e.g. "open /x/y.partial").
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// A URL as it may appear in messages: scheme, host, path; never the query
/// string or userinfo, which may carry credentials.
pub fn redact_url(url: &str) -> String {
    let no_frag = url.split('#').next().unwrap_or(url);
    let no_query = no_frag.split('?').next().unwrap_or(no_frag);
    // strip "user:pass@" from the authority
    if let Some((scheme, rest)) = no_query.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = authority.rsplit('@').next().unwrap_or(authority);
        format!("{scheme}://{host}{path}")
    } else {
        no_query.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_query_and_userinfo() {
        assert_eq!(
            redact_url("https://u:p@h.example:8443/a/b?X-Amz-Signature=s#f"),
            "https://h.example:8443/a/b"
        );
        assert_eq!(redact_url("http://h/x"), "http://h/x");
        assert_eq!(redact_url("http://h?q=1"), "http://h");
    }
}
