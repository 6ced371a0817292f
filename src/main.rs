//! The `bastion` binary: a thin shell over `bastion-cli` so the black-box tests in `tests/`
//! can start the real executable (`CARGO_BIN_EXE_bastion`).

// A request allocates and frees many small buffers (headers, JSON, body chunks): profiled
// under benches/llm.sh, the allocator's share of bastion's CPU time fell from ~13 % with
// glibc malloc to ~9 % with mimalloc's thread-local free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bastion_cli::main()
}
