//! A model as a manifest describes it, checked before any byte is fetched: a plain file name, a version, HTTPS URLs
//! (plain HTTP only to this machine, for tests), a size under the store's limit and a sha256 of 64 hex digits.

use serde::Deserialize;

use crate::error::{Error, Result};

/// One model of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelEntry {
    /// The file name it is stored under (`yolov8n.onnx`): no folders, no `..`.
    pub name: String,
    /// Its version: versions sit side by side, the newest installed one is used.
    pub version: String,
    /// Where to fetch it, tried in order.
    pub urls: Vec<String>,
    /// Its exact size in bytes.
    pub size: u64,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

impl ModelEntry {
    /// Refuses an entry the store must not act on, saying which field and why.
    pub fn check(&self, max_bytes: u64) -> Result<()> {
        self.check_file(max_bytes)?;
        let refuse =
            |reason: String| Err(Error::InvalidConfig { reason: format!("model entry `{}`: {reason}", self.name) });
        if self.urls.is_empty() {
            return refuse("no URL".into());
        }
        for url in &self.urls {
            allowed_url(url).or_else(|reason| refuse(format!("{url}: {reason}")))?;
        }
        Ok(())
    }

    /// The checks on what is stored: name, version, size and sha256.
    pub(crate) fn check_file(&self, max_bytes: u64) -> Result<()> {
        let refuse =
            |reason: String| Err(Error::InvalidConfig { reason: format!("model entry `{}`: {reason}", self.name) });
        if !is_plain_name(&self.name) {
            return refuse("the name must be a plain file name (letters, digits, `.`, `-`, `_`; no folders)".into());
        }
        if !is_plain_name(&self.version) {
            return refuse(format!("the version `{}` must be letters, digits, `.`, `-`, `_`", self.version));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse(format!("sha256 must be 64 hex digits, not {} characters", self.sha256.len()));
        }
        if self.size == 0 || self.size > max_bytes {
            return refuse(format!("size {} bytes is outside the store's limit (1..={max_bytes})", self.size));
        }
        Ok(())
    }
}

/// Letters, digits, `.`, `-`, `_`, not starting with `.`, at most 128 characters.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// HTTPS anywhere, plain HTTP to this machine only.
pub(crate) fn allowed_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("only https:// URLs are fetched".into());
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| &h[1..]).unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    if matches!(host, "127.0.0.1" | "localhost" | "::1") {
        Ok(())
    } else {
        Err("plain http:// is allowed to this machine only (127.0.0.1, localhost, ::1)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ModelEntry {
        ModelEntry {
            name: "model.onnx".into(),
            version: "1".into(),
            urls: vec!["https://example.com/model.onnx".into()],
            size: 10,
            sha256: "a".repeat(64),
        }
    }

    #[test]
    fn bad_entries_are_refused_before_any_fetch() {
        assert_eq!(entry().check(100), Ok(()));
        let cases: [fn(&mut ModelEntry); 12] = [
            |e| e.name = "../etc/passwd".into(),
            |e| e.name = "models/m.onnx".into(),
            |e| e.name = ".hidden".into(),
            |e| e.version = "1/2".into(),
            |e| e.sha256 = "abc".into(),
            |e| e.sha256 = "g".repeat(64),
            |e| e.size = 101,
            |e| e.size = 0,
            |e| e.urls = vec![],
            |e| e.urls = vec!["http://example.com/m".into()],
            |e| e.urls = vec!["http://127.0.0.1.evil.com/m".into()],
            |e| e.urls = vec!["ftp://example.com/m".into()],
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut e = entry();
            change(&mut e);
            assert!(matches!(e.check(100), Err(Error::InvalidConfig { .. })), "case {i}: {e:?}");
        }
        for loopback in ["http://127.0.0.1:8080/m", "http://localhost/m", "http://[::1]:9/m"] {
            assert_eq!(allowed_url(loopback), Ok(()), "{loopback}");
        }
    }
}
