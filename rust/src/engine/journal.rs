//! Resume journal `<dest>.partial.journal`, written beside the partial file.
//!
//! Layout: a header (magic, length-prefixed JSON validator, crc32c of the
//! JSON) followed by fixed 28-byte records `offset u64 | len u64 | data crc32c
//! u32 | flags u32 | record crc32c u32`, all little endian.
//!
//! Durability order: the transfer fdatasyncs the partial file *before* it
//! appends the records of the ranges that sync covered, so a record on disk
//! always describes durable data. A torn or corrupt tail record (crash
//! mid-append) is simply ignored: its range is fetched again. A corrupt
//! header, or records that overlap or leave the file, discard the journal.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"OMEJRNL1";
pub const RECORD_LEN: usize = 28;
const FLAG_HAS_CRC: u32 = 1;

/// What identifies the remote object: a changed object invalidates the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validator {
    /// Same object? Size must match and every validator both sides know.
    pub fn matches(&self, other: &Validator) -> bool {
        if self.size != other.size {
            return false;
        }
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => return a == b,
            (None, None) => {}
            _ => return false,
        }
        match (&self.last_modified, &other.last_modified) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => false,
        }
    }
}

/// A finished range and the crc32c of its bytes (None when hashing is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub len: u64,
    pub crc: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JournalError {
    #[error("journal header is missing or corrupt")]
    BadHeader,
    #[error("journal records overlap or leave the file")]
    BadRecords,
}

pub fn encode_header(v: &Validator) -> Vec<u8> {
    let json = serde_json::to_vec(v).unwrap_or_default();
    let mut out = Vec::with_capacity(16 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    out
}

pub fn encode_record(r: &Record) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..8].copy_from_slice(&r.offset.to_le_bytes());
    b[8..16].copy_from_slice(&r.len.to_le_bytes());
    b[16..20].copy_from_slice(&r.crc.unwrap_or(0).to_le_bytes());
    let flags = if r.crc.is_some() { FLAG_HAS_CRC } else { 0 };
    b[20..24].copy_from_slice(&flags.to_le_bytes());
    let c = crc32c::crc32c(&b[0..24]);
    b[24..28].copy_from_slice(&c.to_le_bytes());
    b
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Decode a whole journal. Records are returned sorted by offset.
pub fn decode(bytes: &[u8]) -> Result<(Validator, Vec<Record>), JournalError> {
    if bytes.len() < 12 || &bytes[0..8] != MAGIC {
        return Err(JournalError::BadHeader);
    }
    let jlen = u32_at(bytes, 8) as usize;
    let hend = 12usize
        .checked_add(jlen)
        .and_then(|x| x.checked_add(4))
        .ok_or(JournalError::BadHeader)?;
    if bytes.len() < hend || jlen > 64 * 1024 {
        return Err(JournalError::BadHeader);
    }
    let json = &bytes[12..12 + jlen];
    if crc32c::crc32c(json) != u32_at(bytes, 12 + jlen) {
        return Err(JournalError::BadHeader);
    }
    let v: Validator = serde_json::from_slice(json).map_err(|_| JournalError::BadHeader)?;
    let mut recs = Vec::new();
    for b in bytes[hend..].chunks(RECORD_LEN) {
        if b.len() < RECORD_LEN || crc32c::crc32c(&b[0..24]) != u32_at(b, 24) {
            // torn or corrupt tail: everything after it is untrusted
            break;
        }
        let (offset, len) = (u64_at(b, 0), u64_at(b, 8));
        let flags = u32_at(b, 20);
        let crc = (flags & FLAG_HAS_CRC != 0).then(|| u32_at(b, 16));
        let end = offset.checked_add(len).ok_or(JournalError::BadRecords)?;
        if len == 0 || end > v.size {
            return Err(JournalError::BadRecords);
        }
        recs.push(Record { offset, len, crc });
    }
    recs.sort_by_key(|r| r.offset);
    for w in recs.windows(2) {
        if w[0].offset + w[0].len > w[1].offset {
            return Err(JournalError::BadRecords);
        }
    }
    Ok((v, recs))
}

/// Read and decode the journal at `path`; any problem means "no usable journal".
pub fn load(path: &Path) -> Option<(Validator, Vec<Record>)> {
    let mut f = File::open(path).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    decode(&buf).ok()
}

/// Append-only writer.
pub struct JournalWriter {
    file: File,
}

impl JournalWriter {
    /// Start a fresh journal (truncates) with the validator header.
    pub fn create(path: &Path, v: &Validator) -> std::io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        file.write_all(&encode_header(v))?;
        Ok(Self { file })
    }

    /// Continue an existing journal.
    pub fn append_to(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self { file })
    }

    pub fn append(&mut self, recs: &[Record]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(recs.len() * RECORD_LEN);
        for r in recs {
            buf.extend_from_slice(&encode_record(r));
        }
        self.file.write_all(&buf)
    }
}

/// Records are committed at least this often...
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// ...or as soon as they cover this many bytes: at 1 GB/s a time-only rule
/// would lose most of a file's progress to a kill -9.
const COMMIT_BYTES: u64 = 32 << 20;

/// Journal thread: every [`COMMIT_EVERY`] or [`COMMIT_BYTES`], make the data
/// written so far durable (fdatasync), then append the records of the
/// pieces that sync covered.
pub fn spawn_writer(
    mut w: JournalWriter,
    file: Arc<File>,
    rx: Receiver<Record>,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    std::thread::Builder::new()
        .name("ome-journal".into())
        .spawn(move || {
            let mut pending: Vec<Record> = Vec::new();
            let mut pending_bytes = 0u64;
            let mut last = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(r) => {
                        pending_bytes += r.len;
                        pending.push(r);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if !pending.is_empty()
                    && (pending_bytes >= COMMIT_BYTES || last.elapsed() >= COMMIT_EVERY)
                {
                    file.sync_data()?;
                    w.append(&pending)?;
                    pending.clear();
                    pending_bytes = 0;
                    last = Instant::now();
                }
            }
            if !pending.is_empty() {
                file.sync_data()?;
                w.append(&pending)?;
            }
            Ok(())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v() -> Validator {
        Validator {
            size: 1 << 20,
            etag: Some("\"abc\"".into()),
            last_modified: None,
        }
    }

    #[test]
    fn roundtrip() {
        let mut b = encode_header(&v());
        let r1 = Record {
            offset: 4096,
            len: 100,
            crc: Some(7),
        };
        let r0 = Record {
            offset: 0,
            len: 4096,
            crc: None,
        };
        b.extend_from_slice(&encode_record(&r1));
        b.extend_from_slice(&encode_record(&r0));
        let (vv, recs) = decode(&b).unwrap();
        assert_eq!(vv, v());
        assert_eq!(recs, vec![r0, r1]);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let mut b = encode_header(&v());
        b.extend_from_slice(&encode_record(&Record {
            offset: 0,
            len: 10,
            crc: Some(1),
        }));
        b.extend_from_slice(
            &encode_record(&Record {
                offset: 10,
                len: 10,
                crc: Some(2),
            })[..20],
        );
        assert_eq!(decode(&b).unwrap().1.len(), 1);
    }

    #[test]
    fn corrupt_header_and_overlaps_are_rejected() {
        let mut b = encode_header(&v());
        b[14] ^= 0xff;
        assert_eq!(decode(&b), Err(JournalError::BadHeader));
        assert_eq!(decode(b"nope"), Err(JournalError::BadHeader));
        let mut b = encode_header(&v());
        b.extend_from_slice(&encode_record(&Record {
            offset: 0,
            len: 10,
            crc: None,
        }));
        b.extend_from_slice(&encode_record(&Record {
            offset: 5,
            len: 10,
            crc: None,
        }));
        assert_eq!(decode(&b), Err(JournalError::BadRecords));
        let mut b = encode_header(&v());
        b.extend_from_slice(&encode_record(&Record {
            offset: (1 << 20) - 1,
            len: 2,
            crc: None,
        }));
        assert_eq!(decode(&b), Err(JournalError::BadRecords));
    }

    #[test]
    fn validator_matching() {
        let a = v();
        let mut b = v();
        assert!(a.matches(&b));
        b.etag = Some("\"other\"".into());
        assert!(!a.matches(&b));
        b.etag = None;
        assert!(!a.matches(&b));
        let mut c = v();
        c.size += 1;
        assert!(!a.matches(&c));
    }

    #[test]
    fn writer_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut w = JournalWriter::create(&p, &v()).unwrap();
        w.append(&[Record {
            offset: 0,
            len: 5,
            crc: Some(3),
        }])
        .unwrap();
        drop(w);
        let mut w = JournalWriter::append_to(&p).unwrap();
        w.append(&[Record {
            offset: 5,
            len: 5,
            crc: None,
        }])
        .unwrap();
        assert_eq!(load(&p).unwrap().1.len(), 2);
    }

    proptest! {
        #[test]
        fn roundtrip_any_disjoint_records(lens in proptest::collection::vec((1u64..5000, 0u64..5000, any::<Option<u32>>()), 0..50)) {
            let mut recs = Vec::new();
            let mut pos = 0u64;
            for (len, gap, crc) in lens {
                pos += gap;
                recs.push(Record { offset: pos, len, crc });
                pos += len;
            }
            let val = Validator { size: pos, etag: None, last_modified: Some("x".into()) };
            let mut b = encode_header(&val);
            for r in recs.iter().rev() { b.extend_from_slice(&encode_record(r)); }
            let (vv, got) = decode(&b).unwrap();
            prop_assert_eq!(vv, val);
            prop_assert_eq!(got, recs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
            let _ = decode(&bytes);
            let mut b = encode_header(&v());
            b.extend_from_slice(&bytes);
            let cut = cut.min(b.len());
            let _ = decode(&b[..cut]);
        }

        #[test]
        fn truncation_keeps_a_prefix(n in 0usize..10, cut in 0usize..(10 * RECORD_LEN)) {
            let mut b = encode_header(&v());
            let h = b.len();
            for i in 0..n as u64 { b.extend_from_slice(&encode_record(&Record { offset: i * 10, len: 10, crc: None })); }
            let cut = (h + cut).min(b.len());
            let (_, recs) = decode(&b[..cut]).unwrap();
            prop_assert_eq!(recs.len(), (cut - h) / RECORD_LEN);
        }
    }
}
