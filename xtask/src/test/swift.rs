//! Swift tests: `swift test` of ios/ in the Debian trixie chroot, against the host library.

use std::path::Path;

use anyhow::{Result, bail};

use super::{Suite, written_tests};
use crate::cmd;
use crate::swift_toolchain::{STAGE, Stage};

/// `swift test` against the host library.
pub(super) fn test(library: &Path, ort: &Path, models: &Path) -> Result<Suite> {
    let stage = Stage::new(library, ort, models)?;
    // ONNX Runtime keeps its telemetry store under $XDG_CACHE_HOME: an empty one per run, which the telemetry test
    // checks stays without events.
    let out = stage.sh("swift build --build-tests --quiet 2>&1 && XDG_CACHE_HOME=$(mktemp -d) \
         swift test --skip-build --disable-swift-testing --skip PluginTests 2>&1")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    let mut suite = Suite::from_xctest("Swift", &text, out.status.success());
    if !out.status.success() {
        bail!("swift test failed ({})", out.status);
    }
    // PluginTests on their own, on an Intel CPU (emulated where the host's is not: OpenVINO's plugin offers devices
    // only there): the test bundle run directly, as `swift test` runs it, under the emulator staged in the chroot.
    let runner = crate::intel::runner()?;
    let emulator = match runner.split_first() {
        Some((_, args)) => format!("{STAGE}/bin/qemu-x86_64-static {}", args.join(" ")),
        None => String::new(),
    };
    let out = stage.sh(&format!(
        "XDG_CACHE_HOME=$(mktemp -d) {emulator} .build/debug/OpenAutoGLMPackageTests.xctest \
         OpenAutoGLMTests.PluginTests 2>&1"
    ))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{}", text.lines().filter(|l| !l.contains("TCG doesn't support")).collect::<Vec<_>>().join("\n"));
    println!();
    let plugin = Suite::from_xctest("Swift", &text, out.status.success());
    suite.passed += plugin.passed;
    suite.failed += plugin.failed;
    suite.skipped += plugin.skipped;
    if !out.status.success() || plugin.passed == 0 {
        bail!("Swift PluginTests failed on the (emulated) Intel CPU ({})", out.status);
    }
    // XCTest on Linux runs the `func test...()` methods it discovers; one it misses (a typo'd signature, a class
    // the discovery does not see) would pass by not running: every test written must have run.
    let written = written_tests(&cmd::repo_root().join("ios/Tests"), "swift", xctest_methods)?;
    let ran = suite.passed + suite.failed + suite.skipped;
    if ran < written {
        bail!("{written} Swift test methods are written but XCTest ran {ran}: a test was not discovered");
    }
    Ok(suite)
}

/// XCTest's test methods in one source: `func test...()` (no arguments), as its discovery finds them.
fn xctest_methods(source: &str) -> usize {
    source
        .match_indices("func test")
        .filter(|(at, _)| {
            let rest = &source[at + "func test".len()..];
            let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            rest[name_end..].starts_with("()")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::xctest_methods;

    #[test]
    fn xctest_methods_are_the_argumentless_test_functions() {
        let source = "func testA() {}\nfunc test_b() throws {}\nprivate func testHelper(_ x: Int) {}\nfunc tested() {}\n\
                      func helper() {}\nfunc testAsync() async throws {}";
        assert_eq!(xctest_methods(source), 4, "testA, test_b, tested, testAsync");
    }
}
