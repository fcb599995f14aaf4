//! The model store against a loopback HTTP server (tiny_http) serving a real model: complete downloads, corrupted
//! bytes, dropped connections with and without range support, cancel, redirects, and entries refused before any
//! byte is fetched.
#![cfg(feature = "store")]

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use openautoglm::store::{ModelEntry, ModelStore, Progress, StoreConfig};
use openautoglm::{CancelToken, Engine, EngineConfig, Error};

/// How the server misbehaves.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Flip one byte of the body.
    corrupt: bool,
    /// Drop the connection after this many bytes of the first response.
    drop_first_after: Option<usize>,
    /// Answer every range request with the whole file (200).
    ignore_ranges: bool,
    /// Sleep between 64 KB pieces.
    slow: bool,
    /// Redirect `/moved` here (a URL).
    redirect_to: Option<&'static str>,
}

struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
    served: Arc<AtomicU64>,
}

fn serve(data: Arc<Vec<u8>>, behaviour: Behaviour) -> Server {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://127.0.0.1:{}/model.onnx", server.server_addr().to_ip().expect("ip").port());
    let requests = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let (count, bytes) = (requests.clone(), served.clone());
    let dropped = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            count.fetch_add(1, Ordering::SeqCst);
            if request.url() == "/moved" {
                let to = behaviour.redirect_to.unwrap_or("/model.onnx");
                let header = tiny_http::Header::from_bytes("Location", to).unwrap();
                let _ = request.respond(tiny_http::Response::empty(302).with_header(header));
                continue;
            }
            let from = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .and_then(|h| h.value.as_str().strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok())
                .filter(|_| !behaviour.ignore_ranges)
                .unwrap_or(0);
            let mut body = data[from..].to_vec();
            if behaviour.corrupt {
                let middle = body.len() / 2;
                body[middle] ^= 0xff;
            }
            let length = body.len();
            let limit = match behaviour.drop_first_after {
                Some(n) if !dropped.swap(true, Ordering::SeqCst) => n,
                _ => usize::MAX,
            };
            let reader = Served { body, at: 0, limit, slow: behaviour.slow, served: bytes.clone() };
            let mut headers = vec![tiny_http::Header::from_bytes("Accept-Ranges", "bytes").unwrap()];
            let status = if from > 0 {
                let range = format!("bytes {from}-{}/{}", data.len() - 1, data.len());
                headers.push(tiny_http::Header::from_bytes("Content-Range", range).unwrap());
                206
            } else {
                200
            };
            let _ = request.respond(tiny_http::Response::new(status.into(), headers, reader, Some(length), None));
        }
    });
    Server { url, requests, served }
}

/// A body that stops with an error after `limit` bytes (a dropped connection) and counts what it gave.
struct Served {
    body: Vec<u8>,
    at: usize,
    limit: usize,
    slow: bool,
    served: Arc<AtomicU64>,
}

impl Read for Served {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.limit {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped by the test"));
        }
        if self.slow {
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = out.len().min(self.body.len() - self.at).min(self.limit - self.at).min(64 << 10);
        out[..n].copy_from_slice(&self.body[self.at..self.at + n]);
        self.at += n;
        self.served.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn model() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(common::real_model("silero-vad")).expect("silero-vad (cargo xtask models fetch)"))
}

fn sha256(bytes: &[u8]) -> String {
    // The store's own hasher is not public; sha2 is the same crate it uses.
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
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
    let path = store.ensure(&entry(&data, &server.url), &mut |p: Progress| seen.push(p), None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), *data);
    assert_eq!(seen.last(), Some(&Progress { bytes: data.len() as u64, total: data.len() as u64 }));
    assert_eq!(files(dir.path()), ["silero-vad.onnx"], "nothing left beside it");
    common::init();
    Engine::from_file(&path, EngineConfig::default()).unwrap();
    // Installed: the second call fetches nothing.
    let before = server.requests.load(Ordering::SeqCst);
    assert_eq!(store.ensure(&entry(&data, &server.url), &mut |_| {}, None).unwrap(), path);
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
}

#[test]
fn corrupted_bytes_are_an_integrity_failure_and_nothing_is_installed() {
    let data = model();
    let server = serve(data.clone(), Behaviour { corrupt: true, ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let result = store(dir.path()).ensure(&entry(&data, &server.url), &mut |_| {}, None);
    assert!(matches!(result, Err(Error::IntegrityFailed { .. })), "{result:?}");
    assert_eq!(files(dir.path()), Vec::<String>::new(), "no file under its name, no temporary file");
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let data = model();
    let half = data.len() / 2;
    let server = serve(data.clone(), Behaviour { drop_first_after: Some(half), ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path()).ensure(&entry(&data, &server.url), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *data);
    let served = server.served.load(Ordering::SeqCst);
    assert!(served < data.len() as u64 + (data.len() as u64) / 10, "resumed, not fetched again: {served} bytes");
}

#[test]
fn a_server_that_ignores_ranges_gets_a_fresh_start() {
    let data = model();
    let behaviour = Behaviour { drop_first_after: Some(data.len() / 3), ignore_ranges: true, ..Behaviour::default() };
    let server = serve(data.clone(), behaviour);
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path()).ensure(&entry(&data, &server.url), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *data);
    assert!(server.served.load(Ordering::SeqCst) >= data.len() as u64);
}

#[test]
fn cancel_stops_the_download_and_leaves_one_resumable_file() {
    let data = model();
    let server = serve(data.clone(), Behaviour { slow: true, ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let cancel = CancelToken::new();
    let mut pieces = 0;
    let result = store.ensure(
        &entry(&data, &server.url),
        &mut |_| {
            pieces += 1;
            if pieces == 4 {
                cancel.cancel();
            }
        },
        Some(&cancel),
    );
    assert_eq!(result, Err(Error::Cancelled));
    let left = files(dir.path());
    assert!(left.len() == 1 && left[0].starts_with(".partial-"), "{left:?}");
    // The next ensure continues from it.
    let path = store.ensure(&entry(&data, &server.url), &mut |_| {}, None).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *data);
    assert!(server.served.load(Ordering::SeqCst) < 2 * data.len() as u64);
}

#[test]
fn redirects_to_plain_http_elsewhere_are_refused() {
    let data = model();
    let server =
        serve(data.clone(), Behaviour { redirect_to: Some("http://example.com/model.onnx"), ..Behaviour::default() });
    let dir = tempfile::tempdir().unwrap();
    let moved = server.url.replace("/model.onnx", "/moved");
    let result = store(dir.path()).ensure(&entry(&data, &moved), &mut |_| {}, None);
    let Err(Error::DownloadFailed { reason, .. }) = result else { panic!("{result:?}") };
    assert!(reason.contains("refused redirect"), "{reason}");
    // A redirect on this machine is followed.
    let server = serve(data.clone(), Behaviour::default());
    let path = store(dir.path()).ensure(&entry(&data, &server.url.replace("/model.onnx", "/moved")), &mut |_| {}, None);
    assert_eq!(std::fs::read(path.unwrap()).unwrap(), *data);
}

#[test]
fn bad_entries_are_refused_before_any_byte_is_fetched() {
    let data = model();
    let server = serve(data.clone(), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(StoreConfig { max_model_bytes: 1 << 20, ..StoreConfig::new(dir.path()) }).unwrap();
    let good = entry(&data, &server.url);
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
