//! Swift tests: `swift test` of ios/ in the Debian trixie chroot, against the host library.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use ed25519_dalek::{Signer, SigningKey};

use super::{Suite, written_tests};
use crate::loopback::{Content, Loopback};
use crate::swift_toolchain::{STAGE, Stage};
use crate::{cache, cmd, models};

/// `swift test` against the host library.
pub(super) fn test(library: &Path, ort: &Path, models: &Path) -> Result<Suite> {
    let stage = Stage::new(library, ort, models)?;
    // The model store's tests download from this machine (the chroot shares its network).
    let (server, public_key) = store_server(models)?;
    // ONNX Runtime keeps its telemetry store under $XDG_CACHE_HOME: an empty one per run, which the telemetry test
    // checks stays without events.
    let out = stage.sh(&format!(
        "export OPENAUTOGLM_TEST_SERVER={} OPENAUTOGLM_TEST_MANIFEST_KEY={public_key} && \
         swift build --build-tests --quiet 2>&1 && XDG_CACHE_HOME=$(mktemp -d) \
         swift test --skip-build --disable-swift-testing --skip PluginTests 2>&1",
        server.base
    ))?;
    drop(server);
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

/// The server the Swift store tests fetch from: the real models under `models/`, the precision bundles under
/// `variants/`, slowly under `slow/`, and a manifest signed with a test key (`manifest.json` and `.sig`, and
/// `tampered.json`: one hash changed under the same signature). The public key, hex, goes to the tests.
fn store_server(models_dir: &Path) -> Result<(Loopback, String)> {
    let content = Content {
        folders: vec![("models".into(), models_dir.to_path_buf()), ("variants".into(), models::bundles_dir())],
        slow_piece: Duration::from_millis(30),
        link_rate: 0,
    };
    let server = Loopback::start(content)?;
    let silero = std::fs::read(models_dir.join("silero-vad.onnx"))?;
    let sha256 = cache::sha256_bytes(&silero);
    // The tests' stand-in for an app's cipher: a tag, then each byte XOR (42 + its index mod 256).
    let mut sealed = b"SEALED".to_vec();
    sealed.extend(silero.iter().enumerate().map(|(i, b)| b ^ 42u8.wrapping_add(i as u8)));
    let bundle = std::fs::read(models::bundles_dir().join("silero-vad/bundle.json"))?;
    let manifest = serde_json::json!({"format": 1,
        "models": [
            {"name": "silero-vad.onnx", "version": "5", "urls": [server.url("models/silero-vad.onnx")],
             "size": silero.len(), "sha256": sha256},
            {"name": "silero-vad.sealed", "version": "1", "urls": [server.url("silero-vad.sealed")],
             "size": sealed.len(), "sha256": cache::sha256_bytes(&sealed)}],
        "bundles": [{"name": "silero-vad", "version": "1", "urls": [server.url("variants/silero-vad/bundle.json")],
             "size": bundle.len(), "sha256": cache::sha256_bytes(&bundle)}]})
    .to_string();
    server.put("silero-vad.sealed", sealed);
    let key = SigningKey::from_bytes(&[7; 32]);
    let signature = key.sign(manifest.as_bytes()).to_bytes().to_vec();
    let tampered = manifest.replacen(&sha256[..8], "00000000", 1);
    server.put("manifest.json", manifest.into_bytes());
    server.put("manifest.json.sig", signature);
    server.put("tampered.json", tampered.into_bytes());
    let public: String = key.verifying_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    Ok((server, public))
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
