//! The `bastion` binary: a thin shell over `bastion-cli` so the black-box tests in `tests/`
//! can start the real executable (`CARGO_BIN_EXE_bastion`).

fn main() -> std::process::ExitCode {
    bastion_cli::main()
}
