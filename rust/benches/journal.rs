//! The resume journal: encoding records, decoding a whole journal on resume
//! and appending a commit's worth of records. A 2 GiB file in 1 MiB ranges
//! is 2048 records.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::time::{Duration, Instant};

use _core::engine::journal::{
    decode, encode_header, encode_record, JournalWriter, Record, Validator, RECORD_LEN,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORDS: u64 = 2048;
const RANGE: u64 = 1 << 20;

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| Record {
            offset: i * RANGE,
            len: RANGE,
            crc: Some(i as u32 ^ 0x9e37_79b9),
        })
        .collect()
}

fn validator() -> Validator {
    Validator {
        size: RECORDS * RANGE,
        etag: Some("\"5d41402abc4b2a76b9719d911017c592\"".into()),
        last_modified: Some("Fri, 04 Dec 2026 12:00:00 GMT".into()),
    }
}

fn journal(c: &mut Criterion) {
    let recs = records();
    let v = validator();
    let mut g = c.benchmark_group("journal");
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("encode_2048", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(recs.len() * RECORD_LEN);
            for r in &recs {
                out.extend_from_slice(&encode_record(r));
            }
            black_box(out)
        })
    });
    let mut bytes = encode_header(&v);
    for r in &recs {
        bytes.extend_from_slice(&encode_record(r));
    }
    g.bench_function("decode_2048", |b| {
        b.iter(|| black_box(decode(&bytes).expect("valid journal")))
    });
    // one commit at 1 GB/s: 32 MiB of ranges, 32 records, one write
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.partial.journal");
    let mut w = JournalWriter::create(&path, &v).expect("journal");
    let cut = OpenOptions::new().write(true).open(&path).expect("journal");
    g.throughput(Throughput::Elements(32));
    g.bench_function("append_32", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                // keep the file small: the writer appends at whatever the end is
                cut.set_len(0).expect("truncate");
                let n = (iters - done).min(1024);
                let t = Instant::now();
                for _ in 0..n {
                    w.append(black_box(&recs[..32])).expect("append");
                }
                spent += t.elapsed();
                done += n;
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
