//! `cargo xtask build android`: the native library per ABI with the NDK's clang (as cargo-ndk does), placed in
//! android/src/main/jniLibs/<abi>/, the Android variant of the Kotlin bindings, and the AAR when Gradle and the
//! Android SDK are there.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::ndk;
use crate::targets;
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

pub fn build(args: Args) -> Result<()> {
    let ndk = ndk::find(args.api)?;
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
