//! The Swift toolchain on Linux: Debian trixie's Swift 6 in a chroot (this host is Debian 12, which has none), set up
//! once in the cache and reused. The package, the host-built library, ONNX Runtime and the data are staged inside.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

use crate::{cache, cmd, models};

const ROOT_NAME: &str = "swift-6.0.3-trixie";
const READY: &str = ".openautoglm-ready";
/// Where the package and its inputs are staged inside the chroot.
pub const STAGE: &str = "/openautoglm";

/// The chroot with swiftlang installed, made on first use (~570 MB download, a few minutes).
pub fn toolchain() -> Result<PathBuf> {
    let root = cache::dir().join(ROOT_NAME);
    if root.join(READY).exists() {
        return Ok(root);
    }
    if !cfg!(target_os = "linux") {
        bail!("the Swift chroot is for Linux hosts; on macOS run `swift test` in ios/ with Xcode's toolchain");
    }
    if !cmd::exists("debootstrap") {
        println!("installing debootstrap (apt-get)");
        cmd::run(Command::new("sh").args(["-c", "apt-get update -q && apt-get install -y -q debootstrap"]))
            .context("debootstrap is needed to build the Swift chroot (apt-get install debootstrap, as root)")?;
    }
    let tmp = cache::dir().join(format!("{ROOT_NAME}.partial"));
    if tmp.exists() {
        let _ = Command::new("umount").arg(tmp.join("proc")).status();
        fs::remove_dir_all(&tmp)?;
    }
    let spinner = cache::spinner("Swift chroot: debootstrap trixie (one time, a few minutes)".into());
    let result = (|| -> Result<()> {
        cmd::capture(
            Command::new("debootstrap")
                .args(["--variant=minbase", "trixie"])
                .arg(&tmp)
                .arg("http://deb.debian.org/debian"),
        )?;
        fs::copy("/etc/resolv.conf", tmp.join("etc/resolv.conf"))?;
        spinner.set_message("Swift chroot: apt-get install swiftlang (one time, ~570 MB)");
        let _proc = KernelMount::new(&tmp, "proc")?;
        cmd::capture(Command::new("chroot").arg(&tmp).args([
            "/bin/sh",
            "-c",
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
             swiftlang libc6-dev",
        ]))?;
        Ok(())
    })();
    spinner.finish_and_clear();
    result.context("could not build the Swift chroot")?;
    fs::write(tmp.join(READY), "")?;
    fs::rename(&tmp, &root)?;
    Ok(root)
}

/// A kernel file system mounted inside the chroot for as long as this lives: /proc, and /sys (oneTBB, under
/// OpenVINO, reads the CPU topology there and crashes without it).
struct KernelMount(PathBuf);

impl KernelMount {
    fn new(root: &Path, kind: &str) -> Result<KernelMount> {
        let target = root.join(kind);
        fs::create_dir_all(&target)?;
        cmd::run(Command::new("mount").args(["-t", if kind == "sys" { "sysfs" } else { kind }, kind]).arg(&target))?;
        Ok(KernelMount(target))
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The Swift package staged in the chroot, ready for `swift` commands.
pub struct Stage {
    root: PathBuf,
}

impl Stage {
    /// Copies the package, `library` (libopenautoglm_ffi), ONNX Runtime, the test data and the Swift example into
    /// the chroot, with the package's own `build/linux` (from `publish --local`) when it exists. The `.build`
    /// directories are kept between runs so builds are incremental.
    pub fn new(library: &Path, ort: &Path, models: &Path) -> Result<Stage> {
        let root = toolchain()?;
        let stage = root.join(STAGE.trim_start_matches('/'));
        let repo = cmd::repo_root();
        let example = "examples/swift-linux";
        for dir in ["ios/Sources", "ios/Tests", "ios/build", "data", "models", "llm", "lib", "bench", "openvino", "bin"]
        {
            let _ = fs::remove_dir_all(stage.join(dir));
        }
        let _ = fs::remove_dir_all(stage.join(example).join("Sources"));
        fs::create_dir_all(stage.join("ios/build"))?;
        fs::create_dir_all(stage.join(example))?;
        fs::create_dir_all(stage.join("lib"))?;
        fs::create_dir_all(stage.join("bench"))?;
        fs::create_dir_all(stage.join("llm"))?;
        let tiny_llm = models::llm::dir("smollm2-tiny");
        let openvino_dir = cache::openvino_plugin()?.parent().expect("in its directory").to_path_buf();
        let copies = [
            (repo.join("ios/Sources"), "ios/Sources".to_owned()),
            (repo.join("ios/Tests"), "ios/Tests".to_owned()),
            (repo.join("ios/Package.swift"), "ios/Package.swift".to_owned()),
            (repo.join("ios/build/linux"), "ios/build/linux".to_owned()),
            (repo.join(example).join("Sources"), format!("{example}/Sources")),
            (repo.join(example).join("Package.swift"), format!("{example}/Package.swift")),
            (repo.join("core/tests/data"), "data".to_owned()),
            (models.to_path_buf(), "models".to_owned()),
            (library.to_path_buf(), format!("lib/{}", library.file_name().expect("file name").to_string_lossy())),
            (ort.to_path_buf(), "lib/libonnxruntime.so".to_owned()),
            // The tiny decoder only (when prepared): the real one is 1.4 GB in four precisions.
            (tiny_llm.clone(), "llm/smollm2-tiny".to_owned()),
            // The OpenVINO plugin, and the emulator that gives it an Intel CPU (crate::intel), when fetched.
            (openvino_dir.clone(), "openvino".to_owned()),
            (PathBuf::from("/usr/bin/qemu-x86_64-static"), "bin/qemu-x86_64-static".to_owned()),
        ];
        fs::create_dir_all(stage.join("bin"))?;
        for (from, to) in copies.into_iter().filter(|(from, _)| from.exists()) {
            cmd::run(Command::new("cp").args(["-a", "-L", "--no-target-directory"]).arg(&from).arg(stage.join(to)))?;
        }
        Ok(Stage { root })
    }

    /// A host path for `inside` (an absolute path within the stage).
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Runs `script` with sh in the package directory, with the library paths and test data set.
    pub fn sh(&self, script: &str) -> Result<Output> {
        let _mounts = (KernelMount::new(&self.root, "proc")?, KernelMount::new(&self.root, "sys")?);
        let script = format!(
            "cd {STAGE}/ios && export OPENAUTOGLM_LIB_DIR={STAGE}/lib LD_LIBRARY_PATH={STAGE}/lib \
             ORT_DYLIB_PATH={STAGE}/lib/libonnxruntime.so OPENAUTOGLM_TEST_DATA={STAGE}/data \
             OPENAUTOGLM_MODELS={STAGE}/models OPENAUTOGLM_LLMS={STAGE}/llm \
             OPENAUTOGLM_OPENVINO_PLUGIN={STAGE}/openvino/libonnxruntime_providers_openvino_plugin.so && {script}"
        );
        Command::new("chroot").arg(&self.root).args(["/bin/sh", "-c", &script]).output().context("cannot run chroot")
    }

    /// Runs `script` in `dir` (inside the stage) as a user's shell would: none of the library or data variables set.
    pub fn sh_as_user(&self, dir: &str, script: &str) -> Result<Output> {
        let _mounts = (KernelMount::new(&self.root, "proc")?, KernelMount::new(&self.root, "sys")?);
        let script = format!("cd {STAGE}/{dir} && {script}");
        Command::new("chroot")
            .arg(&self.root)
            .args(["/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "/bin/sh", "-c", &script])
            .output()
            .context("cannot run chroot")
    }
}
