//! `cargo xtask publish --local`: the SDK for programs on this machine, with no environment variables.
//! - JVM: `ai.openautoglm:openautoglm-jvm:<version>` into the local Maven repository (~/.m2): the Kotlin layer, and
//!   inside the jar a stripped release build of libopenautoglm_ffi for this host with the ONNX Runtime the tests run
//!   (`cache::ORT_VERSION`, from its PyPI wheel) beside it; its POM brings JNA and coroutines.
//! - Swift (Linux): the same library and ONNX Runtime side by side in `ios/build/linux`, where the package links and
//!   finds them; another package depends on `ios/` by path and `swift run`s.
//!
//! Releases to Maven Central and a SwiftPM binary target are made from tagged builds elsewhere; only `--local` is here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{bindgen, cache, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Install into this machine's Maven repository and the Swift package's build directory.
    #[arg(long)]
    local: bool,
}

/// Maven coordinates of the desktop-JVM artifact.
pub const JVM_ARTIFACT: &str = "ai.openautoglm:openautoglm-jvm";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `publish --local` installed, for the examples that use it.
pub struct Published {
    pub jar: PathBuf,
    pub swift_lib_dir: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    if !args.local {
        bail!(
            "only `cargo xtask publish --local` exists: it installs {JVM_ARTIFACT}:{VERSION} into ~/.m2 and the Swift package's Linux libraries"
        );
    }
    let published = local()?;
    println!("installed {JVM_ARTIFACT}:{VERSION}: {}", published.jar.display());
    println!("Swift package libraries (Linux): {}", published.swift_lib_dir.display());
    Ok(())
}

/// Builds the release library once and installs both packages.
pub fn local() -> Result<Published> {
    let library = bindgen::generate_with_release_library("publish")?.join(library_name("openautoglm_ffi"));
    let jar = jvm(&library)?;
    let swift_lib_dir = swift_linux(&library)?;
    Ok(Published { jar, swift_lib_dir })
}

/// Installs the jar with the library under `ai/openautoglm/native/<os>-<arch>/` (where NativeLibrary.kt looks).
fn jvm(library: &Path) -> Result<PathBuf> {
    if !cmd::exists("mvn") {
        bail!(
            "Maven (mvn) and a JDK 17+ are needed to publish the JVM artifact: apt-get install maven openjdk-17-jdk-headless"
        );
    }
    let android = cmd::repo_root().join("android");
    let pom = fs::read_to_string(android.join("pom.xml"))?;
    if !pom.contains(&format!("<version>{VERSION}</version>")) {
        bail!("android/pom.xml does not declare version {VERSION} (the workspace version): keep them equal");
    }
    let native = android.join("build/jvm-native");
    let _ = fs::remove_dir_all(&native);
    let dir = native.join("ai/openautoglm/native").join(jvm_platform()?);
    fs::create_dir_all(&dir)?;
    stripped_copy(library, &dir.join(library_name("openautoglm_ffi")))?;
    // The runtime the Kotlin tests run on (pom property onnxruntime.version, checked equal), not ONNX Runtime Java's.
    check_pom_runtime(&pom)?;
    fs::copy(cache::host_onnxruntime()?, dir.join(library_name("onnxruntime")))?;
    let spinner = cache::spinner(format!("publish: mvn install {JVM_ARTIFACT}:{VERSION}"));
    let installed = cmd::capture(Command::new("mvn").current_dir(&android).args([
        "-B",
        "-q",
        "--no-transfer-progress",
        "install",
        "-Dmaven.test.skip=true",
    ]));
    spinner.finish_and_clear();
    installed.context("mvn install of the JVM artifact failed")?;
    let home = std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")?;
    let jar =
        home.join(format!(".m2/repository/ai/openautoglm/openautoglm-jvm/{VERSION}/openautoglm-jvm-{VERSION}.jar"));
    if !jar.is_file() {
        bail!("mvn install succeeded but {} is not there", jar.display());
    }
    Ok(jar)
}

/// The jar's ONNX Runtime version as android/pom.xml states it (`onnxruntime.version`, which the Kotlin tests check
/// they run on) must be the one this machine's tests and packages use.
fn check_pom_runtime(pom: &str) -> Result<()> {
    let declared = pom
        .split("<onnxruntime.version>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .context("android/pom.xml declares no <onnxruntime.version>")?;
    if declared != cache::ORT_VERSION {
        bail!(
            "android/pom.xml ships ONNX Runtime {declared} but the tests run {}: keep them equal",
            cache::ORT_VERSION
        );
    }
    Ok(())
}

/// `ios/build/linux`: the library and ONNX Runtime in one directory, which Package.swift links and sets as rpath.
fn swift_linux(library: &Path) -> Result<PathBuf> {
    let dir = cmd::repo_root().join("ios/build/linux");
    fs::create_dir_all(&dir)?;
    stripped_copy(library, &dir.join(library_name("openautoglm_ffi")))?;
    fs::copy(cache::host_onnxruntime()?, dir.join(library_name("onnxruntime")))?;
    Ok(dir)
}

/// The jar folder for this host, named as NativeLibrary.kt names it.
fn jvm_platform() -> Result<String> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "windows" => "windows",
        other => bail!("no JVM artifact for {other}"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "aarch64",
        other => bail!("no JVM artifact for {other}"),
    };
    Ok(format!("{os}-{arch}"))
}

fn library_name(stem: &str) -> String {
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Copies `from` without its symbol tables (what ships), or as it is where `strip` is missing.
fn stripped_copy(from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_file(to);
    if cmd::exists("strip") {
        cmd::run(Command::new("strip").arg("--strip-unneeded").arg(from).arg("-o").arg(to))
    } else {
        fs::copy(from, to).map(|_| ()).with_context(|| format!("cannot copy {}", from.display()))
    }
}
