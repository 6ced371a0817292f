//! The `bastion` binary: a thin shell over `bastion-cli` so the black-box tests in `tests/`
//! can start the real executable (`CARGO_BIN_EXE_bastion`).

// A request allocates and frees many small buffers (headers, JSON, body chunks): profiled
// under benches/llm.sh, the allocator's share of bastion's CPU time fell from ~13 % with
// glibc malloc to ~9 % with mimalloc's thread-local free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_arena_purge_mult` (the index in mimalloc.h's `mi_option_e`).
const ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;

fn main() -> std::process::ExitCode {
    // Large freed blocks (argon2's 19 MiB work area, one per password hashed) go back to the
    // operating system at once instead of after a purge delay counted from the allocator's
    // next pass, which an idle server may not make: measured, one sign-in otherwise left the
    // process 20 MB larger for good.
    // An operator's own MIMALLOC_ARENA_PURGE_MULT is left as it is.
    // SAFETY: options are set once, here, before any other thread exists, and only on the
    // major version whose numbering the constant above is.
    unsafe {
        if libmimalloc_sys::mi_version() / 10_000 == 3
            && std::env::var_os("MIMALLOC_ARENA_PURGE_MULT").is_none()
        {
            libmimalloc_sys::mi_option_set(ARENA_PURGE_MULT, 0);
        }
    }
    bastion_cli::main()
}
