//! `cargo xtask build ios` (macOS with Xcode): static libraries for device and simulators, simulator slices merged
//! with lipo, Swift sources + header + module map, `OpenAutoGLMFFI.xcframework` via `xcodebuild -create-xcframework`,
//! zipped with its SwiftPM checksum. ONNX Runtime is linked from ORT's own iOS xcframework (ORT_IOS_XCFWK_PATH).

use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::targets::IOS;
use crate::{bindgen, cmd, targets};

#[derive(clap::Args)]
pub struct Args {
    /// Cargo profile for the static libraries.
    #[arg(long, default_value = "mobile")]
    profile: String,
}

pub fn build(args: Args) -> Result<()> {
    if std::env::consts::OS != "macos" {
        bail!(
            "`cargo xtask build ios` needs macOS with Xcode (xcodebuild, lipo, the iOS SDKs); this is {}. On Linux, \
             `cargo xtask check-targets` compiles the iOS code and `cargo xtask test` runs the Swift layer.",
            std::env::consts::OS
        );
    }
    for tool in ["xcodebuild", "lipo", "xcrun"] {
        if !cmd::exists(tool) {
            bail!("{tool} was not found: install Xcode and run `xcode-select --install`");
        }
    }
    let ort = std::env::var("ORT_IOS_XCFWK_PATH").context(
        "set ORT_IOS_XCFWK_PATH to ONNX Runtime's onnxruntime.xcframework (from the onnxruntime-c pod or ORT's iOS \
         release): the iOS build links ONNX Runtime statically",
    )?;
    let root = cmd::repo_root();
    let out = root.join("ios/build");
    let profile_dir = if args.profile == "dev" { "debug" } else { args.profile.as_str() };
    let mut libs = Vec::new();
    for t in IOS {
        if !targets::ensure_installed(t.triple) {
            bail!("rustup cannot install {}", t.triple);
        }
        cmd::run(
            Command::new(env!("CARGO"))
                .current_dir(root)
                .args([
                    "rustc",
                    "-p",
                    "openautoglm-ffi",
                    "--lib",
                    "--crate-type",
                    "staticlib",
                    "--profile",
                    &args.profile,
                ])
                .args(["--target", t.triple, "--features", "apple-log"])
                .env("ORT_IOS_XCFWK_PATH", &ort),
        )?;
        libs.push(bindgen::target_dir().join(t.triple).join(profile_dir).join("libopenautoglm_ffi.a"));
    }
    // Simulator slices (arm64 + x86_64) become one fat library; the device slice stays apart.
    let sim = out.join("ios-simulator/libopenautoglm_ffi.a");
    fs::create_dir_all(sim.parent().expect("parent"))?;
    cmd::run(Command::new("lipo").arg("-create").arg(&libs[1]).arg(&libs[2]).arg("-output").arg(&sim))?;

    bindgen::generate()?;
    let headers = root.join("ios/Sources/OpenAutoGLMFFI");
    let headers_dir = out.join("headers");
    let _ = fs::remove_dir_all(&headers_dir);
    fs::create_dir_all(&headers_dir)?;
    fs::copy(headers.join("OpenAutoGLMFFI.h"), headers_dir.join("OpenAutoGLMFFI.h"))?;
    fs::copy(headers.join("OpenAutoGLMFast.h"), headers_dir.join("OpenAutoGLMFast.h"))?;
    fs::copy(headers.join("module.modulemap"), headers_dir.join("module.modulemap"))?;

    let xcframework = out.join("OpenAutoGLMFFI.xcframework");
    let _ = fs::remove_dir_all(&xcframework);
    cmd::run(
        Command::new("xcodebuild")
            .arg("-create-xcframework")
            .arg("-library")
            .arg(&libs[0])
            .arg("-headers")
            .arg(&headers_dir)
            .arg("-library")
            .arg(&sim)
            .arg("-headers")
            .arg(&headers_dir)
            .arg("-output")
            .arg(&xcframework),
    )?;
    let zip = out.join("OpenAutoGLMFFI.xcframework.zip");
    let _ = fs::remove_file(&zip);
    cmd::run(Command::new("ditto").args(["-c", "-k", "--sequesterRsrc", "--keepParent"]).arg(&xcframework).arg(&zip))?;
    let checksum = cmd::capture(
        Command::new("swift").args(["package", "compute-checksum"]).arg(&zip).current_dir(root.join("ios")),
    )?;
    println!("XCFramework: {}", xcframework.display());
    println!("zip: {}  (SwiftPM checksum {})", zip.display(), String::from_utf8_lossy(&checksum.stdout).trim());
    println!("Package.swift uses the local XCFramework; for a release, set OPENAUTOGLM_XCFRAMEWORK_URL and _CHECKSUM.");
    Ok(())
}
