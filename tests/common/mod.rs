//! Shared helpers for the integration tests: a minimal HTTP/1.1 client (one connection per
//! request) and a watch-stream reader for the API simulator tests; the network-namespace lab
//! ([`netlab`]) and ferrolb's kubectl-side checks ([`e2e`]) for the end-to-end tests, and the
//! L2-mode lab and the client's view of an address ([`l2`]), the gossip lab's set-up
//! ([`gossip`]) the client's 10 ms TCP probe ([`probe`]), a private D-Bus ([`dbus`]) and BGP
//! routers (FRR, GoBGP) with their topology ([`bgp`]).
#![allow(dead_code)]

pub mod bgp;
pub mod bgp_lab;
pub mod dbus;
pub mod e2e;
pub mod frr;
pub mod gobgp;
pub mod gossip;
pub mod l2;
pub mod netlab;
pub mod probe;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub json: Value,
    pub text: String,
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("user-agent", "ferrolb-tests");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// Sends a request and reads the whole answer.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, Value)>,
    headers: &[(&str, &str)],
) -> Resp {
    try_call(addr, method, path, body, headers)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like `call`, but a connection failure is an `Err`.
pub async fn try_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, Value)>,
    headers: &[(&str, &str)],
) -> Result<Resp, String> {
    let (ct, bytes) = match body {
        Some((ct, v)) => (Some(ct), serde_json::to_vec(&v).unwrap()),
        None => (None, Vec::new()),
    };
    let resp = send(addr, method, path, ct, bytes, headers).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        headers,
        json,
        text,
    })
}

/// Sends raw bytes (for malformed-body tests).
pub async fn call_raw(addr: SocketAddr, method: &str, path: &str, ct: &str, body: &[u8]) -> Resp {
    let resp = send(addr, method, path, Some(ct), body.to_vec(), &[])
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    call(addr, "GET", path, None, &[]).await
}

pub async fn post(addr: SocketAddr, path: &str, obj: Value) -> Resp {
    call(addr, "POST", path, Some(("application/json", obj)), &[]).await
}

pub async fn put(addr: SocketAddr, path: &str, obj: Value) -> Resp {
    call(addr, "PUT", path, Some(("application/json", obj)), &[]).await
}

pub async fn patch(addr: SocketAddr, path: &str, ct: &str, obj: Value) -> Resp {
    call(addr, "PATCH", path, Some((ct, obj)), &[]).await
}

pub async fn delete(addr: SocketAddr, path: &str) -> Resp {
    call(addr, "DELETE", path, None, &[]).await
}

/// What a watch read gives.
#[derive(Debug)]
pub enum Next {
    Event(Value),
    End,
    Timeout,
}

/// An open watch stream.
pub struct Watch {
    pub status: u16,
    body: Incoming,
    buf: Vec<u8>,
}

/// Opens a watch (`path` includes `watch=1` and the other parameters).
pub async fn watch(addr: SocketAddr, path: &str) -> Watch {
    watch_with(addr, path, &[]).await
}

pub async fn watch_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Watch {
    let resp = send(addr, "GET", path, None, Vec::new(), headers)
        .await
        .unwrap();
    Watch {
        status: resp.status().as_u16(),
        body: resp.into_body(),
        buf: Vec::new(),
    }
}

impl Watch {
    /// The next event, `End` when the server ended the stream, `Timeout` after `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let v: Value = serde_json::from_slice(&line).expect("watch event is JSON");
                return Next::Event(v);
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Next::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return Next::End,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next event that is not a BOOKMARK; panics on end or timeout.
    pub async fn event(&mut self) -> Value {
        loop {
            match self.next(Duration::from_secs(5)).await {
                Next::Event(e) if e["type"] == "BOOKMARK" => continue,
                Next::Event(e) => return e,
                other => panic!("expected a watch event, got {other:?}"),
            }
        }
    }

    /// Asserts nothing but bookmarks arrive within `within`.
    pub async fn quiet(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Timeout => return,
                Next::Event(e) if e["type"] == "BOOKMARK" => continue,
                other => panic!("expected no event, got {other:?}"),
            }
        }
    }
}

pub fn service(name: &str, ty: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"type": ty, "selector": {"app": name}, "ports": [{"name": "http", "port": 80}]},
    })
}

pub fn configmap(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    })
}

pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}
