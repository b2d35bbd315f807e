//! Streaming verification: digests advanced in file order on a thread of
//! their own, so hashing overlaps the network and no second read pass over
//! freshly downloaded bytes is needed.
//!
//! Workers finish ranges out of order; [`InOrder`] holds completed buffers
//! until the contiguous prefix reaches them (the memory this takes is bounded
//! by the in-flight budget, see `buffers`). Ranges found done in the journal
//! on resume are read from the partial file once, when the prefix reaches
//! them, and their crc32c is checked against the journal on the way.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crc_fast::CrcAlgorithm;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use super::buffers::Buffer;
use super::journal::Record;

/// Which digests to compute.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub sha256: bool,
    pub md5: bool,
    /// git blob sha1 of a file of this size ("blob <size>\0" prefix)
    pub git_sha1_size: Option<u64>,
    pub xxh3: bool,
    /// S3/OCI multipart digest with parts of this size (see [`PartMd5`])
    pub md5_part_size: Option<u64>,
    /// CRC-64/NVME of the whole stream (S3's full-object default checksum)
    pub crc64nvme: bool,
}

/// Hex digests of a finished stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestHex {
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub git_sha1: Option<String>,
    pub xxh3_128: Option<String>,
    /// CRC32C of the whole stream, 8 hex digits big-endian (as GCS gives it,
    /// base64-decoded); set by the hasher thread, which always computes it
    pub crc32c: Option<String>,
    /// "hex-N", see [`PartMd5`]
    pub md5_multipart: Option<String>,
    /// CRC-64/NVME of the whole stream, 16 hex digits big-endian (as S3 gives
    /// it, base64-decoded)
    pub crc64nvme: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// The digest S3 and OCI give for an object uploaded in parts: the md5 of
/// the concatenated binary md5s of the parts (all of `part_size` bytes but
/// the last), then "-" and the number of parts.
pub struct PartMd5 {
    part_size: u64,
    in_part: u64,
    parts: u64,
    part: Md5,
    outer: Md5,
}

impl PartMd5 {
    pub fn new(part_size: u64) -> Self {
        Self {
            part_size: part_size.max(1),
            in_part: 0,
            parts: 0,
            part: Md5::new(),
            outer: Md5::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.part_size - self.in_part).min(data.len() as u64) as usize;
            self.part.update(&data[..room]);
            self.in_part += room as u64;
            data = &data[room..];
            if self.in_part == self.part_size {
                self.close_part();
            }
        }
    }

    fn close_part(&mut self) {
        let d = std::mem::replace(&mut self.part, Md5::new()).finalize();
        self.outer.update(&d[..]);
        self.parts += 1;
        self.in_part = 0;
    }

    pub fn finish(mut self) -> String {
        // an empty object is one empty part
        if self.in_part > 0 || self.parts == 0 {
            self.close_part();
        }
        format!("{}-{}", hex(&self.outer.finalize()), self.parts)
    }
}

/// A CRC32C as 8 hex digits, big-endian.
pub fn crc_hex(c: u32) -> String {
    format!("{c:08x}")
}

/// A CRC-64/NVME as 16 hex digits, big-endian.
pub fn crc64_hex(c: u64) -> String {
    format!("{c:016x}")
}

/// A running CRC-64/NVME (the crate's SIMD kernels, picked for this CPU once).
pub struct Crc64Nvme(crc_fast::Digest);

impl Crc64Nvme {
    pub fn new() -> Self {
        Self(crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn hex(&self) -> String {
        crc64_hex(self.0.finalize())
    }
}

impl Default for Crc64Nvme {
    fn default() -> Self {
        Self::new()
    }
}

/// The running digests.
pub struct Digests {
    sha256: Option<Sha256>,
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    xxh3: Option<Box<Xxh3>>,
    multipart: Option<PartMd5>,
    crc64nvme: Option<Crc64Nvme>,
}

impl Digests {
    pub fn new(w: Wanted) -> Self {
        let sha1 = w.git_sha1_size.map(|size| {
            let mut h = Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            h
        });
        Self {
            sha256: w.sha256.then(Sha256::new),
            md5: w.md5.then(Md5::new),
            sha1,
            xxh3: w.xxh3.then(|| Box::new(Xxh3::new())),
            multipart: w.md5_part_size.map(PartMd5::new),
            crc64nvme: w.crc64nvme.then(Crc64Nvme::new),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.xxh3 {
            h.update(data);
        }
        if let Some(h) = &mut self.multipart {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64nvme {
            h.update(data);
        }
    }

    pub fn finish(self) -> DigestHex {
        DigestHex {
            sha256: self.sha256.map(|h| hex(&h.finalize())),
            md5: self.md5.map(|h| hex(&h.finalize())),
            git_sha1: self.sha1.map(|h| hex(&h.finalize())),
            xxh3_128: self.xxh3.map(|h| format!("{:032x}", h.digest128())),
            crc32c: None,
            md5_multipart: self.multipart.map(PartMd5::finish),
            crc64nvme: self.crc64nvme.as_ref().map(Crc64Nvme::hex),
        }
    }
}

/// Reorder buffer: accepts items keyed by offset in any order and releases
/// them in offset order once the prefix is contiguous.
pub struct InOrder<T> {
    next: u64,
    pending: BTreeMap<u64, (u64, T)>,
}

impl<T> InOrder<T> {
    pub fn new(start: u64) -> Self {
        Self {
            next: start,
            pending: BTreeMap::new(),
        }
    }

    /// Offset up to which items were released.
    pub fn frontier(&self) -> u64 {
        self.next
    }

    pub fn held(&self) -> usize {
        self.pending.len()
    }

    pub fn push(&mut self, offset: u64, len: u64, item: T) {
        self.pending.insert(offset, (len, item));
    }

    /// Next item if it starts exactly at the frontier.
    pub fn pop_ready(&mut self) -> Option<(u64, u64, T)> {
        let (&off, _) = self.pending.first_key_value()?;
        if off != self.next {
            return None;
        }
        let (len, item) = self.pending.remove(&off)?;
        self.next = off + len;
        Some((off, len, item))
    }
}

/// Work for the hasher thread.
pub enum Item {
    /// Freshly received bytes (already written to the file).
    Mem(Buffer),
    /// Bytes found done on resume: read them from the file, check the crc.
    File { crc: Option<u32> },
}

pub struct Msg {
    pub offset: u64,
    pub len: u64,
    pub item: Item,
}

/// What the hasher thread reports at the end.
#[derive(Debug)]
pub enum Outcome {
    Done {
        digests: DigestHex,
        hashed: u64,
    },
    /// A resumed range failed its crc32c: the partial file is damaged.
    Corrupt {
        offset: u64,
    },
    Io(std::io::Error),
}

/// Spawn the hasher thread. It ends when all senders are dropped.
pub fn spawn(
    wanted: Wanted,
    file: Arc<File>,
    rx: Receiver<Msg>,
    journal: Option<Sender<Record>>,
) -> std::io::Result<JoinHandle<Outcome>> {
    std::thread::Builder::new()
        .name("ome-hasher".into())
        .spawn(move || run(wanted, &file, rx, journal))
}

/// Sub-slice size: every digest runs over it while it is hot in cache.
const STEP: usize = 64 << 10;

/// Advance the digests and a crc32c over `data`, one cache-sized step at a time.
fn feed(d: &mut Digests, crc: u32, data: &[u8]) -> u32 {
    let mut c = crc;
    for sub in data.chunks(STEP) {
        c = crc32c::crc32c_append(c, sub);
        d.update(sub);
    }
    c
}

fn run(wanted: Wanted, file: &File, rx: Receiver<Msg>, journal: Option<Sender<Record>>) -> Outcome {
    let mut d = Digests::new(wanted);
    // whole-file CRC32C, combined from the per-range ones computed anyway
    let mut whole = 0u32;
    let mut order = InOrder::new(0);
    let mut scratch: Vec<u8> = Vec::new();
    while let Ok(m) = rx.recv() {
        order.push(m.offset, m.len, m.item);
        while let Some((off, len, item)) = order.pop_ready() {
            match item {
                Item::Mem(buf) => {
                    let mut c = 0u32;
                    for p in buf.parts(len as usize) {
                        c = feed(&mut d, c, p);
                    }
                    // dropping `buf` returns its slabs and budget
                    drop(buf);
                    whole = crc32c::crc32c_combine(whole, c, len as usize);
                    // The piece's crc32c is computed here, off the network
                    // threads; its journal record follows from here too.
                    if let Some(j) = &journal {
                        let _ = j.send(Record {
                            offset: off,
                            len,
                            crc: Some(c),
                        });
                    }
                }
                Item::File { crc } => {
                    if scratch.is_empty() {
                        scratch = vec![0u8; 1 << 20];
                    }
                    let mut c = 0u32;
                    let mut pos = off;
                    while pos < off + len {
                        let n = ((off + len - pos) as usize).min(scratch.len());
                        if let Err(e) = file.read_exact_at(&mut scratch[..n], pos) {
                            return Outcome::Io(e);
                        }
                        c = feed(&mut d, c, &scratch[..n]);
                        pos += n as u64;
                    }
                    if crc.is_some_and(|want| want != c) {
                        return Outcome::Corrupt { offset: off };
                    }
                    whole = crc32c::crc32c_combine(whole, c, len as usize);
                }
            }
        }
    }
    let mut digests = d.finish();
    digests.crc32c = Some(crc_hex(whole));
    Outcome::Done {
        digests,
        hashed: order.frontier(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests() {
        let mut d = Digests::new(Wanted {
            sha256: true,
            md5: true,
            git_sha1_size: Some(6),
            xxh3: true,
            md5_part_size: None,
            crc64nvme: true,
        });
        d.update(b"hel");
        d.update(b"lo\n");
        let h = d.finish();
        assert_eq!(
            h.sha256.unwrap(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(h.md5.unwrap(), "b1946ac92492d2347c6235b4d2611184");
        // `git hash-object` of "hello\n"
        assert_eq!(
            h.git_sha1.unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(h.xxh3_128.unwrap().len(), 32);
        assert_eq!(h.crc64nvme.unwrap(), crc64_hex(crc_reference(b"hello\n")));
    }

    /// CRC-64/NVME bit by bit from its catalogue parameters (reflected poly
    /// 0x9a6c9329ac4bc9b5, init and xorout all ones): no table, no SIMD.
    fn crc_reference(data: &[u8]) -> u64 {
        let mut c = !0u64;
        for &b in data {
            c ^= u64::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x9a6c_9329_ac4b_c9b5
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn crc64nvme_check_value() {
        // the catalogue's check value: CRC-64/NVME of "123456789"
        let mut c = Crc64Nvme::new();
        c.update(b"123456789");
        assert_eq!(c.hex(), "ae8b14860a799888");
        assert_eq!(crc_reference(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(Crc64Nvme::new().hex(), "0000000000000000");
        assert_eq!(crc64_hex(0xab), "00000000000000ab");
    }

    #[test]
    fn crc64nvme_only_when_wanted() {
        let mut d = Digests::new(Wanted {
            sha256: true,
            ..Default::default()
        });
        d.update(b"hello\n");
        assert_eq!(d.finish().crc64nvme, None);
    }

    proptest! {
        #[test]
        fn crc64nvme_ignores_how_bytes_arrive(
            len in 0usize..20_000,
            cuts in proptest::collection::vec(0usize..20_000, 0..12),
        ) {
            // long enough for the SIMD folding paths, cut anywhere
            let data: Vec<u8> = (0..len as u32).map(|i| (i * 29 % 256) as u8).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            let mut c = Crc64Nvme::new();
            for w in cuts.windows(2) {
                c.update(&data[w[0]..w[1]]);
            }
            prop_assert_eq!(c.hex(), crc64_hex(crc_reference(&data)));
        }
    }

    /// md5(concat(md5(part_i))) + "-N", computed the plain way.
    fn multipart_reference(data: &[u8], part: usize) -> String {
        let mut outer = Md5::new();
        let mut n = 0;
        for p in data.chunks(part) {
            outer.update(&Md5::digest(p)[..]);
            n += 1;
        }
        if n == 0 {
            outer.update(&Md5::digest(b"")[..]);
            n = 1;
        }
        format!("{}-{n}", hex(&outer.finalize()))
    }

    #[test]
    fn multipart_md5_known_shapes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for part in [1usize, 7, 4096, 5000, 9_999, 10_000, 10_001] {
            let mut h = PartMd5::new(part as u64);
            h.update(&data);
            assert_eq!(h.finish(), multipart_reference(&data, part), "part {part}");
        }
        // exact multiple: no empty trailing part
        let mut h = PartMd5::new(5000);
        h.update(&data);
        assert!(h.finish().ends_with("-2"));
        // one part: md5 of the md5, "-1" (what S3 gives for a 1-part upload)
        let mut h = PartMd5::new(1 << 20);
        h.update(b"hello\n");
        let inner = Md5::digest(b"hello\n");
        assert_eq!(h.finish(), format!("{}-1", hex(&Md5::digest(&inner[..]))));
        assert_eq!(PartMd5::new(8).finish(), multipart_reference(b"", 8));
    }

    #[test]
    fn crc32c_combine_of_ranges_is_the_whole_crc() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let whole = crc32c::crc32c(&data);
        // the hasher starts from 0: combining into "nothing yet" gives the range's crc
        let c = crc32c::crc32c(&data[..10]);
        assert_eq!(crc32c::crc32c_combine(0, c, 10), c);
        let mut acc = 0u32;
        for r in data.chunks(7_777) {
            acc = crc32c::crc32c_combine(acc, crc32c::crc32c(r), r.len());
        }
        assert_eq!(acc, whole);
        assert_eq!(crc_hex(0x0012_abcd), "0012abcd");
    }

    proptest! {
        #[test]
        fn multipart_md5_ignores_how_bytes_arrive(
            len in 0usize..20_000,
            part in 1u64..6_000,
            cuts in proptest::collection::vec(0usize..20_000, 0..12),
        ) {
            let data: Vec<u8> = (0..len as u32).map(|i| (i * 13 % 256) as u8).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            let mut h = PartMd5::new(part);
            for w in cuts.windows(2) {
                h.update(&data[w[0]..w[1]]);
            }
            prop_assert_eq!(h.finish(), multipart_reference(&data, part as usize));
        }
    }

    #[test]
    fn nothing_wanted_gives_nothing() {
        assert_eq!(
            Digests::new(Wanted::default()).finish(),
            DigestHex::default()
        );
    }

    proptest! {
        #[test]
        fn in_order_releases_prefix_in_order(lens in proptest::collection::vec(1u64..100, 1..40), seed in any::<u64>()) {
            let mut items = Vec::new();
            let mut pos = 0;
            for l in &lens { items.push((pos, *l)); pos += l; }
            let mut shuffled = items.clone();
            fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
            let mut o = InOrder::new(0);
            let mut out = Vec::new();
            for (off, len) in shuffled {
                o.push(off, len, ());
                while let Some((a, l, ())) = o.pop_ready() { out.push((a, l)); }
            }
            prop_assert_eq!(out, items);
            prop_assert_eq!(o.frontier(), pos);
            prop_assert_eq!(o.held(), 0);
        }
    }

    #[test]
    fn hasher_thread_matches_one_shot_digest() {
        use std::io::Write;
        use std::sync::mpsc::channel;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp);
        let (tx, rx) = channel();
        let w = Wanted {
            sha256: true,
            crc64nvme: true,
            ..Default::default()
        };
        let h = spawn(w, file, rx, None).unwrap();
        let pool = Arc::new(super::super::buffers::SlabPool::default());
        // middle range from memory, sent first; ends resumed from the file
        let (a, b) = (1_000_000u64, 2_500_000u64);
        let mut buf = Buffer::new(pool, (b - a) as usize, vec![]);
        buf.write_at(0, &data[a as usize..b as usize]);
        tx.send(Msg {
            offset: a,
            len: b - a,
            item: Item::Mem(buf),
        })
        .unwrap();
        let crc_tail = crc32c::crc32c(&data[b as usize..]);
        tx.send(Msg {
            offset: b,
            len: data.len() as u64 - b,
            item: Item::File {
                crc: Some(crc_tail),
            },
        })
        .unwrap();
        tx.send(Msg {
            offset: 0,
            len: a,
            item: Item::File { crc: None },
        })
        .unwrap();
        drop(tx);
        let mut one = Digests::new(w);
        one.update(&data);
        let mut want = one.finish();
        // the whole-file crc32c combined from the three ranges
        want.crc32c = Some(crc_hex(crc32c::crc32c(&data)));
        match h.join().unwrap() {
            Outcome::Done { digests, hashed } => {
                assert_eq!(hashed, data.len() as u64);
                assert_eq!(digests, want);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn corrupt_resumed_range_is_reported() {
        use std::io::Write;
        use std::sync::mpsc::channel;
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let (tx, rx) = channel();
        let h = spawn(Wanted::default(), Arc::new(tmp), rx, None).unwrap();
        tx.send(Msg {
            offset: 0,
            len: 10,
            item: Item::File { crc: Some(1) },
        })
        .unwrap();
        drop(tx);
        assert!(matches!(h.join().unwrap(), Outcome::Corrupt { offset: 0 }));
    }
}
