//! `cargo xtask doctor`: what this machine can build, test and run, and what each missing piece would enable.

use std::process::Command;

use anyhow::Result;

use crate::{cache, cmd, ndk, targets};

fn version(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    let first = String::from_utf8_lossy(&text).lines().next()?.trim().to_owned();
    // Drop terminal colour codes (Maven prints them even when piped).
    Some(first.replace("\u{1b}[1m", "").replace("\u{1b}[m", "").replace("\u{1b}[0m", ""))
}

fn line(ok: bool, what: &str, found: &str, enables: &str) {
    println!("{} {:<24} {:<50} {}", if ok { "[x]" } else { "[ ]" }, what, found, enables);
}

pub fn run() -> Result<()> {
    println!("    {:<24} {:<50} enables", "what", "found");
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().ok();
    let installed = installed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for t in targets::ANDROID.iter().chain(targets::IOS) {
        let ok = installed.lines().any(|l| l.trim() == t.triple);
        line(
            ok,
            t.triple,
            if ok { "rustup target installed" } else { "not installed (check-targets adds it if it can)" },
            "check-targets, builds",
        );
    }
    match ndk::find_default() {
        Ok(ndk) => line(
            true,
            "Android NDK",
            &ndk.root.display().to_string(),
            "build android, size per ABI, bench --device android",
        ),
        Err(_) => line(
            false,
            "Android NDK",
            "ANDROID_NDK_HOME / ANDROID_HOME unset",
            "build android, size per ABI, bench --device android",
        ),
    }
    let gradle = cmd::exists("gradle");
    line(
        gradle,
        "Gradle",
        &version("gradle", &["--version"]).filter(|_| gradle).unwrap_or("not found".into()),
        "AAR assembly",
    );
    let adb = cmd::exists("adb");
    let devices = if adb { version("adb", &["devices"]).unwrap_or_default() } else { "not found".into() };
    line(adb, "adb", &devices, "bench --device android");
    let xcode = cmd::exists("xcodebuild");
    line(
        xcode,
        "Xcode",
        &version("xcodebuild", &["-version"]).filter(|_| xcode).unwrap_or("not found (macOS only)".into()),
        "build ios, XCFramework",
    );
    let simctl = cmd::exists("xcrun");
    line(simctl, "simctl", if simctl { "xcrun simctl" } else { "not found (macOS only)" }, "bench --device ios-sim");
    for (program, args, what, enables) in [
        ("java", &["-version"][..], "java", "Kotlin tests, bench --vs kotlin"),
        ("mvn", &["-v"][..], "mvn", "Kotlin tests, bench --vs kotlin"),
        ("python3", &["--version"][..], "python3 + pip", "fetching ONNX Runtime and models from PyPI"),
        ("qemu-aarch64-static", &["--version"][..], "qemu-aarch64-static", "bench --device qemu-arm64"),
        ("aarch64-linux-gnu-gcc", &["--version"][..], "aarch64-linux-gnu-gcc", "qemu-arm64 builds, size (arm64)"),
    ] {
        let found = version(program, args);
        line(found.is_some(), what, found.as_deref().unwrap_or("not found (xtask installs it where it can)"), enables);
    }
    let chroot = cache::dir().join("swift-6.0.3-trixie/.openautoglm-ready").exists();
    let swift = cmd::exists("swift");
    line(
        chroot || swift,
        "Swift",
        if swift {
            "swift on PATH"
        } else if chroot {
            "Swift 6.0.3 chroot (cache)"
        } else {
            "none yet (test builds the chroot)"
        },
        "Swift tests, bench --vs swift",
    );
    line(true, "cache", &cache::dir().display().to_string(), "ONNX Runtime, models, toolchains");
    Ok(())
}
