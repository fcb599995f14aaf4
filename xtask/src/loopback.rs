//! A loopback HTTP server (tiny_http) serving files from folders and from memory, with range requests and one thread
//! per request: what the model store's Swift tests and `bench --suite delivery` download from. Paths under `slow/`
//! are served at a throttled pace (a pause per 64 KB piece), so a process can be stopped part-way through a file;
//! paths under `link/` at a fixed rate per response, as a network link delivers them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// Bytes per throttled piece.
const PIECE: usize = 64 << 10;

pub struct Loopback {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    served: Arc<AtomicU64>,
    memory: Memory,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

/// What the server serves from folders: URL prefixes mapped to folders (files held in memory are added with
/// [`Loopback::put`]).
#[derive(Default, Clone)]
pub struct Content {
    pub folders: Vec<(String, PathBuf)>,
    /// The pause per 64 KB piece under `slow/`.
    pub slow_piece: Duration,
    /// Bytes per second of each response under `link/`.
    pub link_rate: u64,
}

type Memory = Arc<RwLock<HashMap<String, Arc<Vec<u8>>>>>;

impl Loopback {
    pub fn start(content: Content) -> Result<Loopback> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow!("loopback server: {e}"))?);
        let port = server.server_addr().to_ip().ok_or_else(|| anyhow!("loopback server has no IP address"))?.port();
        let served = Arc::new(AtomicU64::new(0));
        let memory = Memory::default();
        let (listener, counter, content, files) = (server.clone(), served.clone(), Arc::new(content), memory.clone());
        let thread = std::thread::spawn(move || {
            for request in listener.incoming_requests() {
                let (counter, content, files) = (counter.clone(), content.clone(), files.clone());
                std::thread::spawn(move || respond(request, &content, &files, &counter));
            }
        });
        Ok(Loopback { base: format!("http://127.0.0.1:{port}"), served, memory, server, thread: Some(thread) })
    }

    /// Serves `bytes` at `path` from now on.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.memory.write().unwrap_or_else(|e| e.into_inner()).insert(path.to_owned(), Arc::new(bytes));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Body bytes sent so far, over every request.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(request: tiny_http::Request, content: &Content, memory: &Memory, served: &Arc<AtomicU64>) {
    let path = request.url().trim_start_matches('/').split('?').next().unwrap_or("").to_owned();
    let (path, pace) = if let Some(rest) = path.strip_prefix("slow/") {
        (rest.to_owned(), Pace::PerPiece(content.slow_piece))
    } else if let Some(rest) = path.strip_prefix("link/") {
        (rest.to_owned(), Pace::Rate(content.link_rate.max(1)))
    } else {
        (path, Pace::None)
    };
    let Some(body) = open(content, memory, &path) else {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    };
    let size = body.size;
    let from = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .and_then(|h| h.value.as_str().strip_prefix("bytes=")?.strip_suffix('-')?.parse::<u64>().ok())
        .filter(|&from| from < size)
        .unwrap_or(0);
    let mut headers = vec![tiny_http::Header::from_bytes("Accept-Ranges", "bytes").expect("a valid header")];
    let status = if from > 0 {
        let range = format!("bytes {from}-{}/{size}", size - 1);
        headers.push(tiny_http::Header::from_bytes("Content-Range", range).expect("a valid header"));
        206
    } else {
        200
    };
    let Ok(reader) = body.from(from) else {
        let _ = request.respond(tiny_http::Response::empty(500));
        return;
    };
    let reader =
        Counted { inner: reader, served: served.clone(), pace, since_pause: 0, sent: 0, start: Instant::now() };
    let length = (size - from) as usize;
    let _ = request.respond(tiny_http::Response::new(status.into(), headers, reader, Some(length), None));
}

struct Body {
    size: u64,
    source: Source,
}

enum Source {
    File(PathBuf),
    Memory(Arc<Vec<u8>>),
}

impl Body {
    fn from(self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(match self.source {
            Source::File(path) => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                Box::new(file)
            }
            Source::Memory(bytes) => {
                let mut cursor = std::io::Cursor::new(bytes.to_vec());
                cursor.set_position(offset);
                Box::new(cursor)
            }
        })
    }
}

fn open(content: &Content, memory: &Memory, path: &str) -> Option<Body> {
    if let Some(bytes) = memory.read().unwrap_or_else(|e| e.into_inner()).get(path) {
        return Some(Body { size: bytes.len() as u64, source: Source::Memory(bytes.clone()) });
    }
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    content.folders.iter().find_map(|(prefix, dir)| {
        let rest = path.strip_prefix(prefix.as_str())?.trim_start_matches('/');
        let file: PathBuf = Path::new(dir).join(rest);
        let meta = std::fs::metadata(&file).ok().filter(|m| m.is_file())?;
        Some(Body { size: meta.len(), source: Source::File(file) })
    })
}

#[derive(Clone, Copy)]
enum Pace {
    None,
    PerPiece(Duration),
    /// Bytes per second.
    Rate(u64),
}

/// A body that counts what it gives, paced as its path asks.
struct Counted {
    inner: Box<dyn Read + Send>,
    served: Arc<AtomicU64>,
    pace: Pace,
    since_pause: usize,
    sent: u64,
    start: Instant,
}

impl Read for Counted {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let limit = match self.pace {
            Pace::PerPiece(pause) => {
                if self.since_pause >= PIECE {
                    std::thread::sleep(pause);
                    self.since_pause = 0;
                }
                out.len().min(PIECE - self.since_pause)
            }
            Pace::Rate(rate) => {
                let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                    std::thread::sleep(wait);
                }
                out.len().min(PIECE)
            }
            Pace::None => out.len(),
        };
        let n = self.inner.read(&mut out[..limit])?;
        self.since_pause += n;
        self.sent += n as u64;
        self.served.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}
