//! The `dvrclip` binary: `dvrclip serve [flags]`. Everything lives in `dvrclip-server`.

fn main() -> std::process::ExitCode {
    dvrclip_server::cli::main()
}
