//! `yiwang`: the gateway's command line; see [`yiwang_gateway::cli`].

fn main() -> std::process::ExitCode {
    yiwang_gateway::cli::main()
}
