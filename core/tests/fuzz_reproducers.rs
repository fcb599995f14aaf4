//! Every reproducer the fuzzers found, and the hostile models of the hardening issue, replayed through every entry
//! point `cargo xtask fuzz` uses: each must end in a working engine or a typed error, never a panic (a crash or an
//! abort would end this test binary).

mod common;

use std::path::PathBuf;

use openautoglm::fuzzing::{Entry, exercise};

fn reproducers() -> Vec<PathBuf> {
    let dir = common::data().join("fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_reproducer_ends_in_a_typed_outcome() {
    common::init();
    limit_address_space();
    let files = reproducers();
    assert!(!files.is_empty(), "core/tests/data/fuzz holds the reproducers");
    let scratch = std::env::temp_dir().join(format!("openautoglm-repro-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for entry in Entry::ALL {
            let outcome = exercise(&bytes, &scratch.join("model.onnx"), entry);
            assert!(!outcome.contains("panic"), "{} via {entry:?}: {outcome}", file.display());
            assert!(!outcome.contains("Internal"), "{} via {entry:?}: {outcome}", file.display());
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The fuzz harness's probes run under an 8 GB address-space limit, where an allocation a phone could not make fails
/// as it would there; the reproducers run under the same limit, or one that aborted a probe could pass here.
fn limit_address_space() {
    const EIGHT_GB: libc::rlim_t = 8 << 30;
    let limit = libc::rlimit { rlim_cur: EIGHT_GB, rlim_max: EIGHT_GB };
    // SAFETY: setrlimit reads the struct it is given; this test binary runs this one test.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0, "setrlimit(RLIMIT_AS)");
}
