//! The collector's global allocator: resident memory that follows what is in use, so that the byte
//! budget for bodies in flight (`[limits] max-inflight-bytes`) bounds the peak.
//!
//! Small blocks come from mimalloc (fast, per-thread, gives freed pages back). A block of
//! [`LARGE`] bytes or more (a body, its decompressed form, decoded rows, SQLite's copy of a
//! blob) comes from the C library's `malloc`, which maps such a block on its own and unmaps it
//! when it is freed ([`return_large_blocks`]): the moment the budget takes a grant back, its
//! memory has left the process.
//!
//! Without this, the freed blocks stayed: mimalloc keeps freed arena memory committed for its
//! purge delay (a second) in case it is asked again, and glibc raises its mapping threshold to
//! the largest block freed so far, so the next blocks of that size come from (and return to)
//! a heap it keeps. During 16 concurrent maximal bodies the collector held 85 MiB above idle
//! with nothing granted, and peaked near 90 MiB above the budget (numbers in the commit).

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of at least this many bytes are mapped on their own by the C library.
pub const LARGE: usize = 2 << 20;

/// The global allocator: [`MiMalloc`] below [`LARGE`] bytes, [`System`] from there.
#[derive(Debug)]
pub struct Allocator;

fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is freed (and reallocated) by the allocator that made it: both choose by
// the layout's size, and Rust passes `dealloc` and `realloc` the layout the block was made with.
// A block that changes side in `realloc` is copied into a block of the other allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout` are passed on.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was made by the same side for this layout's size (see above).
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the same side reallocates its own block; across sides the block is copied
        // (the smaller of the two sizes) and freed by the side that made it.
        unsafe {
            match (large(layout.size()), large(new_size)) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// Makes glibc map every block of [`LARGE`] bytes or more on its own, and unmap it when freed,
/// for the whole run: a fixed threshold (glibc otherwise raises it to each large block freed,
/// up to 32 MiB, and keeps those in its heaps), and a heap trimmed once its free top passes
/// the same size. musl's allocator maps large blocks on its own already.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks() {
    let bytes = LARGE as libc::c_int;
    // SAFETY: mallopt only sets parameters of the C library's allocator; it is called before
    // any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
    }
}

/// Nothing to set outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_that_change_side_keep_their_bytes() {
        let a = Allocator;
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: blocks made here are used within their sizes and freed with their layouts.
        #[allow(unsafe_code)]
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in 0..1000 {
                *p.add(i) = i as u8;
            }
            // Small to large, then back to small: the first bytes survive both moves.
            let q = a.realloc(p, layout, 3 * LARGE);
            assert!(!q.is_null());
            *q.add(3 * LARGE - 1) = 7;
            let large = Layout::from_size_align(3 * LARGE, 8).unwrap();
            let r = a.realloc(q, large, 500);
            assert!(!r.is_null());
            assert!((0..500).all(|i| *r.add(i) == i as u8));
            a.dealloc(r, Layout::from_size_align(500, 8).unwrap());
            let z = a.alloc_zeroed(large);
            assert!((0..3 * LARGE).step_by(4093).all(|i| *z.add(i) == 0));
            a.dealloc(z, large);
        }
    }
}
