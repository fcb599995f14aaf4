//! The Android NDK: found as cargo-ndk finds it, and the environment cargo needs to link with its clang. Used by
//! `build android`, the size check, the device runner build and `doctor`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::targets::Target;

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
pub fn find_default() -> Result<Ndk> {
    find(24)
}

/// The NDK, linking for Android API level `api`.
pub fn find(api: u32) -> Result<Ndk> {
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

    pub fn strip(&self, lib: &Path) -> Result<()> {
        cmd::run(Command::new(self.bin.join("llvm-strip")).arg("--strip-unneeded").arg(lib))
    }
}
