//! The JVM side of the benchmarks: the Kotlin runners compiled by Maven with their classpath, and ONNX Runtime's
//! Java API natives (its JNI glue and its own libonnxruntime.so).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cache, cmd};

/// ONNX Runtime's Java API brings its own build (its JNI glue is tied to it by ELF symbol versions): its directory
/// and its libonnxruntime.so, which all our runners then use too, so that only the binding layers differ.
pub fn ort_java_natives() -> Result<(PathBuf, PathBuf)> {
    let classpath = classpath()?;
    let jar =
        classpath.split(':').find(|p| p.contains("/onnxruntime-1.")).context("no onnxruntime jar on the classpath")?;
    let native_dir = cache::dir().join("ort-java-native");
    for lib in ["libonnxruntime.so", "libonnxruntime4j_jni.so"] {
        let dest = native_dir.join(lib);
        if !dest.exists() {
            cache::extract(Path::new(jar), &format!("ai/onnxruntime/native/linux-x64/{lib}"), &dest, None)?;
        }
    }
    let ort = native_dir.join("libonnxruntime.so");
    Ok((native_dir, ort))
}

/// The compiled Kotlin runners and their dependencies (Maven), built once per process.
pub fn classpath() -> Result<String> {
    static CLASSPATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(cp) = CLASSPATH.get() {
        return Ok(cp.clone());
    }
    let spinner = cache::spinner("compiling the JVM runners (Maven)".into());
    let android = cmd::repo_root().join("android");
    let classpath_file = android.join("build/maven/classpath.txt");
    let built =
        cmd::capture(Command::new("mvn").current_dir(&android).args(["-B", "-q", "test-compile"])).and_then(|_| {
            cmd::capture(Command::new("mvn").current_dir(&android).args([
                "-B",
                "-q",
                "dependency:build-classpath",
                &format!("-Dmdep.outputFile={}", classpath_file.display()),
            ]))
        });
    spinner.finish_and_clear();
    built?;
    let classes = android.join("build/maven");
    let cp = format!(
        "{}:{}:{}",
        classes.join("classes").display(),
        classes.join("test-classes").display(),
        fs::read_to_string(&classpath_file)?.trim()
    );
    Ok(CLASSPATH.get_or_init(|| cp).clone())
}
