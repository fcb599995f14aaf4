//! The model store against a loopback HTTP server (tiny_http) serving a real model: complete downloads, corrupted
//! bytes, dropped connections with and without range support, cancel, redirects, and entries refused before any
//! byte is fetched.
#![cfg(feature = "store")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::http::{Behaviour, serve_one as serve, sha256};

use openautoglm::store::{ModelEntry, ModelStore, Progress, StoreConfig};
use openautoglm::{CancelToken, Engine, EngineConfig, Error};

fn model() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(common::real_model("silero-vad")).expect("silero-vad (cargo xtask models fetch)"))
}

fn entry(data: &[u8], url: &str) -> ModelEntry {
    ModelEntry {
        name: "silero-vad.onnx".into(),
        version: "5".into(),
        urls: vec![url.into()],
        size: data.len() as u64,
        sha256: sha256(data),
    }
}

fn store(dir: &std::path::Path) -> ModelStore {
    let config = StoreConfig { backoff: Duration::from_millis(10), ..StoreConfig::new(dir) };
    ModelStore::new(config).unwrap()
}

/// The files under the model's version folder.
fn files(store_dir: &std::path::Path) -> Vec<String> {
    let dir = store_dir.join("silero-vad.onnx/5");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != ".lock").collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_complete_download_is_verified_installed_and_loads() {
    let data = model();
    let server = serve(data.clone(), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut seen = Vec::new();
    let installed =
        store.ensure(&entry(&data, &server.url("model.onnx")), &mut |p: Progress| seen.push(p), None).unwrap();
    let path = installed.path().to_owned();
    assert_eq!(std::fs::read(&path).unwrap(), *data);
    assert_eq!(seen.last(), Some(&Progress { bytes: data.len() as u64, total: data.len() as u64 }));
    assert_eq!(files(dir.path()), ["silero-vad.onnx"], "nothing left beside it");
    common::init();
    Engine::from_file(&path, EngineConfig::default()).unwrap();
    // Installed: the second call fetches nothing.
    let before = server.requests.load(Ordering::SeqCst);
    assert_eq!(store.ensure(&entry(&data, &server.url("model.onnx")), &mut |_| {}, None).unwrap().path(), path);
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
}

#[test]
fn corrupted_bytes_are_an_integrity_failure_and_nothing_is_installed() {
    let data = model();
    let server = serve(data.clone(), Behaviour { corrupt: true, ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let result = store(dir.path()).ensure(&entry(&data, &server.url("model.onnx")), &mut |_| {}, None);
    assert!(matches!(result, Err(Error::IntegrityFailed { .. })), "{result:?}");
    assert_eq!(files(dir.path()), Vec::<String>::new(), "no file under its name, no temporary file");
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let data = model();
    let half = data.len() / 2;
    let server = serve(data.clone(), Behaviour { drop_first_after: Some(half), ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path()).ensure(&entry(&data, &server.url("model.onnx")), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path.path()).unwrap(), *data);
    let served = server.served.load(Ordering::SeqCst);
    assert!(served < data.len() as u64 + (data.len() as u64) / 10, "resumed, not fetched again: {served} bytes");
}

#[test]
fn a_server_that_ignores_ranges_gets_a_fresh_start() {
    let data = model();
    let behaviour = Behaviour { drop_first_after: Some(data.len() / 3), ignore_ranges: true, ..Behaviour::default() };
    let server = serve(data.clone(), behaviour);
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path()).ensure(&entry(&data, &server.url("model.onnx")), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path.path()).unwrap(), *data);
    assert!(server.served.load(Ordering::SeqCst) >= data.len() as u64);
}

#[test]
fn cancel_stops_the_download_and_leaves_one_resumable_file() {
    let data = model();
    let server = serve(data.clone(), Behaviour { delay: Some(Duration::from_millis(20)), ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let cancel = CancelToken::new();
    let mut pieces = 0;
    let result = store.ensure(
        &entry(&data, &server.url("model.onnx")),
        &mut |_| {
            pieces += 1;
            if pieces == 4 {
                cancel.cancel();
            }
        },
        Some(&cancel),
    );
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let left = files(dir.path());
    assert!(left.len() == 1 && left[0].starts_with(".partial-"), "{left:?}");
    // The next ensure continues from it.
    let path = store.ensure(&entry(&data, &server.url("model.onnx")), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path.path()).unwrap(), *data);
    assert!(server.served.load(Ordering::SeqCst) < 2 * data.len() as u64);
}

#[test]
fn redirects_to_plain_http_elsewhere_are_refused() {
    let data = model();
    let server =
        serve(data.clone(), Behaviour { redirect_to: Some("http://example.com/model.onnx"), ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let moved = server.url("moved");
    let result = store(dir.path()).ensure(&entry(&data, &moved), &mut |_| {}, None);
    let Err(Error::DownloadFailed { reason, .. }) = result else { panic!("{result:?}") };
    assert!(reason.contains("refused redirect"), "{reason}");
    // A redirect on this machine is followed.
    let server = serve(data.clone(), Behaviour::default());
    let path = store(dir.path()).ensure(&entry(&data, &server.url("moved")), &mut |_| {}, None);
    assert_eq!(std::fs::read(path.unwrap().path()).unwrap(), *data);
}

#[test]
fn bad_entries_are_refused_before_any_byte_is_fetched() {
    let data = model();
    let server = serve(data.clone(), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(StoreConfig { max_model_bytes: 1 << 20, ..StoreConfig::new(dir.path()) }).unwrap();
    let good = entry(&data, &server.url("model.onnx"));
    for bad in [
        ModelEntry { size: data.len() as u64, ..good.clone() }, // over the 1 MB limit
        ModelEntry { name: "../escape.onnx".into(), ..good.clone() },
        ModelEntry { sha256: "00".into(), ..good.clone() },
    ] {
        let result = store.ensure(&bad, &mut |_| {}, None);
        assert!(matches!(result, Err(Error::InvalidConfig { .. })), "{result:?}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}
