//! The `computegate` binary: parses the command line and hands over to [`computegate::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    computegate::cli::main()
}
