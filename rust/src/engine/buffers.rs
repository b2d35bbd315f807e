//! Memory of the engine: fixed-size, page-aligned slabs recycled through a
//! pool, and the byte budget that bounds them.
//!
//! A range is received into a [`Buffer`] (a few slabs), written with one
//! `pwritev`, handed to the in-order hasher and dropped, which returns its
//! slabs to the pool and its permits to the budget. Recycling matters: on
//! this kind of VM, writing into never-touched memory costs page faults at
//! about the speed of the network itself. Alignment makes the slabs usable
//! for O_DIRECT writes.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

/// Size of one slab; budgets are counted in slabs.
pub const SLAB: usize = 1 << 20;
/// Alignment suitable for O_DIRECT on any common block device.
pub const ALIGN: usize = 4096;

/// One aligned `SLAB`-byte allocation.
pub struct Slab {
    ptr: NonNull<u8>,
}

// SAFETY: a Slab owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

fn layout() -> Layout {
    // SLAB and ALIGN are non-zero powers of two: the layout is always valid.
    Layout::from_size_align(SLAB, ALIGN).unwrap_or_else(|_| unreachable!())
}

impl Slab {
    fn new() -> Self {
        // SAFETY: layout has non-zero size.
        let p = unsafe { alloc(layout()) };
        let ptr = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout()));
        Self { ptr }
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for SLAB bytes for the lifetime of self; bytes
        // may be uninitialised only until first written, and readers only
        // read ranges that were written (Buffer tracks lengths).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), SLAB) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusive through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), SLAB) }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // SAFETY: allocated in Slab::new with the same layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout()) }
    }
}

/// Free slabs for reuse. Never holds more slabs than the budget allows to
/// exist, because slabs are only created under a budget permit.
#[derive(Default)]
pub struct SlabPool {
    free: Mutex<Vec<Slab>>,
}

impl SlabPool {
    pub fn take(&self) -> Slab {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        reused.unwrap_or_else(Slab::new)
    }
    pub fn give(&self, s: Slab) {
        if let Ok(mut f) = self.free.lock() {
            f.push(s);
        }
    }
}

/// Number of slabs needed for `len` bytes.
pub fn slabs_for(len: u64) -> usize {
    (len as usize).div_ceil(SLAB).max(1)
}

/// Bytes of one range in flight: slabs plus the budget permits they hold.
pub struct Buffer {
    slabs: Vec<Slab>,
    len: usize,
    pool: Arc<SlabPool>,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Buffer {
    /// A buffer able to hold `len` bytes; `permits` must cover its slabs.
    pub fn new(pool: Arc<SlabPool>, len: usize, permits: Vec<OwnedSemaphorePermit>) -> Self {
        let n = len.div_ceil(SLAB).max(1);
        let slabs = (0..n).map(|_| pool.take()).collect();
        Self {
            slabs,
            len,
            pool,
            _permits: permits,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy `data` at byte position `pos`; the caller keeps `pos + data.len() <= len`.
    pub fn write_at(&mut self, mut pos: usize, mut data: &[u8]) {
        while !data.is_empty() {
            let (i, off) = (pos / SLAB, pos % SLAB);
            let n = data.len().min(SLAB - off);
            self.slabs[i].as_mut_slice()[off..off + n].copy_from_slice(&data[..n]);
            pos += n;
            data = &data[n..];
        }
    }

    /// The first `upto` bytes as slices (one per slab).
    pub fn parts(&self, upto: usize) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.slabs.len());
        let mut left = upto.min(self.len);
        for s in &self.slabs {
            if left == 0 {
                break;
            }
            let n = left.min(SLAB);
            out.push(&s.as_slice()[..n]);
            left -= n;
        }
        out
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        for s in self.slabs.drain(..) {
            self.pool.give(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_across_slabs_and_reuse() {
        let pool = Arc::new(SlabPool::default());
        let len = SLAB + 10;
        let mut b = Buffer::new(pool.clone(), len, vec![]);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        b.write_at(0, &data[..SLAB - 5]);
        b.write_at(SLAB - 5, &data[SLAB - 5..]);
        let joined: Vec<u8> = b.parts(len).concat();
        assert_eq!(joined, data);
        assert_eq!(b.parts(3).concat(), &data[..3]);
        drop(b);
        assert_eq!(pool.free.lock().unwrap().len(), 2);
        assert_eq!(slabs_for(0), 1);
        assert_eq!(slabs_for(SLAB as u64 + 1), 2);
        assert_eq!(pool.take().as_slice().as_ptr() as usize % ALIGN, 0);
    }
}
