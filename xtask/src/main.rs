//! `cargo xtask`: every step a developer or CI runs, with `--help` for each.
//!
//! Subcommands, one module or folder each: `bench/`, `test/`, `fuzz/`, `report`, `build/` (android, ios), `size`,
//! `doctor`, `publish`, `cascade`; `models`, `bindgen` and `targets` also serve as helpers. Subcommands import shared
//! helpers, never each other (`test`, which runs every step, calls the others' typed entry points; nothing imports
//! `test`), and `cargo xtask test` fails when one does (`layout`):
//! - `cmd` (repo paths, running commands), `cache` (the machine cache, registry downloads, progress spinners),
//!   `python` (the pinned venv), `jvm` (Maven classpath), `swift_toolchain` (the Swift chroot), `ndk`, `intel` (the
//!   emulated Intel CPU for the OpenVINO plugin), `layout` (the code's shape rules);
//! - `models` (the manifest, fetching, variants, LLM decoders), `cascades` (cascade pairs, lines, calibration),
//!   `bindgen`, `targets`;
//! - `runner` (the benchmark runner, built in this one place), `devices` (deploy/run/collect on host, qemu, adb,
//!   simctl), `results` (the benchmark result files as types, the one module that reads result JSON, and the
//!   report rendered from them).

mod bench;
mod bindgen;
mod build;
mod cache;
mod cascade;
mod cascades;
mod cmd;
mod devices;
mod doctor;
mod fuzz;
mod intel;
mod jvm;
mod layout;
mod loopback;
mod models;
mod ndk;
mod publish;
mod python;
mod report;
mod results;
mod runner;
mod size;
mod swift_toolchain;
mod targets;
mod test;
mod text_render;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and benchmark Open-AutoGLM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark a real model (default: all-MiniLM-L6-v2 INT8) on this machine or a device, alone, against peers
    /// (--vs), or as a suite of every model and precision (--suite standard) with a report.
    Bench(Box<bench::Args>),
    /// Run every test: fmt, clippy, Rust, Kotlin (JVM), Swift, mobile target builds, the size budget and the
    /// emulated ARM64 device and a short fuzzing run; then print a summary.
    Test(test::Args),
    /// Hostile models against every entry point: a process-isolated mutation run over the real models and fixtures,
    /// then the libFuzzer targets of core/fuzz; fails on any crash, hang or panic, with minimised reproducers.
    Fuzz(fuzz::Args),
    /// Install the SDK for programs on this machine (`--local`): ai.openautoglm:openautoglm-jvm into ~/.m2, and the
    /// Swift package's Linux libraries into ios/build/linux.
    Publish(publish::Args),
    /// Fetch the pinned host ONNX Runtime and the models the tests use into the cache (test and bench do it too).
    Setup,
    /// Generate the Kotlin and Swift bindings from an unstripped host build of the FFI library.
    Bindgen,
    /// Cascades (a fast model first, the main model when unsure): `cascade calibrate` chooses the gate threshold
    /// on labelled inputs and writes the manifest the cascade loads.
    Cascade {
        #[command(subcommand)]
        action: cascade::Action,
    },
    /// Fetch and verify the real models of benchmarks/models.json.
    Models {
        #[command(subcommand)]
        action: models::Action,
    },
    /// Build the SDK for phones: `build android` (NDK) or `build ios` (macOS + Xcode).
    Build {
        #[command(subcommand)]
        platform: Platform,
    },
    /// Compile the core and FFI crates as a staticlib for every Android and iOS target installable here.
    CheckTargets,
    /// Stripped size of our native library per target (mobile profile), checked against the budget.
    Size,
    /// Which toolchains, SDKs and devices this machine has, and what each enables.
    Doctor,
    /// Turn result files (bench --json, suites, any devices) into report.md and SVG/PNG plots.
    Report(report::Args),
    /// Regenerate the committed test fixtures (tiny models, expected outputs) with Python onnx/onnxruntime.
    Fixtures,
}

#[derive(Subcommand)]
enum Platform {
    /// Native libraries per ABI into android/src/main/jniLibs, Android bindings, and the AAR if Gradle is there.
    Android(build::android::Args),
    /// OpenAutoGLMFFI.xcframework (device + simulators), zipped with its SwiftPM checksum. macOS only.
    Ios(build::ios::Args),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(*args),
        Command::Cascade { action } => cascade::run(action),
        Command::Test(args) => test::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Setup => {
            let ort = cache::host_onnxruntime()?;
            println!("ONNX Runtime: {}", ort.display());
            for id in models::TEST_MODELS {
                println!("{id}: {}", models::fetch(id)?.display());
            }
            Ok(())
        }
        Command::Bindgen => bindgen::generate().map(|_| ()),
        Command::Models { action } => models::run(action),
        Command::Fixtures => models::regenerate_fixtures(),
        Command::Build { platform: Platform::Android(args) } => build::android::build(args),
        Command::Build { platform: Platform::Ios(args) } => build::ios::build(args),
        Command::CheckTargets => targets::check().map(|_| ()),
        Command::Size => size::run(),
        Command::Doctor => doctor::run(),
        Command::Report(args) => report::run(args),
    }
}
