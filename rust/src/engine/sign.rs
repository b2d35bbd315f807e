//! Request headers of a transfer: the fixed ones plus, for object stores that
//! sign every request (OCI, S3 SigV4, ...), fresh headers from a signer called
//! before each request, probe and retries included, so no signature outlives
//! its validity window however long the file takes.
//!
//! Signed requests never follow a redirect to another origin with their
//! signature (see `fetch::get`); the rule for Authorization/Cookie is the same.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderMap, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use reqwest::Url;

type SignFn = dyn Fn() -> std::result::Result<HeaderMap, String> + Send + Sync;

/// Produces the headers of one request. The error text names what failed and
/// never a header value (those are credentials).
#[derive(Clone)]
pub struct Signer(Arc<SignFn>);

impl Signer {
    pub fn new(
        f: impl Fn() -> std::result::Result<HeaderMap, String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    pub fn sign(&self) -> std::result::Result<HeaderMap, String> {
        (self.0)()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(..)")
    }
}

/// The headers every request of a transfer carries.
#[derive(Clone, Debug, Default)]
pub struct RequestHeaders {
    pub base: HeaderMap,
    pub sign: Option<Signer>,
}

impl RequestHeaders {
    pub fn new(base: HeaderMap, sign: Option<Signer>) -> Self {
        Self { base, sign }
    }

    /// The headers of one request: the signer's (fresh) over the base ones.
    pub fn build(&self) -> std::result::Result<HeaderMap, String> {
        let Some(s) = &self.sign else {
            return Ok(self.base.clone());
        };
        Ok(merge(&self.base, s.sign()?))
    }

    /// What may go to another origin: no credentials, no signer.
    pub fn for_other_origin(&self) -> Self {
        let mut base = self.base.clone();
        strip_credentials(&mut base);
        Self { base, sign: None }
    }
}

/// `over` replaces every header of `base` it names.
pub fn merge(base: &HeaderMap, over: HeaderMap) -> HeaderMap {
    let mut out = base.clone();
    for name in over.keys() {
        out.remove(name);
    }
    for (name, value) in over.iter() {
        out.append(name.clone(), value.clone());
    }
    out
}

/// Same origin (scheme, host, port)? Credentials never cross origins.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

pub fn strip_credentials(h: &mut HeaderMap) {
    h.remove(AUTHORIZATION);
    h.remove(COOKIE);
    h.remove(PROXY_AUTHORIZATION);
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn signer_is_called_per_build_and_wins() {
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let mut base = HeaderMap::new();
        base.insert("x-date", HeaderValue::from_static("old"));
        base.insert("x-keep", HeaderValue::from_static("k"));
        let h = RequestHeaders::new(
            base,
            Some(Signer::new(move || {
                let i = n2.fetch_add(1, Ordering::SeqCst);
                let mut m = HeaderMap::new();
                m.insert("x-date", HeaderValue::from_str(&i.to_string()).unwrap());
                Ok(m)
            })),
        );
        assert_eq!(h.build().unwrap()["x-date"], "0");
        let second = h.build().unwrap();
        assert_eq!(second["x-date"], "1");
        assert_eq!(second.get_all("x-date").iter().count(), 1);
        assert_eq!(second["x-keep"], "k");
        let other = h.for_other_origin();
        assert!(other.sign.is_none());
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn other_origin_loses_credentials() {
        let mut base = HeaderMap::new();
        base.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        base.insert("x-keep", HeaderValue::from_static("k"));
        let h = RequestHeaders::new(base, None).for_other_origin();
        assert!(h.base.get(AUTHORIZATION).is_none());
        assert_eq!(h.build().unwrap()["x-keep"], "k");
    }
}
