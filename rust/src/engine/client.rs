//! The HTTP client of an engine: rustls (ring provider) verifying against the
//! system trust store plus an optional CA bundle, proxies from
//! HTTP(S)_PROXY / NO_PROXY, keep-alive pool sized to the connection cap.
//!
//! Redirects are followed by reqwest, which keeps our headers (so Range
//! survives) but drops Authorization/Cookie when the redirect leaves the
//! original scheme+host+port. A second client of the same engine follows no
//! redirect: signed requests handle them in `fetch::get`.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result, TransferKind};

pub struct ClientConfig<'a> {
    pub ca_bundle: Option<&'a Path>,
    pub connect_timeout: Duration,
    pub user_agent: Option<&'a str>,
    pub max_connections: usize,
    pub follow_redirects: bool,
}

fn default_user_agent() -> String {
    format!("ome-agent/{}", env!("CARGO_PKG_VERSION"))
}

pub fn build(cfg: &ClientConfig<'_>) -> Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider (aws-lc-rs is slow
    // to build); ring is installed as the process default once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .pool_max_idle_per_host(cfg.max_connections)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(
            cfg.user_agent
                .map(str::to_string)
                .unwrap_or_else(default_user_agent),
        );
    b = b.redirect(if cfg.follow_redirects {
        http_only_redirects()
    } else {
        reqwest::redirect::Policy::none()
    });
    if let Some(path) = cfg.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            Error::InvalidInput(format!(
                "ca_bundle: cannot read {}: {e}; pass a readable PEM file",
                path.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
            Error::InvalidInput(format!(
                "ca_bundle: {} is not a PEM certificate bundle",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::InvalidInput(format!(
                "ca_bundle: {} holds no certificate",
                path.display()
            )));
        }
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| {
        Error::InvalidInput(format!("cannot build the HTTP client: {}", error_chain(&e)))
    })
}

/// The most redirects one request follows (reqwest's own default).
pub const MAX_REDIRECTS: usize = 10;

/// Why a redirect to `url` is not followed: only http(s) targets are.
pub fn unfollowable(url: &reqwest::Url) -> Option<String> {
    let scheme = url.scheme();
    (scheme != "http" && scheme != "https").then(|| {
        format!("the server redirected to a {scheme}:// URL; only http(s) redirects are followed")
    })
}

/// Follow redirects to http(s) URLs only: a `file://` or `ftp://` Location is a server
/// fault (or an attack on the node's files), reported in one line, never retried.
fn http_only_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if let Some(why) = unfollowable(attempt.url()) {
            attempt.error(why)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// Which failure a reqwest error is, read from its flags like `error_chain`.
pub fn error_kind(e: &reqwest::Error) -> TransferKind {
    if e.is_timeout() {
        TransferKind::Timeout
    } else if e.is_connect() {
        TransferKind::Connect
    } else {
        TransferKind::Broken
    }
}

/// A reqwest error as text: kind and causes, never the URL (it may be signed).
pub fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "error reading the body".to_string()
    } else if e.is_redirect() {
        "redirect error".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !t.is_empty() && !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}
