//! `gitseal-agent`: keeps a cluster equal to a git repository, SealedSecrets included.

use std::process::ExitCode;

use clap::Parser;
use gitseal_agent::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    malloc::one_arena();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(gitseal_agent::commands::main(cli))
}

/// glibc's allocator gives each thread that contends for it an arena of its own (up to 8 per
/// core) and keeps what is freed in each: the agent's runtime and decrypt threads took
/// ~17 MiB more resident memory at 10,000 objects than with one arena (45.4 against 28.2 MiB
/// anonymous, `scripts/bench-agent.sh 10000` with 8 + 8 threads), for allocations that are
/// short and rarely contended (the agent waits on the API server). So: one arena, unless the
/// operator set `MALLOC_ARENA_MAX` (glibc reads it itself).
#[allow(unsafe_code)]
mod malloc {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn one_arena() {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        // SAFETY: `mallopt` sets one tuning parameter of glibc's allocator and is safe to
        // call at any time; it is called here before the runtime starts any thread. A
        // refusal (return 0) leaves the default, which is only a matter of memory.
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn one_arena() {}
}
