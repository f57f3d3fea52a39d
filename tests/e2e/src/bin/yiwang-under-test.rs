//! The `yiwang` command line, built inside this package so end-to-end tests
//! can run it as a separate process (and kill it with SIGKILL).

fn main() -> std::process::ExitCode {
    yiwang_gateway::cli::main()
}
