//! End-to-end checks of the transfer engine from Rust, against a small
//! HTTP/1.1 server on loopback started by each test (no Python involved).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use _core::engine::journal::{JournalWriter, Record, Validator};
use _core::engine::transfer::{run, TransferOutcome, TransferSpec, TransferState};
use _core::engine::{file::partial_paths, runtime::runtime, Engine, EngineConfig};
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Log {
    /// (path, range header, authorization header present)
    requests: Vec<(String, Option<String>, bool)>,
    body_bytes: u64,
}

/// Serve `body` at `/f` with Range support; `/r` redirects to `redirect_to`.
fn serve(body: Arc<Vec<u8>>, redirect_to: Option<String>) -> (u16, Arc<Mutex<Log>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = log.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (body, log, redirect_to) = (body.clone(), log2.clone(), redirect_to.clone());
            thread::spawn(move || handle(s, &body, &log, redirect_to.as_deref()));
        }
    });
    (port, log)
}

fn handle(mut s: TcpStream, body: &[u8], log: &Mutex<Log>, redirect_to: Option<&str>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let range = headers.get("range").cloned();
        log.lock().unwrap().requests.push((
            path.clone(),
            range.clone(),
            headers.contains_key("authorization"),
        ));
        if path == "/r" {
            let to = redirect_to.unwrap_or("/f");
            let _ = write!(
                s,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
            );
            continue;
        }
        let n = body.len() as u64;
        let (a, b) = match range.as_deref().and_then(|v| v.strip_prefix("bytes=")) {
            Some(spec) => {
                let (a, b) = spec.split_once('-').unwrap();
                let a: u64 = a.parse().unwrap();
                let b: u64 = b.parse::<u64>().map(|b| b.min(n - 1)).unwrap_or(n - 1);
                (a, b)
            }
            None => (0, n - 1),
        };
        let chunk = &body[a as usize..=b as usize];
        let head = if range.is_some() {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{n}\r\nETag: \"v1\"\r\nContent-Length: {}\r\n\r\n",
                chunk.len()
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: {}\r\n\r\n",
                chunk.len()
            )
        };
        if s.write_all(head.as_bytes()).is_err() || s.write_all(chunk).is_err() {
            return;
        }
        log.lock().unwrap().body_bytes += chunk.len() as u64;
    }
}

fn body(n: usize) -> Arc<Vec<u8>> {
    let mut x = 0x9e3779b97f4a7c15u64;
    Arc::new(
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    )
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn spec(url: String, dest: std::path::PathBuf, sha256: String) -> TransferSpec {
    TransferSpec {
        url,
        dest,
        sha256: Some(sha256),
        hash: true,
        resume: true,
        connections: Some(4),
        chunk_size: Some(1 << 20),
        ..Default::default()
    }
}

fn engine() -> Arc<Engine> {
    Engine::new(EngineConfig::default()).unwrap()
}

/// Runs one transfer to completion on a fresh engine; panics if it fails.
fn transfer(s: TransferSpec) -> TransferOutcome {
    runtime()
        .unwrap()
        .block_on(run(
            engine(),
            Arc::new(s),
            Arc::new(TransferState::default()),
        ))
        .unwrap()
}

#[test]
fn ranged_transfer_is_verified_and_published() {
    let data = body(5 << 20 | 123);
    let (port, log) = serve(data.clone(), None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let s = spec(
        format!("http://127.0.0.1:{port}/f"),
        dest.clone(),
        sha(&data),
    );
    let out = transfer(s);
    assert_eq!(std::fs::read(&dest).unwrap(), *data);
    assert_eq!(out.verified, vec!["sha256".to_string()]);
    assert!(out.ranged);
    let (p, j) = partial_paths(&dest);
    assert!(!p.exists() && !j.exists());
    // every byte fetched once: the probe's body is the first piece
    assert_eq!(log.lock().unwrap().body_bytes, data.len() as u64);
}

#[test]
fn resume_fetches_only_missing_ranges() {
    let data = body(4 << 20);
    let (port, log) = serve(data.clone(), None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let (p, j) = partial_paths(&dest);
    // a previous run finished the first 2 MiB
    let half = 2u64 << 20;
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&data[..half as usize]).unwrap();
    f.set_len(data.len() as u64).unwrap();
    let v = Validator {
        size: data.len() as u64,
        etag: Some("\"v1\"".into()),
        last_modified: None,
    };
    let mut w = JournalWriter::create(&j, &v).unwrap();
    w.append(&[Record {
        offset: 0,
        len: half,
        crc: Some(crc32c::crc32c(&data[..half as usize])),
    }])
    .unwrap();
    let s = spec(
        format!("http://127.0.0.1:{port}/f"),
        dest.clone(),
        sha(&data),
    );
    let out = transfer(s);
    assert_eq!(out.resumed_bytes, half);
    assert_eq!(out.fetched_bytes, data.len() as u64 - half);
    assert_eq!(std::fs::read(&dest).unwrap(), *data);
    let l = log.lock().unwrap();
    assert!(
        l.body_bytes <= data.len() as u64 - half + 1,
        "{}",
        l.body_bytes
    );
}

#[test]
fn authorization_does_not_follow_a_redirect_to_another_host() {
    let data = body(3 << 20);
    let (cdn, cdn_log) = serve(data.clone(), None);
    // "localhost" is another host than "127.0.0.1" for the redirect rules
    let (origin, origin_log) = serve(data.clone(), Some(format!("http://localhost:{cdn}/f")));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let mut s = spec(
        format!("http://127.0.0.1:{origin}/r"),
        dest.clone(),
        sha(&data),
    );
    s.headers
        .insert("authorization", "Bearer secret-token".parse().unwrap());
    transfer(s);
    assert_eq!(std::fs::read(&dest).unwrap(), *data);
    let o = origin_log.lock().unwrap();
    assert!(o.requests.iter().all(|r| r.2), "origin gets the token");
    let c = cdn_log.lock().unwrap();
    assert!(!c.requests.is_empty());
    assert!(
        c.requests.iter().all(|r| !r.2),
        "token leaked to the other host"
    );
    assert!(
        c.requests.iter().all(|r| r.1.is_some()),
        "Range kept on redirect"
    );
}
