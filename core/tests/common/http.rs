//! A loopback HTTP server (tiny_http) for the model store's tests: serves files by path, honours range requests, and
//! misbehaves on demand (corrupt bytes, dropped connections, ignored ranges, slow bodies, redirects).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How the server misbehaves.
#[derive(Clone, Copy, Default)]
pub struct Behaviour {
    /// Flip one byte of every body.
    pub corrupt: bool,
    /// Drop the connection after this many bytes of the first response.
    pub drop_first_after: Option<usize>,
    /// Answer every range request with the whole file (200).
    pub ignore_ranges: bool,
    /// Sleep this long between 64 KB pieces.
    pub delay: Option<Duration>,
    /// Redirect `/moved` here (a URL).
    pub redirect_to: Option<&'static str>,
}

pub struct Server {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    pub requests: Arc<AtomicUsize>,
    /// Body bytes sent, over all requests.
    pub served: Arc<AtomicU64>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

/// Serves `files` (path without the leading `/` → bytes) until the test process ends.
pub fn serve(files: HashMap<String, Arc<Vec<u8>>>, behaviour: Behaviour) -> Server {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
    let base = format!("http://127.0.0.1:{}", server.server_addr().to_ip().expect("ip").port());
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
            let Some(data) = files.get(request.url().trim_start_matches('/')).cloned() else {
                let _ = request.respond(tiny_http::Response::empty(404));
                continue;
            };
            let from = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .and_then(|h| h.value.as_str().strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok())
                .filter(|&from| !behaviour.ignore_ranges && from < data.len())
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
            let reader = Served { body, at: 0, limit, delay: behaviour.delay, served: bytes.clone() };
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
    Server { base, requests, served }
}

/// Serves one model at `/model.onnx`.
pub fn serve_one(data: Arc<Vec<u8>>, behaviour: Behaviour) -> Server {
    serve(HashMap::from([("model.onnx".to_owned(), data)]), behaviour)
}

/// A body that stops with an error after `limit` bytes (a dropped connection) and counts what it gave.
struct Served {
    body: Vec<u8>,
    at: usize,
    limit: usize,
    delay: Option<Duration>,
    served: Arc<AtomicU64>,
}

impl Read for Served {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.limit {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped by the test"));
        }
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        let n = out.len().min(self.body.len() - self.at).min(self.limit - self.at).min(64 << 10);
        out[..n].copy_from_slice(&self.body[self.at..self.at + n]);
        self.at += n;
        self.served.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
