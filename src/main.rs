// mimalloc: per-request allocations (headers, bodies, log lines) cost about
// half what glibc's malloc takes under a multi-threaded proxy load.
#[global_allocator]
static ALLOC: Mimalloc = Mimalloc;

/// mimalloc, asked through the entry points its fast paths are on.
///
/// The `mimalloc` crate's allocator passes every allocation to
/// `mi_malloc_aligned`, whose fast path covers blocks up to 1 KB only:
/// every larger one (hyper's and rustls's buffers, a request's future) went
/// the generic aligned way, about 300 instructions instead of 20, 5.4 times
/// per proxied request (callgrind, `bench/instructions.sh`). mimalloc's
/// blocks are always word-aligned, so an allocation that asks for no more
/// than that is a plain `mi_malloc`; larger alignments (tokio's
/// cache-padded task cells) still go through the aligned calls.
struct Mimalloc;

/// The alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

#[allow(unsafe_code)]
// SAFETY: every pointer handed out comes from mimalloc with at least the
// layout's size and alignment (plain calls only when the alignment is at
// most a word, which every mimalloc block has); `mi_free` and the realloc
// calls accept any pointer mimalloc returned, whichever call made it.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: as above; sizes and alignments come from a valid Layout.
        unsafe {
            if layout.align() <= WORD {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: as for `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        // SAFETY: `ptr` came from this allocator with `layout`; the new
        // block keeps the layout's alignment.
        unsafe {
            if layout.align() <= WORD {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Hands pages that have been free for mimalloc's purge delay back to the
/// OS. Without it RSS stays at the peak of the last burst of connections
/// once the gateway goes quiet (see `fedgate`'s `memory` module, which calls
/// this every two seconds while serving).
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `mi_collect` takes no arguments that could be invalid and is
    // documented as callable from any thread at any time; `false` asks for
    // the non-forced collection (only what is due).
    unsafe { libmimalloc_sys::mi_collect(false) }
}

fn main() -> std::process::ExitCode {
    fedgate::set_memory_release(release_free_memory);
    fedgate::main()
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::Mimalloc;

    /// Every size class and alignment gets a block that is aligned as
    /// asked, zeroed when asked, and keeps its bytes through a realloc.
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_and_keep_their_contents() {
        let sizes = (1..=64).chain([100, 1000, 1024, 1025, 4096, 8192, 65_536, 1 << 20, 5 << 20]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size and a valid layout; each block is
                // written within its size and freed once with its layout.
                unsafe {
                    let p = Mimalloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let q = Mimalloc.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc: size {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xa5));
                    Mimalloc.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = Mimalloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    Mimalloc.dealloc(z, layout);
                }
            }
        }
    }
}
