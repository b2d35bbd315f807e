//! Digest throughput of the engine's own hashing types over buffers of the
//! sizes a range arrives in, fed in the hasher thread's 64 KiB steps.
//!
//! The one-core rate of each digest is the ceiling of a verified single-file
//! download (see `benches/README.md`, "Where the CPU goes").

use std::hint::black_box;

use _core::engine::hasher::{Digests, PartMd5, Wanted};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const MIB: usize = 1 << 20;
/// The step the hasher thread feeds every digest with.
const STEP: usize = 64 << 10;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect()
}

fn digests(c: &mut Criterion) {
    let kinds: [(&str, Wanted); 5] = [
        (
            "sha256",
            Wanted {
                sha256: true,
                ..Wanted::default()
            },
        ),
        (
            "md5",
            Wanted {
                md5: true,
                ..Wanted::default()
            },
        ),
        (
            "git_sha1",
            Wanted {
                git_sha1_size: Some(0),
                ..Wanted::default()
            },
        ),
        (
            "xxh3",
            Wanted {
                xxh3: true,
                ..Wanted::default()
            },
        ),
        (
            "crc64nvme",
            Wanted {
                crc64nvme: true,
                ..Wanted::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("digest");
    g.sample_size(10);
    for size in [MIB, 16 * MIB] {
        let buf = data(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (name, wanted) in kinds {
            g.bench_with_input(BenchmarkId::new(name, size / MIB), &buf, |b, buf| {
                b.iter(|| {
                    let mut d = Digests::new(wanted);
                    for sub in buf.chunks(STEP) {
                        d.update(sub);
                    }
                    black_box(d.finish())
                })
            });
        }
        // computed for every range regardless of the digests asked for
        g.bench_with_input(BenchmarkId::new("crc32c", size / MIB), &buf, |b, buf| {
            b.iter(|| {
                let mut c = 0u32;
                for sub in buf.chunks(STEP) {
                    c = crc32c::crc32c_append(c, sub);
                }
                black_box(c)
            })
        });
        g.bench_with_input(
            BenchmarkId::new("md5_multipart_8MiB", size / MIB),
            &buf,
            |b, buf| {
                b.iter(|| {
                    let mut h = PartMd5::new(8 * MIB as u64);
                    for sub in buf.chunks(STEP) {
                        h.update(sub);
                    }
                    black_box(h.finish())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, digests);
criterion_main!(benches);
