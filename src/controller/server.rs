//! A minimal HTTP endpoint for `/healthz`, `/readyz` (on `--healthz-port`) and `/metrics` (on
//! `--metrics-port`). The metrics registry is rendered by a caller-supplied function so this module
//! stays transport only. Readiness means "caches synced", on a standby as on the leader, so both
//! replicas sit behind the metrics Service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::warn;

/// Which paths a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serve {
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// Everything (when both ports are the same).
    All,
}

/// What the server answers with.
#[derive(Clone)]
pub struct Endpoints {
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    pub serve: Serve,
}

fn response(code: u16, reason: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Route one request line.
pub fn route(request_line: &str, ep: &Endpoints) -> String {
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let health = ep.serve != Serve::Metrics;
    let metrics = ep.serve != Serve::Health;
    match path {
        "/healthz" | "/livez" if health => response(200, "OK", "text/plain", "ok\n"),
        "/readyz" if health => {
            if ep.ready.load(Ordering::SeqCst) {
                response(200, "OK", "text/plain", "ok\n")
            } else {
                response(
                    503,
                    "Service Unavailable",
                    "text/plain",
                    "caches not synced\n",
                )
            }
        }
        "/metrics" if metrics => response(200, "OK", crate::metrics::CONTENT_TYPE, &(ep.metrics)()),
        _ => response(404, "Not Found", "text/plain", "not found\n"),
    }
}

/// Serve on `addr` until the task is dropped.
pub async fn serve(addr: std::net::SocketAddr, ep: Endpoints) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (mut sock, _) = listener.accept().await?;
        let ep = ep.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let req = String::from_utf8_lossy(&buf[..n]);
            let line = req.lines().next().unwrap_or("");
            let resp = route(line, &ep);
            if let Err(e) = sock.write_all(resp.as_bytes()).await {
                warn!("health endpoint write failed: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let mut ep = Endpoints {
            ready: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(|| "x 1\n".to_string()),
            serve: Serve::All,
        };
        assert!(route("GET /healthz HTTP/1.1", &ep).starts_with("HTTP/1.1 200"));
        assert!(route("GET /readyz HTTP/1.1", &ep).starts_with("HTTP/1.1 503"));
        ep.ready.store(true, Ordering::SeqCst);
        assert!(route("GET /readyz HTTP/1.1", &ep).starts_with("HTTP/1.1 200"));
        assert!(route("GET /metrics HTTP/1.1", &ep).ends_with("x 1\n"));
        assert!(route("GET /metrics HTTP/1.1", &ep).contains("text/plain; version=0.0.4"));
        assert!(route("GET /nope HTTP/1.1", &ep).starts_with("HTTP/1.1 404"));
        ep.serve = Serve::Health;
        assert!(route("GET /metrics HTTP/1.1", &ep).starts_with("HTTP/1.1 404"));
        assert!(route("GET /healthz HTTP/1.1", &ep).starts_with("HTTP/1.1 200"));
        ep.serve = Serve::Metrics;
        assert!(route("GET /metrics HTTP/1.1", &ep).starts_with("HTTP/1.1 200"));
        assert!(route("GET /readyz HTTP/1.1", &ep).starts_with("HTTP/1.1 404"));
    }
}
