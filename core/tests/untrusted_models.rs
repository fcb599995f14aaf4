//! Hostile models, bundles and buffers (issue: "a model file must never read the app's files, abort the app or
//! hang it"). Every test runs with the working directory at `/`, as an Android or iOS app process does, so a path
//! that escapes resolves where it would in an app.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::onnx::{self, D};
use openautoglm::{CacheOutcome, ElementType, Engine, EngineConfig, Error, ShapeBucket, TensorRef};

fn setup() {
    common::init();
    std::env::set_current_dir("/").unwrap();
}

/// A fresh, absolute temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "openautoglm-untrusted-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_invalid_model<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) -> String {
    match result {
        Err(Error::InvalidModel { reason }) => reason,
        other => panic!("{what}: expected InvalidModel, got {other:?}"),
    }
}

/// Runs `f` on another thread and fails the test if it has not returned within `secs`: a hang is a failure here.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("the call hung")
}

#[test]
fn a_model_from_bytes_cannot_read_the_apps_files() {
    setup();
    let passwd_len = std::fs::metadata("/etc/passwd").unwrap().len().min(64);
    let cache = TempDir::new();
    for location in ["../../../../etc/passwd", "/etc/passwd", "etc/passwd"] {
        let model = onnx::external_identity(location, passwd_len);
        let reason = assert_invalid_model(Engine::from_bytes(&model, EngineConfig::default()), location);
        assert!(reason.contains("external data"), "{reason}");
        let cached = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
        assert_invalid_model(Engine::from_bytes(&model, cached), location);
        // Naming a directory does not let the location out of it.
        let elsewhere = TempDir::new();
        let config = EngineConfig::default().with_external_data_dir(elsewhere.0.display().to_string());
        assert_invalid_model(Engine::from_bytes(&model, config), location);
    }
}

#[test]
fn a_model_from_bytes_reads_external_data_from_the_directory_it_is_given() {
    setup();
    let dir = TempDir::new();
    let weights: Vec<u8> = (0..16).collect();
    dir.write("weights.bin", &weights);
    let model = onnx::external_identity("weights.bin", 16);
    let config = EngineConfig::default().with_external_data_dir(dir.0.display().to_string());
    let engine = Engine::from_bytes(&model, config).expect("external data inside the named directory loads");
    let out = engine.run(&[]).unwrap();
    assert_eq!(out[0].data, weights, "ONNX Runtime read the named directory's file, not one under `/`");
}

#[test]
fn a_model_file_cannot_reach_outside_its_directory_through_a_symlink() {
    setup();
    let dir = TempDir::new();
    std::os::unix::fs::symlink("/etc/passwd", dir.0.join("weights.bin")).unwrap();
    let path = dir.write("model.onnx", &onnx::external_identity("weights.bin", 16));
    let reason = assert_invalid_model(Engine::from_file(&path, EngineConfig::default()), "symlinked external data");
    assert!(reason.contains("outside the model's directory"), "{reason}");
    // A FIFO as external data is refused, not opened (opening it would block).
    let dir = TempDir::new();
    mkfifo(&dir.0.join("weights.bin"));
    let path = dir.write("model.onnx", &onnx::external_identity("weights.bin", 16));
    assert_invalid_model(within(10, move || Engine::from_file(&path, EngineConfig::default())), "FIFO external data");
}

fn bundle_with(dir: &Path, file: &str) {
    let manifest = format!(
        r#"{{"format": 1, "model": "m", "variants": [{{"precision": "fp32", "file": "{file}", "accurate": true}}]}}"#
    );
    std::fs::write(dir.join("bundle.json"), manifest).unwrap();
}

#[test]
fn a_bundle_cannot_point_outside_its_directory() {
    setup();
    let outside = TempDir::new();
    let victim = outside.write("victim.onnx", &std::fs::read(common::model("matmul_dynamic")).unwrap());
    let relative = format!("../{}/victim.onnx", outside.0.file_name().unwrap().to_str().unwrap());
    for file in [relative.as_str(), victim.to_str().unwrap(), "sub/victim.onnx", ".."] {
        let bundle = TempDir::new();
        bundle_with(&bundle.0, &file.replace('\\', "\\\\"));
        let reason = assert_invalid_model(Engine::from_bundle(&bundle.0, EngineConfig::default()), file);
        assert!(reason.contains("plain file name"), "{reason}");
    }
    // A plain name that is a symlink out of the bundle.
    let bundle = TempDir::new();
    std::os::unix::fs::symlink(&victim, bundle.0.join("fp32.onnx")).unwrap();
    bundle_with(&bundle.0, "fp32.onnx");
    let reason = assert_invalid_model(Engine::from_bundle(&bundle.0, EngineConfig::default()), "symlink");
    assert!(reason.contains("outside the bundle"), "{reason}");
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn a_fifo_in_a_bundle_is_refused_without_blocking() {
    setup();
    let bundle = TempDir::new();
    mkfifo(&bundle.0.join("bundle.json"));
    let dir = bundle.0.clone();
    let result = within(10, move || Engine::from_bundle(&dir, EngineConfig::default()).map(drop));
    assert!(matches!(result, Err(Error::ModelNotFound { .. })), "{result:?}");

    let bundle = TempDir::new();
    mkfifo(&bundle.0.join("fp32.onnx"));
    bundle_with(&bundle.0, "fp32.onnx");
    let dir = bundle.0.clone();
    let result = within(10, move || Engine::from_bundle(&dir, EngineConfig::default()).map(drop));
    assert!(matches!(result, Err(Error::ModelNotFound { .. })), "{result:?}");
}

#[test]
fn warmup_on_huge_declared_inputs_is_a_typed_error_not_an_abort() {
    setup();
    for (elem_type, dims) in [(onnx::UINT8, [1u64 << 31, 1 << 31]), (onnx::FLOAT, [1 << 20, 1 << 20])] {
        let model = onnx::identity(elem_type, &[D::Fixed(dims[0]), D::Fixed(dims[1])]);
        let engine = Engine::from_bytes(&model, EngineConfig::default()).unwrap();
        let err = engine.warmup(1).unwrap_err();
        assert!(matches!(&err, Error::MemoryLimit { reason } if reason.contains("warmup input `x`")), "{err:?}");
        // Even with no limit of the engine's own, the allocation fails as a typed error.
        let unlimited = Engine::from_bytes(&model, EngineConfig::default().with_memory_limit_mb(0)).unwrap();
        if elem_type == onnx::UINT8 {
            assert!(matches!(unlimited.warmup(1), Err(Error::MemoryLimit { .. })));
        }
        // Loading with a placement report does the same warmup: the load succeeds and says why there is no report.
        let placed = Engine::from_bytes(&model, EngineConfig::default().with_placement_report(true)).unwrap();
        let warnings = &placed.placement().unwrap().warnings;
        assert!(warnings.iter().any(|w| w.contains("memory limit")), "{warnings:?}");
    }
    // A shape bucket of 2^42 on a dynamic dimension.
    let model = onnx::identity(onnx::FLOAT, &[D::Named("n")]);
    let config = EngineConfig::default().with_shape_buckets(vec![ShapeBucket::new([("n", 1i64 << 42)])]);
    let engine = Engine::from_bytes(&model, config).unwrap();
    assert!(matches!(engine.warmup(1), Err(Error::MemoryLimit { .. })));
    // The engine still runs real inputs afterwards.
    let out = engine.run(&[("x", TensorRef::new(&[2], &[1.0f32, 2.0]))]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), [1.0, 2.0]);
}

#[test]
fn outputs_over_the_memory_limit_are_typed_errors() {
    setup();
    let model = onnx::identity(onnx::UINT8, &[D::Named("n")]);
    let engine = Engine::from_bytes(&model, EngineConfig::default().with_memory_limit_mb(1)).unwrap();
    let big = vec![7u8; 2 << 20];
    let err = engine.run(&[("x", TensorRef::new(&[big.len() as i64], &big))]).unwrap_err();
    assert!(matches!(&err, Error::MemoryLimit { reason } if reason.contains("output `y`")), "{err:?}");
    assert!(!err.to_string().contains("[7"), "no tensor contents in the message: {err}");
    let out = engine.run(&[("x", TensorRef::new(&[3], &[1u8, 2, 3]))]).unwrap();
    assert_eq!(out[0].data, [1, 2, 3]);
}

#[test]
fn an_input_name_with_nul_is_refused_at_load() {
    setup();
    let model = onnx::model(&onnx::graph(&[
        onnx::node("Identity", &["a\0b"], &["y"]),
        onnx::input(b"a\0b", onnx::FLOAT, &[D::Fixed(1)]),
        onnx::output(b"y", onnx::FLOAT, &[D::Fixed(1)]),
    ]));
    let reason = assert_invalid_model(Engine::from_bytes(&model, EngineConfig::default()), "NUL name");
    assert!(reason.contains("NUL"), "{reason}");
}

#[test]
fn zero_element_shapes_get_one_answer_whatever_the_dim_order() {
    setup();
    let model = onnx::identity(onnx::FLOAT, &[D::Named("a"), D::Named("b"), D::Named("c")]);
    let engine = Engine::from_bytes(&model, EngineConfig::default()).unwrap();
    let run = |shape: &[i64]| engine.run(&[("x", TensorRef::new(shape, &[] as &[f32]))]);
    // Dims whose product overflows: refused in every order, before ONNX Runtime (which multiplies in order).
    for shape in [[1 << 32, 1 << 32, 0], [0, 1 << 32, 1 << 32], [1 << 32, 0, 1 << 32]] {
        match run(&shape) {
            Err(Error::InvalidInput { name, reason }) => {
                assert!(name == "x" && reason.contains("too large"), "{reason}")
            }
            other => panic!("{shape:?}: expected InvalidInput, got {other:?}"),
        }
    }
    // Zero elements with sizes that fit: an empty output, whatever the order.
    for shape in [[1 << 20, 1 << 20, 0], [0, 1 << 20, 1 << 20]] {
        let out = run(&shape).unwrap();
        assert_eq!((out[0].element_count(), out[0].shape.as_slice()), (0, shape.as_slice()));
    }
}

#[test]
fn a_byte_count_that_overflows_is_refused_before_onnx_runtime() {
    setup();
    let model = onnx::identity(onnx::FLOAT, &[D::Named("n")]);
    let engine = Engine::from_bytes(&model, EngineConfig::default()).unwrap();
    // 2^62 elements fit a usize; their 2^64 bytes do not (and wrapped to 0 before).
    let err = engine.run(&[("x", TensorRef::from_bytes(ElementType::F32, &[1 << 62], &[]))]).unwrap_err();
    match err {
        Error::InvalidInput { name, reason } => {
            assert_eq!(name, "x");
            assert!(reason.contains("too large") && !reason.contains("ONNX Runtime"), "{reason}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn an_unreadable_model_file_is_model_not_found() {
    setup();
    let dir = TempDir::new();
    let path = dir.write("model.onnx", &std::fs::read(common::model("matmul_dynamic")).unwrap());
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let result = as_unprivileged(move || Engine::from_file(&path, EngineConfig::default()).map(drop));
    assert!(matches!(&result, Err(Error::ModelNotFound { path }) if path.ends_with("model.onnx")), "{result:?}");
}

/// Runs `f` on a thread whose file-system identity is `nobody` when the tests run as root (as CI does), so file
/// permissions apply to it; `setfsuid` is per thread, and dropping it from 0 clears the thread's override capabilities.
fn as_unprivileged<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: plain syscalls changing only this thread's file-system uid/gid.
        unsafe {
            if libc::geteuid() == 0 {
                libc::setfsgid(65534);
                libc::setfsuid(65534);
            }
        }
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn a_huge_non_model_file_is_refused_before_it_is_hashed() {
    setup();
    let dir = TempDir::new();
    let path = dir.0.join("huge.onnx");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(5 << 30).unwrap(); // sparse: no disk used
    let cache = TempDir::new();
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    let reason = assert_invalid_model(Engine::from_file(&path, config), "5 GiB file");
    assert!(reason.contains("2 GiB"), "{reason}");
    assert!(!cache.0.join(".sources").exists(), "the file was hashed for the compile cache before being refused");
    // A small non-model is refused by the check too, before hashing.
    let junk = dir.write("junk.onnx", &[0u8; 4096]);
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    assert_invalid_model(Engine::from_file(&junk, config), "junk");
    assert!(!cache.0.join(".sources").exists());
}

#[test]
fn a_read_only_cache_dir_loads_without_the_cache() {
    setup();
    let dir = TempDir::new();
    // A path under a regular file can never be created, whoever runs the test (root ignores permission bits).
    let blocker = dir.write("not-a-dir", b"x");
    let config = EngineConfig::default().with_cache_dir(blocker.join("cache").display().to_string());
    let engine = Engine::from_file(common::model("matmul_dynamic"), config).expect("loads without the cache");
    assert_eq!(engine.compile_cache(), CacheOutcome::Unavailable);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let out = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
    // A directory without write permission, as the app's user sees it.
    let read_only = TempDir::new();
    std::fs::set_permissions(&read_only.0, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let config = EngineConfig::default().with_cache_dir(read_only.0.join("cache").display().to_string());
    let outcome =
        as_unprivileged(move || Engine::from_file(common::model("matmul_dynamic"), config).map(|e| e.compile_cache()));
    assert_eq!(outcome, Ok(CacheOutcome::Unavailable));
}

#[test]
fn a_pooling_window_larger_than_its_input_does_not_crash_onnx_runtime() {
    setup();
    // ONNX Runtime 1.31.1's NCHWc MaxPool and AveragePool (x86-64, O3) die with SIGFPE on an empty output: here a
    // 3x3 stride-2 window on a 1x1 input, as the zero-filled warmup (dynamic dims at 1) or a small image makes it.
    for op in ["MaxPool", "AveragePool"] {
        let model = onnx::model(&onnx::graph(&[
            onnx::node_with_ints(op, &["x"], &["y"], &[("kernel_shape", &[3, 3]), ("strides", &[2, 2])]),
            onnx::input(b"x", onnx::FLOAT, &[D::Fixed(1), D::Fixed(64), D::Named("h"), D::Named("w")]),
            onnx::output(b"y", onnx::FLOAT, &[]),
        ]));
        let engine = Engine::from_bytes(&model, EngineConfig::default()).unwrap();
        engine.warmup(1).unwrap();
        let x = vec![0f32; 64];
        let out = engine.run(&[("x", TensorRef::new(&[1, 64, 1, 1], &x))]).unwrap();
        assert_eq!(out[0].shape, [1, 64, 0, 0], "{op}");
        let x = vec![1f32; 64 * 9];
        let out = engine.run(&[("x", TensorRef::new(&[1, 64, 3, 3], &x))]).unwrap();
        assert_eq!((out[0].shape.as_slice(), out[0].to_vec::<f32>().unwrap()), (&[1, 64, 1, 1][..], vec![1f32; 64]));
    }
}
