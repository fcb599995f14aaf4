//! The Android build of the Kotlin layer on the real Android framework: src/main + src/android + the `android = true`
//! bindings compiled against Android 14's framework jar, and the JUnit tests in src/robolectric (with the example
//! app's code) run under Robolectric against the host build of libopenautoglm_ffi, all by Maven
//! (android/robolectric/pom.xml). What Gradle's Android plugin would make for the tests is made here: the app's
//! resource APK (aapt, Debian's build) with its assets, and Robolectric's test_config.properties pointing at it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Suite, TestEnv, kotlin, written_tests};
use crate::{cache, cmd, models};

/// The recording the example app's test feeds Silero VAD ("Front Right", spoken; from Debian's alsa-utils).
const SPEECH: &str = "speech-front-right";

pub(super) fn test(lib_dir: &Path, env: &TestEnv<'_>) -> Result<Suite> {
    kotlin::require_maven()?;
    cmd::ensure_debian_packages(&["aapt"], &["aapt"])?;
    let android = cmd::repo_root().join("android");
    let build = android.join("build/robolectric");
    fs::create_dir_all(&build)?;
    let framework = resolve_framework(&android, &build)?;
    resource_apk(&build, &framework)?;
    let reports = build.join("maven/surefire-reports");
    let _ = fs::remove_dir_all(&reports);
    let status = Command::new("mvn")
        .current_dir(android.join("robolectric"))
        .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "test"])
        .envs(env.iter().copied())
        .env("LD_LIBRARY_PATH", lib_dir)
        .status()
        .context("cannot run mvn")?;
    let suite = kotlin::surefire_counts(&reports, "Android")?;
    println!("Android: {} passed, {} failed, {} skipped", suite.passed, suite.failed, suite.skipped);
    if !status.success() {
        bail!("Android (Robolectric) tests failed ({status})");
    }
    let written = written_tests(&android.join("src/robolectric"), "kt", |s| s.matches("@Test").count())?;
    if suite.passed + suite.failed + suite.skipped < written {
        bail!("{written} Android @Test methods are written but JUnit ran fewer: a test returning a value is not run");
    }
    Ok(suite)
}

/// The plain Android framework jar (what aapt links the manifest against), as Maven resolves it with every other
/// dependency of the tests. Robolectric's androidx.test dependencies come as AARs, which Maven cannot put on a
/// classpath: their classes.jar goes to `build/aar/<name>/classes.jar`, where the pom's Surefire looks.
fn resolve_framework(android: &Path, build: &Path) -> Result<PathBuf> {
    let listed = build.join("framework-classpath.txt");
    cmd::capture(
        Command::new("mvn")
            .current_dir(android.join("robolectric"))
            .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "dependency:build-classpath"])
            .arg(format!("-Dmdep.outputFile={}", listed.display())),
    )
    .context("Maven could not resolve the Android framework jar and Robolectric")?;
    let classpath = fs::read_to_string(&listed)?;
    for aar in classpath.trim().split(':').map(Path::new).filter(|p| p.extension().is_some_and(|e| e == "aar")) {
        let name = aar.parent().and_then(Path::parent).and_then(Path::file_name).context("an AAR in a repository")?;
        cache::extract(aar, "classes.jar", &build.join("aar").join(name).join("classes.jar"), None)?;
    }
    let jar = classpath
        .trim()
        .split(':')
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("android-all-14-")))
        .filter(|p| !p.to_string_lossy().contains("instrumented"))
        .with_context(|| format!("Maven listed no Android framework jar in {}", listed.display()))?;
    Ok(jar)
}

/// The test app's resource APK, as Gradle would make it for unit tests with resources included: the example app's
/// manifest (with the package the Gradle namespace gives it) and its assets, `.onnx` stored uncompressed
/// (`noCompress += "onnx"`), plus the same model under another extension, which aapt compresses.
fn resource_apk(build: &Path, framework: &Path) -> Result<()> {
    let app = build.join("app");
    let assets = app.join("assets");
    let _ = fs::remove_dir_all(&app);
    fs::create_dir_all(&assets)?;
    let vad = models::fetch("silero-vad")?;
    fs::copy(&vad, assets.join("silero-vad.onnx"))?;
    fs::copy(&vad, assets.join("silero-vad.model"))?;
    fs::copy(models::fetch_asset(SPEECH)?, assets.join("speech.wav"))?;
    let source = cmd::repo_root().join("examples/android-app/app/src/main/AndroidManifest.xml");
    let manifest = fs::read_to_string(&source)?.replacen(
        "<manifest xmlns:android=\"http://schemas.android.com/apk/res/android\">",
        "<manifest xmlns:android=\"http://schemas.android.com/apk/res/android\" package=\"example.voiceactivity\">\n    \
         <uses-sdk android:minSdkVersion=\"24\" android:targetSdkVersion=\"34\" />",
        1,
    );
    if !manifest.contains("package=") {
        bail!("{}: its <manifest> element is not the one expected", source.display());
    }
    let manifest_path = app.join("AndroidManifest.xml");
    fs::write(&manifest_path, manifest)?;
    let apk = app.join("resources.ap_");
    cmd::capture(
        Command::new("aapt")
            .args(["package", "-f", "-0", "onnx", "-M"])
            .arg(&manifest_path)
            .arg("-A")
            .arg(&assets)
            .arg("-I")
            .arg(framework)
            .arg("-F")
            .arg(&apk),
    )
    .context("aapt could not package the test app's resources")?;
    let config = build.join("config/com/android/tools");
    fs::create_dir_all(&config)?;
    fs::write(
        config.join("test_config.properties"),
        format!(
            "android_merged_manifest={}\nandroid_resource_apk={}\nandroid_custom_package=example.voiceactivity\n",
            manifest_path.display(),
            apk.display()
        ),
    )?;
    Ok(())
}
