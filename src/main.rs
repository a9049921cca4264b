// mimalloc: per-request allocations (headers, bodies, log lines) cost about
// half what glibc's malloc takes under a multi-threaded proxy load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fedgate::main()
}
