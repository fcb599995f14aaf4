//! The mobile targets, in one table, and `cargo xtask check-targets`: every one that rustup can install here is
//! compiled as a staticlib on every test run, so Android and iOS code paths never rot unseen.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{bindgen, cmd};

pub struct Target {
    pub triple: &'static str,
    /// Android ABI directory name (jniLibs/<abi>), or the Apple platform.
    pub abi: &'static str,
    /// The NDK clang prefix (`<prefix><api>-clang`), for Android targets.
    pub ndk_clang: Option<&'static str>,
}

pub const ANDROID: &[Target] = &[
    Target { triple: "aarch64-linux-android", abi: "arm64-v8a", ndk_clang: Some("aarch64-linux-android") },
    Target { triple: "armv7-linux-androideabi", abi: "armeabi-v7a", ndk_clang: Some("armv7a-linux-androideabi") },
    Target { triple: "x86_64-linux-android", abi: "x86_64", ndk_clang: Some("x86_64-linux-android") },
    Target { triple: "i686-linux-android", abi: "x86", ndk_clang: Some("i686-linux-android") },
];

pub const IOS: &[Target] = &[
    Target { triple: "aarch64-apple-ios", abi: "ios-arm64", ndk_clang: None },
    Target { triple: "aarch64-apple-ios-sim", abi: "ios-arm64-simulator", ndk_clang: None },
    Target { triple: "x86_64-apple-ios", abi: "ios-x86_64-simulator", ndk_clang: None },
];

pub fn android_abi(abi: &str) -> Result<&'static Target> {
    match ANDROID.iter().find(|t| t.abi == abi || t.triple == abi) {
        Some(t) => Ok(t),
        None => bail!("unknown Android ABI `{abi}` (known: arm64-v8a, armeabi-v7a, x86_64, x86)"),
    }
}

/// Whether the Rust standard library for `triple` is installed, installing it if rustup can.
pub fn ensure_installed(triple: &str) -> bool {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == triple)) {
        return true;
    }
    Command::new("rustup")
        .args(["target", "add", triple])
        .env("RUST_BACKTRACE", "0")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles the FFI crate (and so the core) as a staticlib for every mobile target; fails if one that is
/// installable does not compile, or if fewer than 4 Android and 1 iOS target were compiled. Returns how many
/// compiled.
pub fn check() -> Result<usize> {
    let mut compiled = (0, 0);
    let mut failures = Vec::new();
    println!("{:<26} {:<10} {:>10}", "target", "result", "staticlib");
    for (target, is_android) in ANDROID.iter().map(|t| (t, true)).chain(IOS.iter().map(|t| (t, false))) {
        if !ensure_installed(target.triple) {
            println!("{:<26} {:<10} {:>10}", target.triple, "no std", "-  (rustup cannot install it on this host)");
            continue;
        }
        let out = Command::new(env!("CARGO"))
            .current_dir(cmd::repo_root())
            .args(["rustc", "--quiet", "-p", "openautoglm-ffi", "--lib", "--crate-type", "staticlib", "--target"])
            .arg(target.triple)
            .output()?;
        let lib = bindgen::target_dir().join(target.triple).join("debug/libopenautoglm_ffi.a");
        if out.status.success() {
            let size = std::fs::metadata(&lib).map(|m| format!("{:.1} MB", m.len() as f64 / 1e6)).unwrap_or("?".into());
            println!("{:<26} {:<10} {:>10}", target.triple, "ok", size);
            if is_android { compiled.0 += 1 } else { compiled.1 += 1 }
        } else {
            println!("{:<26} {:<10}", target.triple, "FAILED");
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            failures.push(target.triple);
        }
    }
    println!(
        "compiled: {} Android, {} iOS targets (debug staticlibs; see `cargo xtask size` for release sizes)",
        compiled.0, compiled.1
    );
    if !failures.is_empty() {
        bail!("these targets do not compile: {failures:?}");
    }
    if compiled.0 < 4 || compiled.1 < 1 {
        bail!("expected at least 4 Android and 1 iOS target to compile, got {} and {}", compiled.0, compiled.1);
    }
    Ok(compiled.0 + compiled.1)
}
