//! `cargo xtask size`: the stripped size of our native library (without ONNX Runtime) per target, built with the
//! `mobile` profile, against a budget. arm64 is measured on aarch64 Linux, linked as the NDK links (lld, Android-packed
//! relocations), unless the NDK is there to link the Android library itself; the code is the same, only libc differs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::{bindgen, cmd, ndk, targets};

/// Budgets for the arm64 library, set from measurement: the engine alone (0.73 MB with opt-level z + fat LTO at
/// first, 0.99 MB with compile cache and bundles, 1.02 MB with the untrusted-model hardening: the model check,
/// fallible allocation and ONNX Runtime's logs through `log`, +33 KB; 1.07 MB with the scheduler: lanes, cancel
/// tokens, session pools and the deadline thread, whose std thread machinery is a quarter of the +40 KB; 1.10 MB with
/// string and bfloat16 tensors, models mapped from a file descriptor and the library-path search, +17 KB; 1.20 MB
/// with the per-inference hot paths: the JNI entry point and the `jni` crate, 22 KB of code, the Swift fast-path entry
/// points and `run_into`, which the 16 KB segment alignment rounds up to +98 KB of file; 1.25 MB with measured
/// precision choice (+17 KB) and cascades with a foreign-language gate (+32 KB, most of it uniffi's callback
/// scaffolding); 1.32 MB with accuracy verdicts per numerics class (+16 KB: reading them from bundles, the typed
/// refusal that names class, score and mark, and the warnings for measurements from another class; writing bundles
/// is left to the tools, feature `manifest-tools`, which had cost 33 KB more); ONNX Runtime's telemetry kept off
/// (+5 KB) fits by keeping doc comments out of uniffi's metadata in the library (-3.7 KB, one 16 KB segment step);
/// plugin execution providers (ONNX Runtime's API level 22, registration, device selection, the CPU pinned for
/// sessions without an accelerator, the fallback when an accelerator cannot compile a model: +46 KB measured with GNU
/// ld) fit by measuring as the NDK links (lld with Android-packed relocations: -34 KB against GNU ld's output) and by
/// counting cores with `sysconf` as ONNX Runtime does (-11 KB of std's cgroup parsing); `Accelerator::Auto` (+6 KB)
/// fits by sharing one copy of `catch_panic`'s panic-to-error code (-6 KB): 1.314 MB); 1.34 MB with background
/// runs at a low OS priority (+6 KB: the worker threads created through ONNX Runtime's thread hook, ort's generic
/// glue for it most of that; nice/QoS per run) and small models' per-call choice of how threads wait (+2.5 KB for
/// the extra sessions, the rest in the cadence and the lane's new bookkeeping), 1.333 MB measured: no cut found in
/// the time this took (dropping the thread names and a formatted log saved 0.2 KB); back to 1.32 MB with the app's
/// log handlers (a uniffi callback trait and the dispatcher over the platform logger) and the per-feature runtime
/// check (+12 KB), which fit by dropping env_logger's colour and timestamp features (-48 KB: anstream, anstyle and
/// humantime; only stderr on desktop hosts used them, Android links android_logger and Apple os_log): 1.297 MB,
/// and the whole SDK with text generation, whose tokenizer (regex engines and Unicode tables) and template engine are
/// most of its 4.7 MB. Measured with Android's 16 KB segment alignment (.cargo/config.toml).
pub const ARM64_BUDGET_BYTES: u64 = 1_320_000;
pub const ARM64_WITH_LLM_BUDGET_BYTES: u64 = 5_000_000;

struct Measured {
    target: String,
    bytes: Option<u64>,
    note: String,
    /// The budget this row is held to.
    budget: Option<u64>,
}

pub fn run() -> Result<()> {
    let mut rows = Vec::new();
    cmd::ensure_debian_packages(&["aarch64-linux-gnu-gcc"], &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"])?;
    let ndk = ndk::find_default().ok();
    let proxy_budgeted = ndk.is_none();
    for (triple, note) in
        [("aarch64-unknown-linux-gnu", "arm64 (Linux build of the same code)"), ("x86_64-unknown-linux-gnu", "host")]
    {
        if !targets::ensure_installed(triple) {
            rows.push(Measured {
                target: triple.into(),
                bytes: None,
                note: "rustup cannot install it".into(),
                budget: None,
            });
            continue;
        }
        let arm64 = proxy_budgeted && triple.starts_with("aarch64");
        let bytes = build_mobile(triple, &[], true)?;
        rows.push(Measured {
            target: triple.into(),
            bytes: Some(bytes),
            note: format!("{note}, with text generation"),
            budget: arm64.then_some(ARM64_WITH_LLM_BUDGET_BYTES),
        });
        let bytes = build_mobile(triple, &[], false)?;
        rows.push(Measured {
            target: triple.into(),
            bytes: Some(bytes),
            note: format!("{note}, engine only (--no-default-features)"),
            budget: arm64.then_some(ARM64_BUDGET_BYTES),
        });
    }
    for t in targets::ANDROID {
        match &ndk {
            Some(ndk) if targets::ensure_installed(t.triple) => {
                let bytes = build_mobile(t.triple, &ndk.cargo_env(t)?, true)?;
                rows.push(Measured {
                    target: t.triple.into(),
                    bytes: Some(bytes),
                    note: t.abi.into(),
                    budget: (t.abi == "arm64-v8a").then_some(ARM64_WITH_LLM_BUDGET_BYTES),
                });
            }
            _ => rows.push(Measured {
                target: t.triple.into(),
                bytes: None,
                note: "needs the Android NDK to link".into(),
                budget: None,
            }),
        }
    }
    for t in targets::IOS {
        rows.push(Measured {
            target: t.triple.into(),
            bytes: None,
            note: "linked into the app by Xcode (static library)".into(),
            budget: None,
        });
    }

    println!("{:<28} {:>12}", "target", "stripped");
    let mut over = Vec::new();
    for r in &rows {
        let size = r.bytes.map_or("-".into(), |b| format!("{:.3} MB", b as f64 / 1e6));
        let budget = r.budget.map_or(String::new(), |b| format!("  (budget {:.2} MB)", b as f64 / 1e6));
        println!("{:<28} {:>12}  {}{budget}", r.target, size, r.note);
        if r.budget.is_some_and(|budget| r.bytes.is_some_and(|b| b > budget)) {
            over.push(format!("{} ({})", r.target, r.note));
        }
    }
    if !over.is_empty() {
        bail!("over the size budget: {over:?}; find what grew with `cargo bloat --profile mobile --crates`");
    }
    Ok(())
}

/// The arm64 proxy is linked as the NDK links an Android library for the module's minSdk (24): with lld, and with
/// relocations in Android's packed format (clang passes `--pack-dyn-relocs=android` for API 23 to 27, RELR from 28).
/// Linked by GNU ld without packing, the same code measured 33 KB more than an app would carry.
fn linked_as_the_ndk_does() -> Result<String> {
    let sysroot = cmd::capture(Command::new("rustc").args(["--print", "sysroot"]))?;
    let gcc_ld = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join(concat!(
        "lib/rustlib/",
        env!("HOST_TRIPLE"),
        "/bin/gcc-ld"
    ));
    if !gcc_ld.join("ld.lld").exists() {
        bail!("the toolchain's lld wrapper is missing ({}); rustup's toolchains ship it with rustc", gcc_ld.display());
    }
    Ok(format!(
        "-C link-arg=-Wl,-z,max-page-size=16384 -C link-arg=-B{} -C link-arg=-fuse-ld=lld \
         -C link-arg=-Wl,--pack-dyn-relocs=android",
        gcc_ld.display()
    ))
}

/// Builds the FFI cdylib with the `mobile` profile for `triple` (with or without text generation) and returns its
/// size in bytes.
fn build_mobile(triple: &str, env: &[(String, String)], llm: bool) -> Result<u64> {
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(cmd::repo_root())
        .args(["build", "--quiet", "-p", "openautoglm-ffi", "--profile", "mobile", "--target", triple])
        .args(if llm { &[][..] } else { &["--no-default-features"][..] })
        .envs(env.iter().map(|(k, v)| (k, v)));
    if triple == "aarch64-unknown-linux-gnu" {
        build.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS", linked_as_the_ndk_does()?);
    }
    cmd::capture(&mut build)?;
    let lib: PathBuf = bindgen::target_dir().join(triple).join("mobile/libopenautoglm_ffi.so");
    Ok(std::fs::metadata(&lib)?.len())
}
