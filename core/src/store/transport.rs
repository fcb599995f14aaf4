//! How the store fetches bytes. A [`Transport`] makes one plain GET (from an offset, no redirects followed); what to
//! make of the reply (redirects allowed only to URLs the store accepts, whether a range was honoured) is decided here,
//! once, for every transport: the HTTP(S) client built in (ureq with rustls, feature `store-http`) and an app's own
//! stack (OkHttp or `HttpURLConnection`, `URLSession`), which keeps TLS, proxies and certificate pinning the
//! platform's and out of this library.

use std::io::Read;

use super::entry::allowed_url;

/// What one GET returned.
pub struct Reply {
    pub status: u16,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    pub body: Box<dyn Read + Send>,
}

/// One GET of `url` (with `Range: bytes=FROM-` when `from` > 0), redirects not followed; an error says why in words.
pub trait Transport: Send + Sync {
    fn request(&self, url: &str, from: u64) -> std::result::Result<Reply, String>;
}

/// A body from byte `from` on, or from 0 when the server ignored the range.
pub(crate) struct Response {
    /// The body starts at the offset asked for (206 with a matching `Content-Range`); false means it starts at 0.
    pub resumed: bool,
    pub body: Box<dyn Read + Send>,
}

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// GET `url` from byte `from`, following redirects only to URLs the store allows (HTTPS, or this machine).
pub(crate) fn get(transport: &dyn Transport, url: &str, from: u64) -> std::result::Result<Response, String> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let reply = transport.request(&url, from)?;
        let status = reply.status;
        if (300..400).contains(&status) {
            let location = reply.location.ok_or_else(|| format!("HTTP {status} without a Location"))?;
            let next = resolve(&url, &location);
            allowed_url(&next).map_err(|reason| format!("refused redirect to {next}: {reason}"))?;
            url = next;
            continue;
        }
        let resumed = status == 206
            && reply
                .content_range
                .as_deref()
                .is_some_and(|r| r.strip_prefix("bytes ").is_some_and(|r| r.starts_with(&format!("{from}-"))));
        if status != 200 && !resumed {
            return Err(format!("HTTP {status}"));
        }
        return Ok(Response { resumed, body: reply.body });
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// The whole body of a small file (a manifest, a signature), refused past `limit` bytes.
pub(crate) fn get_small(transport: &dyn Transport, url: &str, limit: u64) -> std::result::Result<Vec<u8>, String> {
    allowed_url(url)?;
    let response = get(transport, url, 0)?;
    let mut bytes = Vec::new();
    response.body.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("connection lost: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than the {limit} bytes allowed"));
    }
    Ok(bytes)
}

/// HTTP(S) with ureq and rustls (webpki roots): ureq is small, blocking (the store runs on the caller's thread, which
/// the Kotlin and Swift layers put on their I/O pools) and keeps TLS in Rust with no OpenSSL to ship.
#[cfg(feature = "store-http")]
pub struct Http {
    agent: ureq::Agent,
}

#[cfg(feature = "store-http")]
impl Http {
    pub fn new() -> Http {
        use std::time::Duration;
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build();
        Http { agent: ureq::Agent::new_with_config(config) }
    }
}

#[cfg(feature = "store-http")]
impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

#[cfg(feature = "store-http")]
impl Transport for Http {
    fn request(&self, url: &str, from: u64) -> std::result::Result<Reply, String> {
        let mut request = self.agent.get(url);
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let response = request.call().map_err(|e| e.to_string())?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Reply {
            status: response.status().as_u16(),
            content_range: header("content-range"),
            location: header("location"),
            body: Box::new(response.into_body().into_reader()),
        })
    }
}

/// `location` against `base`: absolute URLs as they are, `/path` on the base's origin, others beside the base.
pub(crate) fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &base[..origin_end])
    } else {
        let dir_end = base.rfind('/').filter(|&i| i >= origin_end).map_or(origin_end, |i| i);
        format!("{}/{location}", &base[..dir_end])
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn redirects_resolve_against_the_url_they_came_from() {
        assert_eq!(resolve("https://a.com/x/y.onnx", "https://b.com/z"), "https://b.com/z");
        assert_eq!(resolve("https://a.com/x/y.onnx", "/z.onnx"), "https://a.com/z.onnx");
        assert_eq!(resolve("https://a.com/x/y.onnx", "z.onnx"), "https://a.com/x/z.onnx");
        assert_eq!(resolve("http://127.0.0.1:9", "z"), "http://127.0.0.1:9/z");
    }
}
