// mimalloc: per-request allocations (headers, bodies, log lines) cost about
// half what glibc's malloc takes under a multi-threaded proxy load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
