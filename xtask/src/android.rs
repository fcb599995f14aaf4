//! `cargo xtask build android`: the native library per ABI with the NDK's clang (as cargo-ndk does), placed in
//! android/src/main/jniLibs/<abi>/, the Android variant of the Kotlin bindings, and the AAR when Gradle and the
//! Android SDK are there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::targets::{self, Target};
use crate::{bindgen, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// ABIs to build.
    #[arg(long, value_delimiter = ',', default_value = "arm64-v8a,armeabi-v7a,x86_64,x86")]
    abi: Vec<String>,
    /// Cargo profile (`mobile`: size-optimized and stripped; `release`; `dev`).
    #[arg(long, default_value = "mobile")]
    profile: String,
    /// Minimum Android API level the library is linked for (the module's minSdk).
    #[arg(long, default_value_t = 24)]
    api: u32,
}

/// An installed Android NDK.
pub struct Ndk {
    pub root: PathBuf,
    bin: PathBuf,
    api: u32,
}

const NDK_HELP: &str = "the Android NDK was not found. Install it (Android Studio > SDK Manager > NDK, or \
     `sdkmanager \"ndk;27.2.12479018\"`) and set ANDROID_NDK_HOME to its directory (or ANDROID_HOME to the SDK that \
     contains ndk/<version>)";

/// Finds the NDK the way cargo-ndk does: ANDROID_NDK_HOME / ANDROID_NDK_ROOT / ANDROID_NDK, else the newest
/// ndk/<version> under ANDROID_HOME / ANDROID_SDK_ROOT.
pub fn ndk() -> Result<Ndk> {
    ndk_for_api(24)
}

fn ndk_for_api(api: u32) -> Result<Ndk> {
    let direct =
        ["ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "ANDROID_NDK"].iter().find_map(std::env::var_os).map(PathBuf::from);
    let from_sdk = || {
        let sdk = ["ANDROID_HOME", "ANDROID_SDK_ROOT"].iter().find_map(std::env::var_os).map(PathBuf::from)?;
        let mut versions: Vec<PathBuf> =
            fs::read_dir(sdk.join("ndk")).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        versions.sort();
        versions.pop().or_else(|| Some(sdk.join("ndk-bundle")).filter(|p| p.exists()))
    };
    let root = direct.or_else(from_sdk).context(NDK_HELP)?;
    let host = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", _) => "linux-x86_64",
        ("macos", _) => "darwin-x86_64", // one universal binary directory on both Intel and Apple silicon
        ("windows", _) => "windows-x86_64",
        (os, _) => bail!("no NDK prebuilt toolchain for {os}"),
    };
    let bin = root.join("toolchains/llvm/prebuilt").join(host).join("bin");
    if !bin.is_dir() {
        bail!("{} does not look like an NDK (no {}); {NDK_HELP}", root.display(), bin.display());
    }
    Ok(Ndk { root, bin, api })
}

impl Ndk {
    /// The environment cargo needs to link `target` with this NDK (linker, C compiler, archiver).
    pub fn cargo_env(&self, target: &Target) -> Result<Vec<(String, String)>> {
        let prefix = target.ndk_clang.context("not an Android target")?;
        let clang = self.bin.join(format!("{prefix}{}-clang", self.api));
        if !clang.exists() {
            bail!("{} is missing: this NDK does not support API {} for {}", clang.display(), self.api, target.abi);
        }
        let upper = target.triple.to_uppercase().replace('-', "_");
        let lower = target.triple.replace('-', "_");
        let ar = self.bin.join("llvm-ar");
        Ok(vec![
            (format!("CARGO_TARGET_{upper}_LINKER"), clang.display().to_string()),
            (format!("CC_{lower}"), clang.display().to_string()),
            (format!("AR_{lower}"), ar.display().to_string()),
        ])
    }

    fn strip(&self, lib: &Path) -> Result<()> {
        cmd::run(Command::new(self.bin.join("llvm-strip")).arg("--strip-unneeded").arg(lib))
    }
}

pub fn build(args: Args) -> Result<()> {
    let ndk = ndk_for_api(args.api)?;
    println!("NDK: {} (API {})", ndk.root.display(), args.api);
    let android = cmd::repo_root().join("android");
    for abi in &args.abi {
        let target = targets::android_abi(abi)?;
        if !targets::ensure_installed(target.triple) {
            bail!("rustup cannot install the standard library for {}", target.triple);
        }
        println!("building {} ({})", target.abi, target.triple);
        cmd::run(
            Command::new(env!("CARGO"))
                .current_dir(cmd::repo_root())
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "openautoglm-ffi",
                    "--profile",
                    &args.profile,
                    "--target",
                    target.triple,
                ])
                .envs(ndk.cargo_env(target)?),
        )?;
        let profile_dir = if args.profile == "dev" { "debug" } else { args.profile.as_str() };
        let built = bindgen::target_dir().join(target.triple).join(profile_dir).join("libopenautoglm_ffi.so");
        let dest = android.join("src/main/jniLibs").join(target.abi).join("libopenautoglm_ffi.so");
        fs::create_dir_all(dest.parent().expect("parent"))?;
        fs::copy(&built, &dest)?;
        ndk.strip(&dest)?;
        println!("  {} ({:.2} MB)", dest.display(), fs::metadata(&dest)?.len() as f64 / 1e6);
    }
    // The uniffi metadata is the same on every target: read it from the unstripped host build.
    let library = bindgen::build_host_library()?;
    let out = bindgen::kotlin_android_dir();
    bindgen::kotlin(&library, &out, true)?;
    println!("Kotlin bindings (Android variant): {}", out.display());

    let gradle = if android.join("gradlew").exists() {
        Some(android.join("gradlew"))
    } else {
        cmd::exists("gradle").then(|| PathBuf::from("gradle"))
    };
    let sdk = std::env::var_os("ANDROID_HOME").or_else(|| std::env::var_os("ANDROID_SDK_ROOT"));
    match (gradle, sdk) {
        (Some(gradle), Some(_)) => {
            cmd::run(Command::new(gradle).current_dir(&android).arg("assembleRelease"))?;
            println!("AAR: {}", android.join("build/outputs/aar/openautoglm-release.aar").display());
        }
        _ => println!(
            "AAR not assembled: needs Gradle and the Android SDK (ANDROID_HOME). The module in android/ is ready: \
             run `gradle assembleRelease` there, or include it in your app's settings.gradle.kts."
        ),
    }
    Ok(())
}
