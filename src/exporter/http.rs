//! The metrics endpoint: a small HTTP/1.x server (GET and HEAD only, one request per
//! connection) with `/metrics` (the Prometheus text format), `/healthz` (for liveness
//! and readiness probes) and `/` (a page of links). Requests are read with a size and a
//! time limit; anything else gets 404 or 405. Started by the daemon on `--metrics`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::body::BodyWriter;
use super::scrape::Scrapes;
use crate::director::Director;

/// The default address: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9280";
const MAX_REQUEST: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const INDEX: &str = "<html><head><title>uvs</title></head><body><h1>uvs</h1>\n\
<p><a href=\"/metrics\">/metrics</a>: Prometheus metrics (node_ipvs_* and uvs_*)</p>\n\
<p><a href=\"/healthz\">/healthz</a>: liveness</p>\n</body></html>\n";

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, director: Arc<Director>) {
    let scrapes = Scrapes::new(director);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, Arc::clone(&scrapes)));
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads a request head; None when it does not come whole in time.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.ends_with(b"\n\n") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 || head.len() + n > MAX_REQUEST {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()??;
    String::from_utf8(head).ok()
}

async fn answer(mut stream: TcpStream, scrapes: Arc<Scrapes>) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let text = |s: &str| {
        let mut w = BodyWriter::new();
        w.push(s.as_bytes());
        Arc::new(w.finish())
    };
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => match scrapes.body().await {
            Ok(body) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body),
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: no body for /metrics");
                (
                    "500 Internal Server Error",
                    "text/plain; charset=utf-8",
                    text("metrics unavailable\n"),
                )
            }
        },
        ("GET" | "HEAD", "/healthz") => ("200 OK", "text/plain; charset=utf-8", text("ok\n")),
        ("GET" | "HEAD", "/") => ("200 OK", "text/html; charset=utf-8", text(INDEX)),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            text("not found: try /metrics\n"),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            text("GET or HEAD only\n"),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    if method != "HEAD" {
        // The chunks as they are: no copy of the body.
        for chunk in body.chunks() {
            if stream.write_all(chunk).await.is_err() {
                return;
            }
        }
    }
    let _ = stream.shutdown().await;
}
