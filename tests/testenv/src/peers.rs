//! Tools built from the Go module proxy by `scripts/peers.sh` (cached in
//! `~/.cache/gitseal/peers`): helm for the chart tests, kustomize for the image-contract test
//! and for rendering `deploy/`. A test that needs one fails, never skips, when it cannot be
//! built.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The repository's `scripts/peers.sh`.
const PEERS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peers.sh");

/// The path of the peer tool `name` (`helm`, `kustomize`, `sops`, `kubeseal`), built by
/// `scripts/peers.sh NAME` when missing (the script itself serialises concurrent builds).
///
/// # Panics
/// When the script fails, naming the tool.
pub fn peer_tool(name: &str) -> PathBuf {
    // One build at a time per process too: tests of one binary run in threads.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(PEERS_SCRIPT)
        .arg(name)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PEERS_SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "scripts/peers.sh {name} failed: this test needs {name} built from the Go module proxy (see the script)"
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let path = PathBuf::from(dir).join(name);
    assert!(
        path.is_file(),
        "scripts/peers.sh {name} left no {}",
        path.display()
    );
    path
}
