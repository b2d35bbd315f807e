//! The HTTP client of an engine: rustls (ring provider) verifying against the
//! system trust store plus an optional CA bundle, proxies from
//! HTTP(S)_PROXY / NO_PROXY, keep-alive pool sized to the connection cap.
//!
//! Names are resolved by `getaddrinfo` through our own resolver so that a
//! name that does not exist (NXDOMAIN) is a typed error (`UnknownHost`) and
//! fails at once, while a resolver that is down or slow is retried.
//!
//! Redirects are followed by reqwest, which keeps our headers (so Range
//! survives) but drops Authorization/Cookie when the redirect leaves the
//! original scheme+host+port. A second client of the same engine follows no
//! redirect: signed requests handle them in `fetch::get`.

use std::ffi::{CStr, CString};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;
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
        .dns_resolver(Arc::new(SystemResolver))
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

/// The resolver answered that the name does not exist (EAI_NONAME/EAI_NODATA).
#[derive(Debug)]
pub struct UnknownHost(pub String);

impl std::fmt::Display for UnknownHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no such host: {}", self.0)
    }
}

impl std::error::Error for UnknownHost {}

/// `getaddrinfo` on a blocking thread (the system's resolver: /etc/hosts,
/// nsswitch, resolv.conf, as every other program on the node).
struct SystemResolver;

impl reqwest::dns::Resolve for SystemResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::task::spawn_blocking(move || lookup(&host)).await??;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn lookup(host: &str) -> std::result::Result<Vec<SocketAddr>, BoxError> {
    let c_host = CString::new(host)?;
    // SAFETY: a zeroed addrinfo is the documented "no hints" value; the fields
    // set below are plain integers.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, hints and out pointer; `res` is freed below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc == libc::EAI_NONAME || rc == libc::EAI_NODATA {
        return Err(Box::new(UnknownHost(host.to_string())));
    }
    if rc == libc::EAI_SYSTEM {
        return Err(Box::new(std::io::Error::last_os_error()));
    }
    if rc != 0 {
        // SAFETY: gai_strerror returns a static string for any code
        let why = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(format!("dns error: {}", why.to_string_lossy()).into());
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: `p` walks the list getaddrinfo returned; each ai_addr points
        // to a sockaddr of the family it names.
        unsafe {
            let ai = &*p;
            match ai.ai_family {
                libc::AF_INET => {
                    let sa = &*(ai.ai_addr as *const libc::sockaddr_in);
                    let ip = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                    out.push(SocketAddr::V4(SocketAddrV4::new(ip, 0)));
                }
                libc::AF_INET6 => {
                    let sa = &*(ai.ai_addr as *const libc::sockaddr_in6);
                    let ip = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                    out.push(SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        0,
                        sa.sin6_flowinfo,
                        sa.sin6_scope_id,
                    )));
                }
                _ => {}
            }
            p = ai.ai_next;
        }
    }
    // SAFETY: `res` came from a successful getaddrinfo and is freed once
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// The errors under `e`, outermost first.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source())
}

/// Which failure a reqwest error is, read from its flags and from the types
/// of its causes (never from their text).
pub fn error_kind(e: &reqwest::Error) -> TransferKind {
    let unknown_host = causes(e).any(|c| c.is::<UnknownHost>());
    let malformed = causes(e)
        .filter_map(|c| c.downcast_ref::<hyper::Error>())
        .any(hyper::Error::is_parse);
    if unknown_host {
        TransferKind::Dns
    } else if malformed {
        TransferKind::Malformed
    } else if e.is_timeout() {
        TransferKind::Timeout
    } else if e.is_connect() {
        TransferKind::Connect
    } else {
        TransferKind::Broken
    }
}

/// A short reason for a connection that could not be made, from the I/O
/// error under it ("connection refused"), for the retry lines people read.
pub fn connect_reason(e: &reqwest::Error) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    let io = causes(e).find_map(|c| c.downcast_ref::<std::io::Error>())?;
    Some(match io.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::TimedOut => "connection timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        _ => return None,
    })
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
