//! The metrics endpoint: a small HTTP/1.x server (GET and HEAD only, one request per
//! connection, `Connection: close`) with `/metrics` (the Prometheus text format),
//! `/healthz` (for liveness and readiness probes) and `/` (the status page, `page`:
//! only to a `Host` that `host` allows, else 421; 404 when `--status-page off`);
//! anything else gets 404 or 405. Started by the daemon on `--metrics`, on its control
//! thread.
//!
//! Nothing a client does can take the daemon down: connections are capped ([`Limits`];
//! at the cap a new one evicts an idle or slow one, see `conns`), the request head and
//! the response each have a deadline, a failing accept (no descriptors left) backs off,
//! and every `/metrics` client writes the same shared body (see `scrape`; the status
//! page is rendered and shared the same way, by a `scrape` of its own); a client
//! still reading a body two newer ones have replaced is reset, so slow readers hold at
//! most two bodies between them. Each reset is counted by reason (`drops`).

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Source;
use super::conns::{Registry, Slot};
use super::drops::{Drops, Reason};
use super::scrape::{Scrapes, Shared};

/// The default address: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9280";
/// The longest request head taken, in bytes.
const MAX_REQUEST: usize = 8192;
/// Slices handed to one vectored write.
const SLICES_PER_WRITE: usize = 64;
/// The status page's own headers: nothing but the page itself may load or run (its
/// style is inline; it has no script), the browser takes it as HTML only, keeps no copy,
/// and sends no referrer from its links.
const PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'none'; \
style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n";

/// What the endpoint allows each client, and all of them together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once (at least 1; 0 counts as 1). At the cap, a new
    /// connection evicts the oldest one that has not sent a whole request head, else the
    /// one whose response has been in progress longest, so the endpoint holds at most
    /// this many descriptors plus one (and its listener).
    pub max_connections: usize,
    /// How long a client may take to send its whole request head; then it is dropped.
    pub head_timeout: Duration,
    /// How long writing one whole response may take, counted from the moment its body
    /// is ready; a client that reads slower is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    /// 64 connections, 5 s for the request head, 30 s for the response.
    fn default() -> Limits {
        Limits {
            max_connections: crate::descriptors::METRICS_CONNECTIONS,
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `listener` within `limits` until the task is aborted; `/` is the status page
/// when `status_page`, else 404.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn Source>,
    limits: Limits,
    status_page: bool,
) {
    let cap = limits.max_connections.max(1);
    let registry = Registry::new();
    let drops = Arc::new(Drops::default());
    // The page's uptime counts from here: the daemon starts its endpoint as it starts.
    let started_at = crate::clock::unix_seconds();
    let pages = Scrapes::rendered_by(
        Arc::clone(&source),
        Arc::clone(&drops),
        Box::new(move |source, snapshot, _| super::page::render(source, snapshot, started_at)),
    );
    let scrapes = Scrapes::new(source, Arc::clone(&drops));
    let warned = crate::rate_limit::RateLimit::new();
    let mut backoff = Backoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                stream
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) or memory, or a connection that
                // died in the backlog: retrying at once would spin.
                let pause = backoff.next();
                warned.warn(|suppressed| {
                    tracing::warn!(error = %e, pause = ?pause, suppressed, "metrics endpoint: accept failed");
                });
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        // This connection is the one over the cap until a victim has gone.
        while registry.len() >= cap {
            registry.evict_one();
            // Victims go at their task's next turn; the timeout only bounds the wait
            // should every open one already have been told.
            let _ = tokio::time::timeout(Duration::from_secs(1), registry.wait_below(cap)).await;
        }
        let slot = registry.open();
        let endpoint = Endpoint {
            scrapes: Arc::clone(&scrapes),
            pages: Arc::clone(&pages),
            drops: Arc::clone(&drops),
            limits,
            status_page,
        };
        tokio::spawn(answer(stream, slot, endpoint));
    }
}

/// Pauses between failed accepts: 20 ms doubling to 1 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ms = 10u64 << self.failures.min(7);
        Duration::from_millis(ms.min(1000))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// What every connection of one endpoint shares.
struct Endpoint {
    scrapes: Arc<Scrapes>,
    /// The status page's bodies.
    pages: Arc<Scrapes>,
    drops: Arc<Drops>,
    limits: Limits,
    /// Whether `/` is the status page (`--status-page`).
    status_page: bool,
}

/// How one connection ended.
enum Outcome {
    /// Answered in full, or the client went away.
    Done,
    /// Cut off by the endpoint (evicted, past a deadline, no request, a stale body).
    Dropped(Reason),
}

async fn answer(mut stream: TcpStream, slot: Slot, endpoint: Endpoint) {
    let outcome = tokio::select! {
        () = slot.evicted() => Outcome::Dropped(Reason::Evicted),
        outcome = exchange(&mut stream, &slot, &endpoint) => outcome,
    };
    match outcome {
        Outcome::Done => {
            let _ = stream.shutdown().await;
        }
        // A reset rather than a close: the kernel drops what is still queued for a
        // client that does not read, instead of keeping it for minutes.
        Outcome::Dropped(reason) => {
            endpoint.drops.count(reason);
            let _ = stream.set_zero_linger();
        }
    }
    // The descriptor is closed before the slot makes room for another.
    drop(stream);
    drop(slot);
}

/// What a request is answered with.
enum Payload<'e> {
    Text(&'static str),
    /// A body shared by `from`'s clients (`/metrics`, the status page).
    Rendered(Shared, &'e Scrapes),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Text(text) => text.len(),
            Payload::Rendered(shared, _) => shared.body.len(),
        }
    }
}

async fn exchange(stream: &mut TcpStream, slot: &Slot, endpoint: &Endpoint) -> Outcome {
    let limits = &endpoint.limits;
    let head = match tokio::time::timeout(limits.head_timeout, read_head(stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::Closed)) => return Outcome::Done,
        Ok(Err(HeadError::Malformed)) => return Outcome::Dropped(Reason::BadRequest),
        Err(_) => return Outcome::Dropped(Reason::HeadTimeout),
    };
    slot.responding();
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let text = "text/plain; charset=utf-8";
    let mut headers = "";
    let (status, content_type, payload) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => match endpoint.scrapes.body().await {
            Ok(shared) => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                Payload::Rendered(shared, &endpoint.scrapes),
            ),
            Err(e) => {
                // Every scrape would fail the same way: one line per interval.
                static NO_METRICS: crate::rate_limit::RateLimit =
                    crate::rate_limit::RateLimit::new();
                NO_METRICS.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "metrics endpoint: no body for /metrics");
                });
                (
                    "500 Internal Server Error",
                    text,
                    Payload::Text("metrics unavailable\n"),
                )
            }
        },
        ("GET" | "HEAD", "/healthz") => ("200 OK", text, Payload::Text("ok\n")),
        ("GET" | "HEAD", "/") if !endpoint.status_page => (
            "404 Not Found",
            text,
            Payload::Text("not found: the status page is off (--status-page); try /metrics\n"),
        ),
        ("GET" | "HEAD", "/") if !super::host::page_may_answer(&head) => (
            "421 Misdirected Request",
            text,
            Payload::Text(
                "the status page answers only to an address or localhost in Host \
                 (a guard against DNS rebinding): open it by address\n",
            ),
        ),
        ("GET" | "HEAD", "/") => match endpoint.pages.body().await {
            Ok(shared) => {
                headers = PAGE_HEADERS;
                (
                    "200 OK",
                    "text/html; charset=utf-8",
                    Payload::Rendered(shared, &endpoint.pages),
                )
            }
            Err(e) => {
                static NO_PAGE: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();
                NO_PAGE.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "metrics endpoint: no status page");
                });
                (
                    "500 Internal Server Error",
                    text,
                    Payload::Text("status page unavailable\n"),
                )
            }
        },
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            text,
            Payload::Text("not found: try /metrics\n"),
        ),
        _ => (
            "405 Method Not Allowed",
            text,
            Payload::Text("GET or HEAD only\n"),
        ),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let response_head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{allow}{headers}\r\n",
        payload.len()
    );
    let mut parts: Vec<&[u8]> = vec![response_head.as_bytes()];
    if method != "HEAD" {
        match &payload {
            Payload::Text(text) => parts.push(text.as_bytes()),
            // The shared chunks themselves: no copy per client.
            Payload::Rendered(shared, _) => {
                parts.extend(shared.body.chunks().iter().map(Vec::as_slice));
            }
        }
    }
    let write = tokio::time::timeout(limits.write_timeout, write_parts(stream, &parts));
    let written = match &payload {
        // A reader still on a body two newer ones replaced goes, so that its body can:
        // otherwise slow readers spaced out in time would each hold one until their
        // deadline. (HEAD too: its body is held until the head is written.)
        Payload::Rendered(shared, from) => tokio::select! {
            () = from.stale(shared.generation) => {
                return Outcome::Dropped(Reason::StaleBody);
            }
            written = write => written,
        },
        Payload::Text(_) => write.await,
    };
    match written {
        Ok(Ok(())) => Outcome::Done,
        // The client went away: nothing left to send.
        Ok(Err(_)) => Outcome::Done,
        Err(_) => Outcome::Dropped(Reason::WriteTimeout),
    }
}

/// Why no request head was read.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    /// The client closed, or its connection failed, before a whole head came.
    #[error("the client went away")]
    Closed,
    /// More than a head may be ([`MAX_REQUEST`]), or not text.
    #[error("not a request head")]
    Malformed,
}

/// Reads a request head.
async fn read_head(stream: &mut TcpStream) -> Result<String, HeadError> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        let n = stream.read(&mut buf).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        if head.len() + n > MAX_REQUEST {
            return Err(HeadError::Malformed);
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).map_err(|_| HeadError::Malformed)
}

/// Writes `parts` in order, several per system call, without copying them.
async fn write_parts(stream: &mut TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    // The next byte to write: parts[index][offset].
    let (mut index, mut offset) = (0, 0);
    while index < parts.len() {
        let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
        let mut count = 0;
        for (i, part) in parts[index..].iter().take(SLICES_PER_WRITE).enumerate() {
            let part = if i == 0 { &part[offset..] } else { part };
            slices[count] = IoSlice::new(part);
            count += 1;
        }
        let mut written = stream.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while index < parts.len() {
            let left = parts[index].len() - offset;
            if written < left {
                offset += written;
                break;
            }
            written -= left;
            index += 1;
            offset = 0;
        }
    }
    stream.flush().await
}
