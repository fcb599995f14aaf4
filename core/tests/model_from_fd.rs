//! A model inside a larger file the app holds open (an uncompressed APK asset, as AssetFileDescriptor gives it:
//! fd, offset, length) loads by mapping that region, and every bad descriptor or region is a typed error.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;

use openautoglm::{Engine, EngineConfig, Error, TensorRef};

/// The model between 4099 bytes of padding and a trailer, as in an archive (an odd offset: not page-aligned).
fn packed_file() -> (std::fs::File, u64, u64) {
    let model = std::fs::read(common::model("matmul_dynamic")).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&[0x5a; 4099]).unwrap();
    file.write_all(&model).unwrap();
    file.write_all(b"PK-trailer").unwrap();
    (file, 4099, model.len() as u64)
}

#[test]
fn a_model_at_an_offset_in_a_larger_file_runs_like_the_file_itself() {
    common::init();
    let (file, offset, length) = packed_file();
    let engine = Engine::from_fd(file.as_raw_fd(), offset, length, EngineConfig::default()).unwrap();
    let from_file = Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default()).unwrap();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let input = [("x", TensorRef::new(&[1, 4], &x))];
    assert_eq!(engine.run(&input).unwrap(), from_file.run(&input).unwrap());
    assert_eq!(engine.info(), from_file.info());
}

#[test]
fn bad_descriptors_and_regions_are_typed_errors() {
    common::init();
    let (file, offset, length) = packed_file();
    let fd = file.as_raw_fd();
    let cfg = EngineConfig::default;
    let not_found = |r: Result<Engine, Error>| matches!(r, Err(Error::ModelNotFound { .. }));
    let invalid = |r: Result<Engine, Error>| matches!(r, Err(Error::InvalidModel { .. }));
    assert!(not_found(Engine::from_fd(-1, offset, length, cfg())));
    assert!(not_found(Engine::from_fd(987_654, offset, length, cfg())), "a descriptor that is not open");
    let dir = std::fs::File::open(common::data()).unwrap();
    assert!(not_found(Engine::from_fd(dir.as_raw_fd(), 0, 10, cfg())), "a directory");
    assert!(invalid(Engine::from_fd(fd, offset, 0, cfg())), "an empty region");
    assert!(invalid(Engine::from_fd(fd, offset, length + 100, cfg())), "past the end");
    assert!(invalid(Engine::from_fd(fd, u64::MAX, 2, cfg())), "an offset that overflows");
    assert!(invalid(Engine::from_fd(fd, 0, length, cfg())), "the padding is not a model");
    assert!(invalid(Engine::from_fd(fd, offset, length - 10, cfg())), "a truncated model");
    // The descriptor is still the caller's and still works.
    assert!(Engine::from_fd(fd, offset, length, cfg()).is_ok());
}
