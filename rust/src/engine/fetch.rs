//! One HTTP exchange of a transfer: the probe, and a ranged GET streamed into
//! a buffer. Every failure is classified here (retry, fatal, or "the object
//! changed") so the callers only decide how often to try again.

use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_RANGE, ETAG, IF_MATCH, IF_RANGE,
    LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use reqwest::{Client, Response, StatusCode, Url};

use super::buffers::Buffer;
use super::client::{self, connect_reason, error_chain, error_kind};
use super::pace::{Late, Limits, Pace};
use super::progress::Progress;
use super::sign::{same_origin, RequestHeaders};
use super::{retry, Engine};
use crate::error::{redact_url, Error, TransferKind};

/// How an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try (5xx, 408, 429, reset, truncated, stalled).
    Retry {
        kind: TransferKind,
        msg: String,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying.
    Fatal(Error),
    /// The object changed under us (If-Range answered with the whole body).
    Changed,
}

impl Failure {
    fn retry(kind: TransferKind, msg: impl Into<String>) -> Self {
        Failure::Retry {
            kind,
            msg: msg.into(),
            retry_after: None,
        }
    }
}

/// A parsed Content-Range: the inclusive range if given, the total if known.
pub type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// Parse `Content-Range: bytes a-b/total` (or `bytes */total`).
pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if b < a {
                return None;
            }
            Some((a, b))
        }
    };
    Some((range, total))
}

fn header_str(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name)?.to_str().ok().map(str::to_string)
}

/// The validator to send in If-Range: a strong ETag, else Last-Modified.
fn if_range_value(etag: Option<&str>, last_modified: Option<&str>) -> Option<HeaderValue> {
    match etag {
        Some(e) if !e.starts_with("W/") => HeaderValue::from_str(e).ok(),
        _ => last_modified.and_then(|l| HeaderValue::from_str(l).ok()),
    }
}

/// An ETag as compared: without a W/ prefix and quotes (listings and GETs
/// of the same object disagree on both).
fn normalize_etag(e: &str) -> &str {
    let e = e.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"')
}

fn etag_mismatch(expected: &str, actual: &str) -> Error {
    Error::ChecksumMismatch {
        algorithm: "etag".into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// The validator to send in If-Match: the ETag as the server spells it (OCI
/// gives them unquoted and compares them so). None for a weak one: If-Match
/// compares strongly (RFC 9110 §13.1.1), so a weak tag would always fail.
fn if_match_value(etag: &str) -> Option<HeaderValue> {
    let e = etag.trim();
    if e.starts_with("W/") {
        return None;
    }
    HeaderValue::from_str(e).ok()
}

/// The preconditions every request of one transfer carries.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// If-Range (ranged requests only): a changed object answers 200.
    pub if_range: Option<HeaderValue>,
    /// The listed ETag: every 200/206 must carry it (or none), and a 412 or
    /// another ETag means the object changed since the listing. Servers that
    /// ignore If-Range (OCI, Azure) would otherwise answer a later range with
    /// 206 bytes of the new object.
    pub expected_etag: Option<String>,
    /// If-Match on every request: the server then refuses (412) to serve
    /// another version at all.
    pub if_match: Option<HeaderValue>,
}

impl Conditions {
    /// The probe's: If-Match with the listed ETag as the caller gave it (it
    /// comes from the same server, so in its spelling).
    pub fn for_probe(expected_etag: Option<&str>) -> Self {
        Self {
            if_range: None,
            expected_etag: expected_etag.map(str::to_string),
            if_match: expected_etag.and_then(if_match_value),
        }
    }

    /// Those of the requests after the probe: If-Range from its validators,
    /// If-Match with its ETag exactly as the server sent it (it equals the
    /// listed one, or the probe already failed).
    pub fn after_probe(&self, etag: Option<&str>, last_modified: Option<&str>) -> Self {
        let if_match = match (&self.expected_etag, etag) {
            (None, _) => None,
            (Some(_), Some(e)) => if_match_value(e),
            (Some(_), None) => self.if_match.clone(),
        };
        Self {
            if_range: if_range_value(etag, last_modified),
            expected_etag: self.expected_etag.clone(),
            if_match,
        }
    }

    /// A response of another object than the listed one fails the transfer:
    /// never resumed onto, never restarted onto. `etag`: the response's.
    fn check(&self, status: StatusCode, etag: Option<&str>) -> Result<(), Failure> {
        let Some(exp) = &self.expected_etag else {
            return Ok(());
        };
        let other = etag.filter(|a| normalize_etag(a) != normalize_etag(exp));
        let actual = match (status, other) {
            // a 416 answers a range of the object as it is now (fetch_piece)
            (
                StatusCode::OK
                | StatusCode::PARTIAL_CONTENT
                | StatusCode::RANGE_NOT_SATISFIABLE
                | StatusCode::PRECONDITION_FAILED,
                Some(a),
            ) => a,
            (StatusCode::PRECONDITION_FAILED, None) => "changed (HTTP 412)",
            _ => return Ok(()),
        };
        Err(Failure::Fatal(etag_mismatch(exp, actual)))
    }
}

/// Send a GET, optionally ranged (`[start, end)`), within the head timeout
/// of `lim` for the response head of each hop.
///
/// Unsigned requests let the client follow redirects (it drops
/// Authorization/Cookie on the way to another origin). Signed requests
/// follow them here: re-signed for the same origin, and with neither the
/// signature nor other credentials once a redirect leaves it. The
/// conditions (If-Match, If-Range) go to every hop: they name the object,
/// not the caller, and S3/CDN redirects serve the same object.
///
/// Every answer is checked against the listed ETag (`Conditions::check`).
pub async fn get(
    engine: &Engine,
    url: &Url,
    headers: &RequestHeaders,
    range: Option<(u64, u64)>,
    cond: &Conditions,
    lim: Limits,
) -> Result<Response, Failure> {
    if headers.sign.is_none() {
        let h = headers.base.clone();
        return send(&engine.client, url, h, range, cond, lim).await;
    }
    let mut target = url.clone();
    for _ in 0..=client::MAX_REDIRECTS {
        let h = headers.build().map_err(|message| {
            Failure::Fatal(Error::Transfer {
                url: redact_url(url.as_str()),
                kind: TransferKind::Sign,
                message,
            })
        })?;
        let resp = send(&engine.client_manual, &target, h, range, cond, lim).await?;
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let next = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| target.join(l).ok());
        let Some(next) = next else {
            return Ok(resp);
        };
        if let Some(message) = client::unfollowable(&next) {
            return Err(Failure::Fatal(Error::Transfer {
                url: redact_url(url.as_str()),
                kind: TransferKind::Redirect,
                message,
            }));
        }
        if !same_origin(&target, &next) {
            let h = headers.for_other_origin().base;
            return send(&engine.client, &next, h, range, cond, lim).await;
        }
        target = next;
    }
    Err(Failure::Fatal(Error::Transfer {
        url: redact_url(url.as_str()),
        kind: TransferKind::Redirect,
        message: format!("more than {} redirects", client::MAX_REDIRECTS),
    }))
}

/// One request with `client`, within the head timeout of `lim` for the
/// response head, its answer checked against the listed ETag (a redirect
/// passes the check).
async fn send(
    client: &Client,
    url: &Url,
    mut headers: HeaderMap,
    range: Option<(u64, u64)>,
    cond: &Conditions,
    lim: Limits,
) -> Result<Response, Failure> {
    // an If-Match of the caller's (or its signer's, which may have signed
    // it) names the same object and is left as given
    if let Some(v) = &cond.if_match {
        if !headers.contains_key(IF_MATCH) {
            headers.insert(IF_MATCH, v.clone());
        }
    }
    let mut req = client
        .get(url.clone())
        .headers(headers)
        .header(ACCEPT_ENCODING, "identity");
    if let Some((a, b)) = range {
        req = req.header(RANGE, format!("bytes={a}-{}", b.saturating_sub(1)));
        if let Some(v) = &cond.if_range {
            req = req.header(IF_RANGE, v.clone());
        }
    }
    match tokio::time::timeout(lim.head_timeout(), req.send()).await {
        Err(_) => {
            let (kind, msg) = lim.head_late();
            Err(Failure::retry(kind, msg))
        }
        Ok(Err(e)) if e.is_builder() => Err(Failure::Fatal(Error::InvalidInput(format!(
            "url: cannot request {}: {}",
            redact_url(url.as_str()),
            error_chain(&e)
        )))),
        Ok(Err(e)) if e.is_redirect() => Err(Failure::Fatal(Error::Transfer {
            url: redact_url(url.as_str()),
            kind: TransferKind::Redirect,
            message: error_chain(&e),
        })),
        Ok(Err(e)) => Err(request_failure(url, &e)),
        Ok(Ok(r)) => {
            let etag = r.headers().get(ETAG).and_then(|v| v.to_str().ok());
            cond.check(r.status(), etag)?;
            Ok(r)
        }
    }
}

/// Map a non-success status to a failure.
pub fn status_failure(resp: &Response) -> Failure {
    let status = resp.status().as_u16();
    if retry::is_retryable_status(status) {
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        Failure::Retry {
            kind: TransferKind::Status(status),
            msg: format!("HTTP {status}"),
            retry_after,
        }
    } else if let Some(message) = unfollowed_redirect(resp) {
        Failure::Fatal(Error::Transfer {
            url: redact_url(resp.url().as_str()),
            kind: TransferKind::Redirect,
            message,
        })
    } else {
        Failure::Fatal(Error::HttpStatus {
            status,
            url: redact_url(resp.url().as_str()),
        })
    }
}

/// A redirect the client handed back instead of following: its Location is not an
/// http(s) URL (reqwest returns those answers as they are).
fn unfollowed_redirect(resp: &Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp.headers().get(LOCATION)?.to_str().ok()?;
    client::unfollowable(&resp.url().join(location).ok()?)
}

/// A request that failed before its answer (or while reading its body):
/// a name that does not exist and a response head that is not HTTP fail at
/// once; everything else is worth another try.
fn request_failure(url: &Url, e: &reqwest::Error) -> Failure {
    let kind = error_kind(e);
    let msg = match kind {
        TransferKind::Dns => format!("no such host: {}", url.host_str().unwrap_or("")),
        TransferKind::Malformed => format!("malformed response: {}", error_chain(e)),
        TransferKind::Connect => connect_reason(e)
            .map(str::to_string)
            .unwrap_or_else(|| error_chain(e)),
        _ => error_chain(e),
    };
    if kind.retried() {
        Failure::retry(kind, msg)
    } else {
        Failure::Fatal(Error::Transfer {
            url: redact_url(url.as_str()),
            kind,
            message: msg,
        })
    }
}

/// Read the next body chunk within the bounds of `pace` (stall, low speed).
pub async fn next_chunk(
    resp: &mut Response,
    pace: &mut Pace,
) -> Result<Option<bytes::Bytes>, Failure> {
    match pace.next_chunk(resp).await {
        Err(Late::Stalled(msg)) => Err(Failure::retry(TransferKind::Timeout, msg)),
        Err(Late::Slow(msg)) => Err(Failure::retry(TransferKind::Slow, msg)),
        Ok(Err(e)) => Err(request_failure(resp.url(), &e)),
        Ok(Ok(c)) => Ok(c),
    }
}

/// Fetch `[start + *got, end)` of the object into `buf` (position `*got`),
/// advancing `*got` as bytes arrive so a retry continues where this stopped.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_piece(
    engine: &Engine,
    url: &Url,
    headers: &RequestHeaders,
    cond: &Conditions,
    start: u64,
    end: u64,
    buf: &mut Buffer,
    got: &mut usize,
    lim: Limits,
    progress: &Progress,
) -> Result<(), Failure> {
    let from = start + *got as u64;
    let resp = get(engine, url, headers, Some((from, end)), cond, lim).await?;
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {}
        // If-Range did not match (or Range is no longer honoured): the
        // bytes we already hold may belong to another version.
        StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => return Err(Failure::Changed),
        _ => return Err(status_failure(&resp)),
    }
    let cr = header_str(resp.headers(), CONTENT_RANGE).and_then(|v| parse_content_range(&v));
    match cr {
        Some((Some((a, _)), _)) if a == from => {}
        _ => {
            return Err(Failure::retry(
                TransferKind::Protocol,
                "Content-Range does not match the requested range",
            ))
        }
    }
    read_piece(resp, start, end, buf, got, lim, progress).await
}

/// Read the body of a 206 answering `[start + *got, end)` into `buf`.
pub async fn read_piece(
    mut resp: Response,
    start: u64,
    end: u64,
    buf: &mut Buffer,
    got: &mut usize,
    lim: Limits,
    progress: &Progress,
) -> Result<(), Failure> {
    let from = start + *got as u64;
    let want = (end - start) as usize;
    let mut pace = Pace::new(lim);
    while let Some(chunk) = next_chunk(&mut resp, &mut pace).await? {
        if *got + chunk.len() > want {
            return Err(Failure::retry(
                TransferKind::Protocol,
                "server sent more bytes than requested",
            ));
        }
        buf.write_at(*got, &chunk);
        *got += chunk.len();
        // counted on arrival (kept across retries), so progress is smooth
        progress.add(chunk.len() as u64);
    }
    if *got < want {
        return Err(Failure::retry(
            TransferKind::Broken,
            format!(
                "truncated body: {} of {} bytes",
                *got as u64 + start - from,
                end - from
            ),
        ));
    }
    Ok(())
}

/// Read and discard what is left of a (small) body so the connection can
/// return to the keep-alive pool.
pub async fn drain(mut resp: Response, lim: Limits) {
    let mut pace = Pace::new(lim);
    while let Ok(Some(_)) = next_chunk(&mut resp, &mut pace).await {}
}

/// What the probe learnt about the object.
pub struct Probe {
    /// Set when the server ignored Range: this response carries the whole
    /// body and is streamed as is.
    pub whole: Option<Response>,
    /// The open 206 of the probe and the end of its range: the first piece
    /// of the file, read by a worker instead of being requested again.
    pub first: Option<(u64, Response)>,
    pub ranged: bool,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub final_url: Url,
}

/// Probe with `GET Range: bytes=0-<first_len-1>` (a GET works where HEAD is
/// not signed, e.g. presigned GET URLs): size from Content-Range,
/// validators, final URL; the body is left unread for the caller.
pub async fn probe(
    engine: &Engine,
    url: &Url,
    headers: &RequestHeaders,
    cond: &Conditions,
    lim: Limits,
    first_len: u64,
) -> Result<Probe, Failure> {
    let resp = get(engine, url, headers, Some((0, first_len.max(1))), cond, lim).await?;
    let h = resp.headers().clone();
    let mut p = Probe {
        whole: None,
        first: None,
        ranged: false,
        size: None,
        etag: header_str(&h, ETAG),
        last_modified: header_str(&h, LAST_MODIFIED),
        final_url: resp.url().clone(),
    };
    let cr = header_str(&h, CONTENT_RANGE).and_then(|v| parse_content_range(&v));
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {
            match cr {
                Some((Some((0, last)), Some(total))) if last < total => {
                    p.ranged = true;
                    p.size = Some(total);
                    p.first = Some((last + 1, resp));
                }
                // a range without a known total: fall back to one stream
                _ => p.ranged = false,
            }
        }
        StatusCode::OK => {
            p.size = resp.content_length();
            p.whole = Some(resp);
        }
        StatusCode::RANGE_NOT_SATISFIABLE => match cr {
            // bytes=0-0 of an empty object
            Some((None, Some(0))) | None => {
                p.ranged = true;
                p.size = Some(0);
            }
            _ => {
                return Err(Failure::retry(
                    TransferKind::Protocol,
                    "416 for the first byte of a non-empty object",
                ))
            }
        },
        _ => return Err(status_failure(&resp)),
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 0-0/10"),
            Some((Some((0, 0)), Some(10)))
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some((Some((5, 9)), None))
        );
        assert_eq!(parse_content_range("bytes */0"), Some((None, Some(0))));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes x-1/2"), None);
    }

    #[test]
    fn if_match_follows_the_server_spelling_and_skips_weak_tags() {
        let c = Conditions::for_probe(Some("abc-1"));
        assert_eq!(c.if_match.as_ref().unwrap(), "abc-1");
        // after the probe: the server's own spelling
        let after = c.after_probe(Some("\"abc-1\""), Some("d"));
        assert_eq!(after.if_match.unwrap(), "\"abc-1\"");
        assert_eq!(after.if_range.unwrap(), "\"abc-1\"");
        // no ETag in the probe's answer: keep the listed one
        assert_eq!(c.after_probe(None, None).if_match.unwrap(), "abc-1");
        // weak tags never match If-Match (strong comparison)
        assert!(Conditions::for_probe(Some("W/\"a\"")).if_match.is_none());
        assert!(c.after_probe(Some("W/\"abc-1\""), None).if_match.is_none());
        // no listed ETag: no If-Match, If-Range as before
        let plain = Conditions::for_probe(None).after_probe(Some("\"x\""), None);
        assert!(plain.if_match.is_none());
        assert_eq!(plain.if_range.unwrap(), "\"x\"");
    }

    #[test]
    fn etags_compare_without_quotes_and_weak_prefix() {
        assert_eq!(normalize_etag("\"abc-3\""), "abc-3");
        assert_eq!(normalize_etag("W/\"abc-3\""), "abc-3");
        assert_eq!(normalize_etag(" abc-3 "), "abc-3");
        let c = Conditions::for_probe(Some("abc"));
        let is_etag_mismatch = |r: Result<(), Failure>, want: &str| {
            matches!(r, Err(Failure::Fatal(Error::ChecksumMismatch { ref algorithm, ref actual, .. }))
                if algorithm == "etag" && actual == want)
        };
        // another object than the listed one: fatal, never a restart onto it
        for status in [
            StatusCode::OK,
            StatusCode::PARTIAL_CONTENT,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ] {
            assert!(is_etag_mismatch(
                c.check(status, Some("\"def\"")),
                "\"def\""
            ));
        }
        assert!(is_etag_mismatch(
            c.check(StatusCode::PRECONDITION_FAILED, Some("abc")),
            "changed (HTTP 412)"
        ));
        // same ETag (e.g. only Last-Modified moved) or none: `fetch_piece`
        // restarts on a 200/416 and the next probe decides
        assert!(c.check(StatusCode::OK, Some("W/\"abc\"")).is_ok());
        assert!(c.check(StatusCode::OK, None).is_ok());
        assert!(c.check(StatusCode::FOUND, Some("x")).is_ok());
        let plain = Conditions::default();
        assert!(plain.check(StatusCode::OK, Some("x")).is_ok());
    }

    #[test]
    fn if_range_prefers_strong_etag() {
        assert_eq!(if_range_value(Some("\"a\""), Some("d")).unwrap(), "\"a\"");
        assert_eq!(if_range_value(Some("W/\"a\""), Some("d")).unwrap(), "d");
        assert!(if_range_value(Some("W/\"a\""), None).is_none());
        assert!(if_range_value(None, None).is_none());
    }
}
