//! One HTTP exchange of a transfer: the probe, and a ranged GET streamed into
//! a buffer. Every failure is classified here (retry, fatal, or "the object
//! changed") so the callers only decide how often to try again.

use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED,
    LOCATION, RANGE, RETRY_AFTER,
};
use reqwest::{Client, Response, StatusCode, Url};

use super::buffers::Buffer;
use super::client::error_chain;
use super::progress::Progress;
use super::sign::{same_origin, RequestHeaders};
use super::{retry, Engine};
use crate::error::{redact_url, Error};

/// How an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try (5xx, 408, 429, reset, truncated, stalled).
    Retry {
        msg: String,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying.
    Fatal(Error),
    /// The object changed under us (If-Range answered with the whole body);
    /// the ETag of that answer, if it had one.
    Changed(Option<String>),
}

impl Failure {
    fn retry(msg: impl Into<String>) -> Self {
        Failure::Retry {
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
pub fn if_range_value(etag: Option<&str>, last_modified: Option<&str>) -> Option<HeaderValue> {
    match etag {
        Some(e) if !e.starts_with("W/") => HeaderValue::from_str(e).ok(),
        _ => last_modified.and_then(|l| HeaderValue::from_str(l).ok()),
    }
}

/// Hops a signed request follows itself (reqwest's own limit is 10 too).
const MAX_REDIRECTS: usize = 10;

/// Send a GET, optionally ranged (`[start, end)`), within `timeout` for the
/// response head of each hop.
///
/// Unsigned requests let the client follow redirects (it drops
/// Authorization/Cookie on the way to another origin). Signed requests
/// follow them here: re-signed for the same origin, and with neither the
/// signature nor other credentials once a redirect leaves it.
pub async fn get(
    engine: &Engine,
    url: &Url,
    headers: &RequestHeaders,
    range: Option<(u64, u64)>,
    if_range: Option<&HeaderValue>,
    timeout: Duration,
) -> Result<Response, Failure> {
    if headers.sign.is_none() {
        let h = headers.base.clone();
        return send(&engine.client, url, h, range, if_range, timeout).await;
    }
    let mut target = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let h = headers.build().map_err(|message| {
            Failure::Fatal(Error::Transfer {
                url: redact_url(url.as_str()),
                message,
            })
        })?;
        let resp = send(&engine.client_manual, &target, h, range, if_range, timeout).await?;
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
        if !same_origin(&target, &next) {
            let h = headers.for_other_origin().base;
            return send(&engine.client, &next, h, range, if_range, timeout).await;
        }
        target = next;
    }
    Err(Failure::Fatal(Error::Transfer {
        url: redact_url(url.as_str()),
        message: format!("more than {MAX_REDIRECTS} redirects"),
    }))
}

/// One request with `client`, within `timeout` for the response head.
async fn send(
    client: &Client,
    url: &Url,
    headers: HeaderMap,
    range: Option<(u64, u64)>,
    if_range: Option<&HeaderValue>,
    timeout: Duration,
) -> Result<Response, Failure> {
    let mut req = client
        .get(url.clone())
        .headers(headers)
        .header(ACCEPT_ENCODING, "identity");
    if let Some((a, b)) = range {
        req = req.header(RANGE, format!("bytes={a}-{}", b.saturating_sub(1)));
        if let Some(v) = if_range {
            req = req.header(IF_RANGE, v.clone());
        }
    }
    match tokio::time::timeout(timeout, req.send()).await {
        Err(_) => Err(Failure::retry(format!(
            "no response within {:.0} s",
            timeout.as_secs_f64()
        ))),
        Ok(Err(e)) if e.is_builder() => Err(Failure::Fatal(Error::InvalidInput(format!(
            "url: cannot request {}: {}",
            redact_url(url.as_str()),
            error_chain(&e)
        )))),
        Ok(Err(e)) if e.is_redirect() => Err(Failure::Fatal(Error::Transfer {
            url: redact_url(url.as_str()),
            message: error_chain(&e),
        })),
        Ok(Err(e)) => Err(Failure::retry(error_chain(&e))),
        Ok(Ok(r)) => Ok(r),
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
            msg: format!("HTTP {status}"),
            retry_after,
        }
    } else {
        Failure::Fatal(Error::HttpStatus {
            status,
            url: redact_url(resp.url().as_str()),
        })
    }
}

/// Read the next body chunk, failing when nothing arrives for `stall`.
pub async fn next_chunk(
    resp: &mut Response,
    stall: Duration,
) -> Result<Option<bytes::Bytes>, Failure> {
    match tokio::time::timeout(stall, resp.chunk()).await {
        Err(_) => Err(Failure::retry(format!(
            "stalled: no bytes for {:.0} s",
            stall.as_secs_f64()
        ))),
        Ok(Err(e)) => Err(Failure::retry(error_chain(&e))),
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
    if_range: Option<&HeaderValue>,
    start: u64,
    end: u64,
    buf: &mut Buffer,
    got: &mut usize,
    stall: Duration,
    progress: &Progress,
) -> Result<(), Failure> {
    let from = start + *got as u64;
    let resp = get(engine, url, headers, Some((from, end)), if_range, stall).await?;
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {}
        // If-Range did not match (or Range is no longer honoured): the
        // bytes we already hold may belong to another version.
        StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(Failure::Changed(header_str(resp.headers(), ETAG)))
        }
        _ => return Err(status_failure(&resp)),
    }
    let cr = header_str(resp.headers(), CONTENT_RANGE).and_then(|v| parse_content_range(&v));
    match cr {
        Some((Some((a, _)), _)) if a == from => {}
        _ => {
            return Err(Failure::retry(
                "Content-Range does not match the requested range",
            ))
        }
    }
    read_piece(resp, start, end, buf, got, stall, progress).await
}

/// Read the body of a 206 answering `[start + *got, end)` into `buf`.
pub async fn read_piece(
    mut resp: Response,
    start: u64,
    end: u64,
    buf: &mut Buffer,
    got: &mut usize,
    stall: Duration,
    progress: &Progress,
) -> Result<(), Failure> {
    let from = start + *got as u64;
    let want = (end - start) as usize;
    while let Some(chunk) = next_chunk(&mut resp, stall).await? {
        if *got + chunk.len() > want {
            return Err(Failure::retry("server sent more bytes than requested"));
        }
        buf.write_at(*got, &chunk);
        *got += chunk.len();
        // counted on arrival (kept across retries), so progress is smooth
        progress.add(chunk.len() as u64);
    }
    if *got < want {
        return Err(Failure::retry(format!(
            "truncated body: {} of {} bytes",
            *got as u64 + start - from,
            end - from
        )));
    }
    Ok(())
}

/// Read and discard what is left of a (small) body so the connection can
/// return to the keep-alive pool.
pub async fn drain(mut resp: Response, stall: Duration) {
    while let Ok(Some(_)) = next_chunk(&mut resp, stall).await {}
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
    timeout: Duration,
    first_len: u64,
) -> Result<Probe, Failure> {
    let resp = get(
        engine,
        url,
        headers,
        Some((0, first_len.max(1))),
        None,
        timeout,
    )
    .await?;
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
    fn if_range_prefers_strong_etag() {
        assert_eq!(if_range_value(Some("\"a\""), Some("d")).unwrap(), "\"a\"");
        assert_eq!(if_range_value(Some("W/\"a\""), Some("d")).unwrap(), "d");
        assert!(if_range_value(Some("W/\"a\""), None).is_none());
        assert!(if_range_value(None, None).is_none());
    }
}
