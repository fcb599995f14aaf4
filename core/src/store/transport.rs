//! How the store fetches bytes: one GET from an offset. The HTTP(S) client (ureq with rustls) is one implementation;
//! an app's own stack (OkHttp, URLSession) can be another, so TLS need not live in this library.

use std::io::Read;
use std::time::Duration;

use super::entry::allowed_url;

/// What a GET returned.
pub struct Response {
    /// The body starts at the offset asked for (206 with a matching Content-Range); false means it starts at 0.
    pub resumed: bool,
    pub body: Box<dyn Read + Send>,
}

/// Fetches `url` from byte `from` on; an error says why in words (status, refused redirect, network).
pub trait Transport: Send + Sync {
    fn get(&self, url: &str, from: u64) -> std::result::Result<Response, String>;
}

/// HTTP(S) with ureq and rustls; redirects are followed only to URLs the store allows (HTTPS, or this machine).
pub struct Http {
    agent: ureq::Agent,
}

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 5;

impl Http {
    pub fn new() -> Http {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build();
        Http { agent: ureq::Agent::new_with_config(config) }
    }
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Transport for Http {
    fn get(&self, url: &str, from: u64) -> std::result::Result<Response, String> {
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&url);
            if from > 0 {
                request = request.header("Range", format!("bytes={from}-"));
            }
            let response = request.call().map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| format!("HTTP {status} without a Location"))?;
                let next = resolve(&url, location);
                allowed_url(&next).map_err(|reason| format!("refused redirect to {next}: {reason}"))?;
                url = next;
                continue;
            }
            let resumed = status == 206
                && response
                    .headers()
                    .get("content-range")
                    .and_then(|r| r.to_str().ok())
                    .is_some_and(|r| r.strip_prefix("bytes ").is_some_and(|r| r.starts_with(&format!("{from}-"))));
            if status != 200 && !resumed {
                return Err(format!("HTTP {status}"));
            }
            return Ok(Response { resumed, body: Box::new(response.into_body().into_reader()) });
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }
}

/// `location` against `base`: absolute URLs as they are, `/path` on the base's origin.
fn resolve(base: &str, location: &str) -> String {
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
