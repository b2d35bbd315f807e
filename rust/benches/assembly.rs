//! Range assembly: the reorder buffer alone, and the hasher thread fed
//! out-of-order ranges over its channel, which is how the engine turns
//! ranges finished in any order into the in-order stream the digests need.
//!
//! With no digest wanted the thread still computes the crc32c of every
//! range, so `handoff/crc32c_only` is the cost of the hand-off itself.

use std::hint::black_box;
use std::sync::mpsc::channel;
use std::sync::Arc;

use _core::engine::buffers::{Buffer, SlabPool, SLAB};
use _core::engine::hasher::{spawn, InOrder, Item, Msg, Outcome, Wanted};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Ranges per run and their size: 64 MiB in 1 MiB pieces.
const RANGES: u64 = 64;
const RANGE: u64 = SLAB as u64;

/// Offsets in the order workers would finish them: each window of
/// `window` ranges in reverse, so the hasher holds up to `window` ranges.
fn arrival(n: u64, window: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let end = (start + window).min(n);
        out.extend((start..end).rev());
        start = end;
    }
    out
}

fn reorder(c: &mut Criterion) {
    let mut g = c.benchmark_group("in_order");
    let order = arrival(4096, 16);
    g.throughput(Throughput::Elements(order.len() as u64));
    g.bench_function("push_pop_4096_window16", |b| {
        b.iter(|| {
            let mut o = InOrder::new(0);
            let mut released = 0u64;
            for &i in &order {
                o.push(i * RANGE, RANGE, ());
                while let Some((_, len, ())) = o.pop_ready() {
                    released += len;
                }
            }
            black_box(released)
        })
    });
    g.finish();
}

fn handoff(c: &mut Criterion) {
    let pool = Arc::new(SlabPool::default());
    let piece = vec![0x5au8; RANGE as usize];
    let file = Arc::new(tempfile::tempfile().expect("temp file"));
    let order = arrival(RANGES, 8);
    let mut g = c.benchmark_group("handoff");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(RANGES * RANGE));
    let kinds = [
        ("crc32c_only", Wanted::default()),
        (
            "sha256",
            Wanted {
                sha256: true,
                ..Wanted::default()
            },
        ),
    ];
    for (name, wanted) in kinds {
        g.bench_function(name, |b| {
            b.iter_batched(
                // filling the buffers is the receive path's work, not timed
                || {
                    order
                        .iter()
                        .map(|&i| {
                            let mut buf = Buffer::new(pool.clone(), RANGE as usize, vec![]);
                            buf.write_at(0, &piece);
                            Msg {
                                offset: i * RANGE,
                                len: RANGE,
                                item: Item::Mem(buf),
                            }
                        })
                        .collect::<Vec<_>>()
                },
                |msgs| {
                    let (tx, rx) = channel();
                    let h = spawn(wanted, file.clone(), rx, None).expect("hasher thread");
                    for m in msgs {
                        tx.send(m).expect("hasher alive");
                    }
                    drop(tx);
                    match h.join().expect("hasher thread") {
                        Outcome::Done { hashed, .. } => assert_eq!(hashed, RANGES * RANGE),
                        o => panic!("{o:?}"),
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, reorder, handoff);
criterion_main!(benches);
