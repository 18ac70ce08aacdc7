//! Replays every file the fuzzer kept (`fuzz/corpus/<target>/`) and every crash reproducer
//! (`fuzz/artifacts/<target>/`) through its target, on stable: a regression of any fixed
//! crash, or a new panic on a corpus input, fails `cargo test`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use gitseal_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of a folder, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_and_reproducer_runs_clean() {
    for (name, target) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty: seed it (fuzz/seed.sh) and keep it"
        );
        let reproducers = files(&fuzz_dir().join("artifacts").join(name));
        for file in corpus.iter().chain(&reproducers) {
            let data = fs::read(file).unwrap();
            // A panic names the file in the test output through this message.
            eprintln!("replaying {}", file.display());
            target(&data);
        }
    }
}

/// Every cargo-fuzz target is replayed here, and every replayed target has a fuzz target.
#[test]
fn fuzz_targets_and_replayed_targets_are_the_same() {
    let mut on_disk: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    replayed.sort();
    assert_eq!(on_disk, replayed);
}
