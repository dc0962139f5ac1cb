//! The `computegate` binary: parses the command line and hands over to [`computegate::cli`].

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the data plane allocates and frees small buffers and futures
/// on every request (measured in BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    computegate::cli::main()
}
