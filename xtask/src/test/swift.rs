//! Swift tests: `swift test` of ios/ in the Debian trixie chroot, against the host library.

use std::path::Path;

use anyhow::{Result, bail};

use super::{Suite, written_tests};
use crate::cmd;
use crate::swift_toolchain::Stage;

/// `swift test` against the host library.
pub(super) fn test(library: &Path, ort: &Path, models: &Path) -> Result<Suite> {
    let stage = Stage::new(library, ort, models)?;
    // ONNX Runtime keeps its telemetry store under $XDG_CACHE_HOME: an empty one per run, which the telemetry test
    // checks stays without events.
    let out = stage.sh("swift build --build-tests --quiet 2>&1 && XDG_CACHE_HOME=$(mktemp -d) \
         swift test --skip-build --disable-swift-testing 2>&1")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    let suite = Suite::from_xctest("Swift", &text, out.status.success());
    if !out.status.success() {
        bail!("swift test failed ({})", out.status);
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
