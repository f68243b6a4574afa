//! ldirectord's `service = http` negotiate check: an HTTP/1.0 request for `request`
//! (`/` without one) with `virtualhost` as Host (the server's address without one), the
//! answer's status within `status` (2xx without one) and its body matching `receive`.
//! No chunked answers: HTTP/1.0 servers do not send them. `https` speaks it over TLS.
//!
//! keepalived's HTTP_GET adds to it (keepalived/check/check_http.c): a `digest`, the
//! MD5 of the body (`http_process_response` hashes the body, up to its Content-Length
//! when it has one; `http_handle_response` compares it after the status and before the
//! regex); statuses given as several ranges (`status_code_handler`); and several
//! `url`s, asked one after another on connections of their own, the server up only
//! when every one passes (`epilog`: the check completes when the last URL has passed;
//! a failed URL fails it).

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::io::{Bind, MAX_ANSWER, read_answer};
use super::receive::{Receive, matches};
use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;

/// The statuses taken as healthy without `status`: keepalived's and ldirectord's 2xx.
const DEFAULT_STATUS: (u16, u16) = (200, 299);

/// HTTP requests and what their answers must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// GET or HEAD.
    method: String,
    /// The URLs asked for, in order; each must pass.
    pages: Vec<Page>,
    /// Where the check connects from.
    pub(super) bind: Bind,
    /// The bound of each URL's connection (the check's timeout).
    pub(super) each: std::time::Duration,
}

/// One URL and what its answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The path asked for, starting with `/`.
    path: String,
    /// The Host header; the server's address without one.
    pub(super) virtualhost: Option<String>,
    /// The statuses taken as healthy: inclusive ranges, any of which will do.
    status: Vec<(u16, u16)>,
    /// What the body must match.
    receive: Option<Receive>,
    /// The body's MD5, lower-case hex.
    digest: Option<String>,
}

impl Http {
    /// # Errors
    /// A `receive` that is not a regular expression.
    pub fn build(settings: &Check) -> Result<Http, BuildError> {
        let rooted = |path: &str| {
            if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            }
        };
        let status = || {
            settings
                .status
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_STATUS])
        };
        let pages = match &settings.urls {
            Some(urls) if !urls.is_empty() => urls
                .iter()
                .map(|u| {
                    Ok(Page {
                        path: rooted(&u.path),
                        virtualhost: u.virtualhost.clone().or(settings.virtualhost.clone()),
                        status: u.status.clone().unwrap_or_else(status),
                        receive: u
                            .receive
                            .as_deref()
                            .or(settings.receive.as_deref())
                            .map(Receive::new)
                            .transpose()?,
                        digest: u.digest.clone().or(settings.digest.clone()),
                    })
                })
                .collect::<Result<_, BuildError>>()?,
            _ => vec![Page {
                path: rooted(settings.request.as_deref().unwrap_or("/")),
                virtualhost: settings.virtualhost.clone(),
                status: status(),
                receive: Receive::of(settings)?,
                digest: settings.digest.clone(),
            }],
        };
        Ok(Http {
            method: settings.method.clone().unwrap_or_else(|| "GET".into()),
            pages,
            bind: Bind::of(settings),
            each: super::each_of(settings),
        })
    }

    /// The URLs, in the order they are asked for.
    pub(super) fn pages(&self) -> &[Page] {
        &self.pages
    }

    /// A failure of `page`, named by its path when there are several.
    pub(super) fn of_page(&self, page: &Page, failure: Failure) -> Failure {
        if self.pages.len() > 1 {
            Failure::At(format!("url {}", page.path), Box::new(failure))
        } else {
            failure
        }
    }
}

impl Probe for Http {
    async fn run(&self, at: &Endpoint) -> Outcome {
        for page in &self.pages {
            let result = super::each_bounded(self.each, async {
                let mut stream = self.bind.connect(at.dest).await?;
                self.exchange(at, page, &mut stream).await
            })
            .await;
            result.map_err(|f| self.of_page(page, f))?;
        }
        Ok(None)
    }

    fn connections(&self) -> u32 {
        u32::try_from(self.pages.len()).unwrap_or(u32::MAX)
    }
}

impl Http {
    /// The request for `page` and its answer over `stream`, plain or TLS.
    pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &Endpoint,
        page: &Page,
        stream: &mut S,
    ) -> Result<(), Failure> {
        // Without a virtual host, the address and port, IPv6 in brackets, as
        // keepalived's check_http.c `http_request_thread` writes it.
        let host = page
            .virtualhost
            .clone()
            .unwrap_or_else(|| at.dest.to_string());
        let request = format!(
            "{} {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: uvs-health-check\r\nConnection: close\r\n\r\n",
            self.method, page.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(super::io::io_failure)?;
        let mut digest = page.digest.as_ref().map(|_| BodyDigest::default());
        let answer = read_answer(stream, |bytes| {
            digest.as_mut().is_some_and(|d| d.feed(bytes))
        })
        .await?;
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| Failure::Garbled("no HTTP answer".into()))?;
        let head = &answer[..head_end];
        let status_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let status: u16 = std::str::from_utf8(status_line)
            .ok()
            .filter(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Garbled("no HTTP status line".into()))?;
        if !page
            .status
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
        {
            return Err(Failure::Status(status));
        }
        let body = &answer[head_end + 4..];
        if let (Some(want), Some(digest)) = (&page.digest, digest) {
            let got = digest.hex();
            if &got != want {
                return Err(Failure::Digest {
                    got,
                    want: want.clone(),
                });
            }
        }
        matches(page.receive.as_ref(), body)
    }
}

/// The MD5 of an answer's body, taken as the answer streams in, whatever its length, as
/// keepalived's check_http.c takes it (`http_process_stream`): the body starts after
/// the head and is cut at the head's Content-Length, if it has one. Holds the head
/// only, at most `MAX_ANSWER` bytes of it.
#[derive(Default)]
struct BodyDigest {
    /// The head so far; None once it has ended.
    head: Option<Vec<u8>>,
    /// Body bytes still to hash: the Content-Length, or all there are.
    left: Option<usize>,
    md5: md5::Md5,
    started: bool,
}

impl BodyDigest {
    /// Takes the next bytes of the answer; whether more of the body is wanted.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        use md5::Digest;
        let mut bytes = bytes;
        if !self.started {
            self.started = true;
            self.head = Some(Vec::new());
        }
        if let Some(head) = &mut self.head {
            let before = head.len();
            head.extend_from_slice(bytes);
            let from = before.saturating_sub(3);
            match head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                Some(at) => {
                    let end = from + at;
                    self.left = content_length(&head[..end]);
                    bytes = &bytes[end + 4 - before..];
                    self.head = None;
                }
                None => {
                    // A head this long is no HTTP answer: nothing more to read for it.
                    return head.len() < MAX_ANSWER;
                }
            }
        }
        let n = bytes.len().min(self.left.unwrap_or(usize::MAX));
        self.md5.update(&bytes[..n]);
        if let Some(left) = &mut self.left {
            *left -= n;
            return *left > 0;
        }
        true
    }

    fn hex(self) -> String {
        use md5::Digest;
        hex(&self.md5.finalize())
    }
}

/// `bytes` in lower-case hex (`%2.2x` each).
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The Content-Length of an answer's `head`, if it has one (keepalived's
/// `extract_content_length`: the body hashed is cut there).
fn content_length(head: &[u8]) -> Option<usize> {
    std::str::from_utf8(head)
        .ok()?
        .lines()
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::super::receive::COMPILED;
    use tokio::io::AsyncReadExt;

    use super::super::testing::{build_and_probe, built_from_everything, endpoint, negotiate};
    use super::super::{build, probe};
    use super::*;
    use crate::config::NegotiateService;
    use crate::table::Protocol;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            built_from_everything(NegotiateService::Http, Http::build),
            Http {
                method: "HEAD".into(),
                pages: vec![Page {
                    path: "/health".into(),
                    virtualhost: Some("www.test".into()),
                    status: vec![(200, 399)],
                    receive: Some(Receive::new("^ok").unwrap()),
                    digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
                }],
                bind: super::super::testing::everything_bind(),
                each: std::time::Duration::from_secs(2),
            }
        );
    }

    /// A request's bytes up to its blank line (at most 8 KiB), or what came before the
    /// client closed.
    async fn read_request(s: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        request
    }

    /// An HTTP server that reads each of its first `clients` requests to its end, then
    /// answers `answer` and closes.
    async fn http_server(answer: &'static [u8], clients: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..clients {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                read_request(&mut s).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn receive_is_compiled_when_built_and_never_by_a_probe() {
        let server = http_server(b"HTTP/1.0 200 OK\r\n\r\nok then", 3).await;
        let settings = Check {
            receive: Some("^ok".into()),
            ..negotiate(NegotiateService::Http)
        };
        let before = COMPILED.with(|n| n.get());
        let check = build(&settings, None).unwrap();
        assert_eq!(COMPILED.with(|n| n.get()), before + 1, "compiled by build");
        let at = endpoint(server, Protocol::Tcp);
        for _ in 0..3 {
            assert_eq!(
                probe(&*check, &at, std::time::Duration::from_secs(5)).await,
                Ok(None)
            );
        }
        assert_eq!(
            COMPILED.with(|n| n.get()),
            before + 1,
            "three probes compiled nothing"
        );
    }

    /// An HTTP server that answers each of its first `clients` requests with the answer
    /// of the page whose path the request line names, 404 for another.
    async fn pages_server(
        pages: &'static [(&'static str, &'static [u8])],
        clients: usize,
    ) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..clients {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let request = read_request(&mut s).await;
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("");
                let answer = pages
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or(&b"HTTP/1.0 404 Not Found\r\n\r\n"[..], |(_, a)| a);
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    /// The Host line an http check sends to a server listening on `bind`.
    async fn host_line(bind: &str) -> (std::net::SocketAddr, String) {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let request = read_request(&mut s).await;
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
        });
        assert_eq!(
            build_and_probe(addr, Protocol::Tcp, &negotiate(NegotiateService::Http)).await,
            Ok(None)
        );
        let request = rx.await.unwrap();
        let host = request
            .lines()
            .find(|l| l.starts_with("Host: "))
            .unwrap_or("");
        (addr, host.to_string())
    }

    #[tokio::test]
    async fn without_a_virtual_host_the_host_is_the_address_and_port() {
        let (v4, host) = host_line("127.0.0.1:0").await;
        assert_eq!(host, format!("Host: 127.0.0.1:{}", v4.port()));
        let (v6, host) = host_line("[::1]:0").await;
        assert_eq!(
            host,
            format!("Host: [::1]:{}", v6.port()),
            "brackets, RFC 2732"
        );
    }

    fn http(settings: Check) -> Check {
        settings.or(&negotiate(NegotiateService::Http))
    }

    /// The MD5 of `bytes` in lower-case hex, as keepalived's genhash prints it
    /// (check_http.c's `format_digest`: `%2.2x` per byte).
    fn md5_hex(bytes: &[u8]) -> String {
        use md5::Digest;
        super::hex(&md5::Md5::digest(bytes))
    }

    #[test]
    fn md5_is_printed_as_genhash_prints_it() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"healthy\n"), "3b1fb749c971d7a2c6a517b37f735df2");
    }

    #[tokio::test]
    async fn each_url_has_the_whole_timeout_to_itself() {
        // Two URLs answered 0.6 s after asking, with a timeout of 1 s: keepalived gives
        // each connection its connect_timeout; the two together take more than one.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..2 {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await;
            }
        });
        let url = |path: &str| crate::config::Url {
            path: path.into(),
            ..Default::default()
        };
        let settings = http(Check {
            urls: Some(vec![url("/a"), url("/b")]),
            timeout: Some(std::time::Duration::from_secs(1)),
            ..Check::default()
        });
        let check = build(&settings, None).unwrap();
        assert_eq!(check.connections(), 2);
        let at = endpoint(addr, Protocol::Tcp);
        let each = std::time::Duration::from_secs(1);
        assert_eq!(probe(&*check, &at, each).await, Ok(None));
    }

    #[test]
    fn a_body_digest_is_taken_across_chunks_whatever_its_length() {
        let body: Vec<u8> = (0..3 * MAX_ANSWER as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let want = md5_hex(&body);
        for head in [
            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()),
            "HTTP/1.0 200 OK\r\n\r\n".to_string(),
        ] {
            let mut answer = head.into_bytes();
            answer.extend_from_slice(&body);
            answer.extend_from_slice(b"after Content-Length, not hashed");
            // Odd chunks, the head's end split between two of them.
            for chunk in [1, 3, 7, 16384] {
                let mut digest = BodyDigest::default();
                let mut more = true;
                for piece in answer.chunks(chunk) {
                    if !more {
                        break;
                    }
                    more = digest.feed(piece);
                }
                let with_length = !more;
                let got = digest.hex();
                if with_length {
                    assert_eq!(got, want, "cut at Content-Length, chunks of {chunk}");
                } else {
                    let mut all = body.clone();
                    all.extend_from_slice(b"after Content-Length, not hashed");
                    assert_eq!(got, md5_hex(&all), "to the end, chunks of {chunk}");
                }
            }
        }
    }

    #[tokio::test]
    async fn the_digest_of_a_body_past_what_is_kept_is_of_all_of_it() {
        // 2 MiB: the check keeps 1 MiB of an answer, and hashed only that before.
        let body: Vec<u8> = (0..2 * MAX_ANSWER as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        let digest = md5_hex(&body);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        });
        let check = http(Check {
            digest: Some(digest),
            ..Check::default()
        });
        assert_eq!(build_and_probe(addr, Protocol::Tcp, &check).await, Ok(None));
    }

    #[tokio::test]
    async fn a_digest_is_of_the_body_up_to_its_content_length() {
        let good = pages_server(
            &[(
                "/",
                b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\ntrailing junk",
            )],
            1,
        )
        .await;
        let check = http(Check {
            digest: Some("3b1fb749c971d7a2c6a517b37f735df2".into()),
            ..Check::default()
        });
        assert_eq!(build_and_probe(good, Protocol::Tcp, &check).await, Ok(None));
        let bad = pages_server(&[("/", b"HTTP/1.0 200 OK\r\n\r\nbroken\n")], 1).await;
        let failure = build_and_probe(bad, Protocol::Tcp, &check)
            .await
            .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "MD5 digest 7657a3a3c58088d06aa33ab174622ef4 of the body, not the expected 3b1fb749c971d7a2c6a517b37f735df2"
        );
    }

    #[tokio::test]
    async fn any_of_several_status_ranges_will_do() {
        let check = http(Check {
            status: Some(vec![(200, 200), (301, 302)]),
            ..Check::default()
        });
        for (answer, expected) in [
            (&b"HTTP/1.0 302 Found\r\n\r\n"[..], Ok(None)),
            (&b"HTTP/1.0 200 OK\r\n\r\n"[..], Ok(None)),
            (&b"HTTP/1.0 301 Moved\r\n\r\n"[..], Ok(None)),
            (
                &b"HTTP/1.0 204 No Content\r\n\r\n"[..],
                Err(Failure::Status(204)),
            ),
            (
                &b"HTTP/1.0 303 See Other\r\n\r\n"[..],
                Err(Failure::Status(303)),
            ),
        ] {
            let answer: &'static [u8] = answer;
            let pages: &'static [(&str, &[u8])] = Box::leak(Box::new([("/", answer)]));
            let server = pages_server(pages, 1).await;
            assert_eq!(
                build_and_probe(server, Protocol::Tcp, &check).await,
                expected,
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[tokio::test]
    async fn every_url_must_pass_and_a_failure_names_its_url() {
        const PAGES: &[(&str, &[u8])] = &[
            ("/a", b"HTTP/1.0 200 OK\r\n\r\nhealthy\n"),
            ("/b", b"HTTP/1.0 200 OK\r\n\r\nok\n"),
        ];
        let url = |path: &str, digest: Option<&str>| crate::config::Url {
            path: path.into(),
            digest: digest.map(str::to_string),
            ..crate::config::Url::default()
        };
        let both = http(Check {
            urls: Some(vec![
                url("/a", Some("3b1fb749c971d7a2c6a517b37f735df2")),
                crate::config::Url {
                    receive: Some("^ok".into()),
                    ..url("/b", None)
                },
            ]),
            ..Check::default()
        });
        let server = pages_server(PAGES, 2).await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &both).await,
            Ok(None)
        );
        let third = http(Check {
            urls: Some(vec![url("/a", None), url("/b", None), url("/c", None)]),
            ..Check::default()
        });
        let server = pages_server(PAGES, 3).await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &third)
                .await
                .unwrap_err()
                .to_string(),
            "url /c: wrong status 404"
        );
    }
}
