//! ONNX Runtime's telemetry is off unless the app opts in. Microsoft's Linux build of ONNX Runtime 1.31 records
//! usage events (process path, OS, network type, a device id) in an offline store under `$XDG_CACHE_HOME/Microsoft/
//! DeveloperTools/.onnxruntime/` for upload to Microsoft. This binary runs itself as a child twice, each child with
//! its own empty cache directory and its own process (ONNX Runtime has one environment per process): with the SDK's
//! default, the store must hold no event; after `Runtime::set_telemetry(true)`, it must (so the check can fail).
//! No test harness: the parent and the children are plain processes; it prints cargo's result line.

use std::path::Path;
use std::process::Command;

use openautoglm::{Engine, EngineConfig, Runtime, TensorRef};

#[path = "common/mod.rs"]
mod common;

const CHILD: &str = "OPENAUTOGLM_TELEMETRY_CHILD";

/// ONNX Runtime's telemetry stays silent when any of these is set (it takes the machine for a CI runner), which
/// would let both checks pass or fail without the SDK's switch: the children run without them.
const ORT_CI_MARKERS: [&str; 12] = [
    "CI",
    "TF_BUILD",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "BITBUCKET_BUILD_NUMBER",
];

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("default") => child(false),
        Ok("opted-in") => child(true),
        _ => parent(),
    }
}

/// Loads the runtime (opting in first if asked), runs a model, and exits: what any app does.
fn child(opt_in: bool) {
    if opt_in {
        Runtime::set_telemetry(true).expect("opting in");
    }
    Runtime::init(Some(&common::ort_path())).expect("the runtime loads");
    assert_eq!(Runtime::telemetry_enabled(), opt_in);
    let engine = Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default()).expect("loads");
    let x = [0.5f32, -1.0, 2.0, 4.0];
    engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).expect("runs");
    if !opt_in {
        // Too late to opt in: a typed error, and still off.
        assert!(matches!(Runtime::set_telemetry(true), Err(openautoglm::Error::InvalidConfig { .. })));
        assert!(!Runtime::telemetry_enabled());
        Runtime::set_telemetry(false).expect("turning it off is always allowed");
    }
}

/// Whether ONNX Runtime's telemetry store under `cache` holds an event (its first one is always `ProcessInfo`).
fn recorded_events(cache: &Path) -> bool {
    let store = cache.join("Microsoft/DeveloperTools/.onnxruntime");
    let Ok(files) = std::fs::read_dir(&store) else { return false };
    files.flatten().any(|f| {
        let bytes = std::fs::read(f.path()).unwrap_or_default();
        bytes.windows(b"ProcessInfo".len()).any(|w| w == b"ProcessInfo")
    })
}

fn run_child(mode: &str) -> bool {
    let cache = std::env::temp_dir().join(format!("openautoglm-telemetry-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    for marker in ORT_CI_MARKERS.into_iter().chain(["ORT_DISABLE_TELEMETRY"]) {
        child.env_remove(marker);
    }
    let status = child.env(CHILD, mode).env("XDG_CACHE_HOME", &cache).status().expect("the child starts");
    assert!(status.success(), "the {mode} child failed: {status}");
    let recorded = recorded_events(&cache);
    let _ = std::fs::remove_dir_all(&cache);
    recorded
}

fn parent() {
    let mut passed = 0;
    assert!(!run_child("default"), "with the SDK's default, ONNX Runtime recorded telemetry events");
    println!("test telemetry_is_off_by_default ... ok");
    passed += 1;
    assert!(run_child("opted-in"), "after Runtime::set_telemetry(true), ONNX Runtime recorded no event");
    println!("test an_app_can_opt_in ... ok");
    passed += 1;
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
}
