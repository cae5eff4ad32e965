//! The HTTP endpoint: `GET /metrics` (OpenMetrics text), `/healthz` (the process answers),
//! `/readyz` (200 once the daemon is ready, 503 before). HTTP/1.1 with hyper; one task per
//! connection; nothing here can stop the daemon.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{render, Source};

/// The content type of OpenMetrics text (what prometheus-client writes, `# EOF` included).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
pub struct BindError {
    /// The configured address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Binds `metrics.listen`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, source: Arc<dyn Source>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(answer(&req, source.as_ref())) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, source: &dyn Source) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(render(&source.snapshot()))));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if source.snapshot().ready => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz, /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::host::metrics::Snapshot;

    #[derive(Debug)]
    struct Fixed(bool);

    impl Source for Fixed {
        fn snapshot(&self) -> Snapshot {
            Snapshot {
                api_requests: 42,
                ready: self.0,
                ..Snapshot::default()
            }
        }
    }

    async fn get(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        for ready in [true, false] {
            let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let task = tokio::spawn(serve(listener, Arc::new(Fixed(ready))));
            let (head, body) = get(addr, "GET", "/metrics").await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_lowercase()
                    .contains(&format!("content-type: {CONTENT_TYPE}")),
                "{head}"
            );
            assert!(body.contains("ferrolb_k8s_requests_total 42\n"), "{body}");
            let (head, _) = get(addr, "GET", "/healthz").await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let (head, _) = get(addr, "GET", "/readyz").await;
            let want = if ready {
                "HTTP/1.1 200"
            } else {
                "HTTP/1.1 503"
            };
            assert!(head.starts_with(want), "{head}");
            let (head, _) = get(addr, "GET", "/nope").await;
            assert!(head.starts_with("HTTP/1.1 404"), "{head}");
            let (head, _) = get(addr, "POST", "/metrics").await;
            assert!(head.starts_with("HTTP/1.1 405"), "{head}");
            task.abort();
        }
    }

    #[tokio::test]
    async fn a_taken_address_is_a_clear_error() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = first.local_addr().unwrap();
        let e = bind(addr).await.unwrap_err().to_string();
        assert!(
            e.contains(&addr.to_string()) && e.contains("metrics.listen"),
            "{e}"
        );
    }
}
