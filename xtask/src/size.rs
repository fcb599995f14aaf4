//! `cargo xtask size`: the stripped size of our native library (without ONNX Runtime) per target, built with the
//! `mobile` profile, against a budget. arm64 is measured on aarch64 Linux (Debian's cross linker) unless the NDK is
//! there to link the Android library itself; the code is the same, only libc differs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::{android, bindgen, cmd, targets};

/// Budget for the arm64 library, set from measurement (0.73 MB with opt-level z + fat LTO; see the issue note).
pub const ARM64_BUDGET_BYTES: u64 = 1_000_000;

struct Measured {
    target: String,
    bytes: Option<u64>,
    note: String,
    budgeted: bool,
}

pub fn run() -> Result<()> {
    let mut rows = Vec::new();
    cmd::ensure_debian_packages(&["aarch64-linux-gnu-gcc"], &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"])?;
    let ndk = android::ndk().ok();
    let proxy_budgeted = ndk.is_none();
    for (triple, note) in
        [("aarch64-unknown-linux-gnu", "arm64 (Linux build of the same code)"), ("x86_64-unknown-linux-gnu", "host")]
    {
        if !targets::ensure_installed(triple) {
            rows.push(Measured {
                target: triple.into(),
                bytes: None,
                note: "rustup cannot install it".into(),
                budgeted: false,
            });
            continue;
        }
        let bytes = build_mobile(triple, &[])?;
        rows.push(Measured {
            target: triple.into(),
            bytes: Some(bytes),
            note: note.into(),
            budgeted: proxy_budgeted && triple.starts_with("aarch64"),
        });
    }
    for t in targets::ANDROID {
        match &ndk {
            Some(ndk) if targets::ensure_installed(t.triple) => {
                let bytes = build_mobile(t.triple, &ndk.cargo_env(t)?)?;
                rows.push(Measured {
                    target: t.triple.into(),
                    bytes: Some(bytes),
                    note: t.abi.into(),
                    budgeted: t.abi == "arm64-v8a",
                });
            }
            _ => rows.push(Measured {
                target: t.triple.into(),
                bytes: None,
                note: "needs the Android NDK to link".into(),
                budgeted: false,
            }),
        }
    }
    for t in targets::IOS {
        rows.push(Measured {
            target: t.triple.into(),
            bytes: None,
            note: "linked into the app by Xcode (static library)".into(),
            budgeted: false,
        });
    }

    println!("{:<28} {:>12}", "target", "stripped");
    let mut over = Vec::new();
    for r in &rows {
        let size = r.bytes.map_or("-".into(), |b| format!("{:.3} MB", b as f64 / 1e6));
        let budget =
            if r.budgeted { format!("  (budget {:.2} MB)", ARM64_BUDGET_BYTES as f64 / 1e6) } else { String::new() };
        println!("{:<28} {:>12}  {}{budget}", r.target, size, r.note);
        if r.budgeted && r.bytes.is_some_and(|b| b > ARM64_BUDGET_BYTES) {
            over.push(r.target.clone());
        }
    }
    if !over.is_empty() {
        bail!("over the size budget: {over:?}; find what grew with `cargo bloat --profile mobile --crates`");
    }
    Ok(())
}

/// Builds the FFI cdylib with the `mobile` profile for `triple` and returns its size in bytes.
fn build_mobile(triple: &str, env: &[(String, String)]) -> Result<u64> {
    cmd::capture(
        Command::new(env!("CARGO"))
            .current_dir(cmd::repo_root())
            .args(["build", "--quiet", "-p", "openautoglm-ffi", "--profile", "mobile", "--target", triple])
            .envs(env.iter().map(|(k, v)| (k, v))),
    )?;
    let lib: PathBuf = bindgen::target_dir().join(triple).join("mobile/libopenautoglm_ffi.so");
    Ok(std::fs::metadata(&lib)?.len())
}
