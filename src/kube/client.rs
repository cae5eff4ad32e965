//! The HTTP layer: authenticated JSON requests and watch streams against one API server, every
//! request passing a rate limiter so a broken API is never hammered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::connection::{Connection, TokenReader};
use super::error::{ApiStatus, KubeError};
use super::ratelimit::RateLimiter;

/// Timeout of a plain (non-watch) request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The patch formats the API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch.
    Json,
}

impl PatchType {
    fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// One event of a watch stream, with the object already decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    /// An object appeared.
    Added(T),
    /// An object changed.
    Modified(T),
    /// An object was deleted (its last state).
    Deleted(T),
    /// A checkpoint: the stream is at this `resourceVersion`.
    Bookmark(String),
    /// The server ended the watch with a Status (410 Expired: relist).
    Error(ApiStatus),
}

#[derive(Deserialize)]
struct RawWatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct BookmarkObject {
    metadata: BookmarkMeta,
}

#[derive(Deserialize)]
struct BookmarkMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
}

/// A page of a list.
#[derive(Debug, Deserialize)]
pub struct ObjectList<T> {
    /// The list's metadata.
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// `metadata` of a list.
#[derive(Debug, Default, Deserialize)]
pub struct ListMeta {
    /// The collection's version at the time of the list.
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: String,
    /// Token for the next page, empty on the last one.
    #[serde(rename = "continue", default)]
    pub continue_token: Option<String>,
}

/// An authenticated client of one API server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: Arc<TokenReader>,
    limiter: Arc<RateLimiter>,
    sent: Arc<AtomicU64>,
}

impl Client {
    /// A client for `conn`, sending at most `qps` requests per second on average with bursts
    /// of `burst`.
    pub fn new(conn: &Connection, qps: f64, burst: u32) -> Result<Client, KubeError> {
        Ok(Client {
            http: conn.http_client()?,
            base: conn.server.clone(),
            token: Arc::new(TokenReader::new(conn.token.clone())),
            limiter: Arc::new(RateLimiter::new(qps, burst)),
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests sent so far (for tests and metrics).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The server's base URL.
    pub fn server(&self) -> &url::Url {
        &self.base
    }

    /// GET and decode.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, KubeError> {
        let resp = self
            .send(Method::GET, path, query, None, REQUEST_TIMEOUT)
            .await?;
        decode(resp, "GET").await
    }

    /// POST a new object.
    pub async fn create<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, KubeError> {
        let body = to_body(body, "application/json")?;
        let resp = self
            .send(Method::POST, path, &[], body, REQUEST_TIMEOUT)
            .await?;
        decode(resp, "POST").await
    }

    /// PUT a whole object (its `metadata.resourceVersion` is the precondition).
    pub async fn replace<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, KubeError> {
        let body = to_body(body, "application/json")?;
        let resp = self
            .send(Method::PUT, path, &[], body, REQUEST_TIMEOUT)
            .await?;
        decode(resp, "PUT").await
    }

    /// PATCH an object.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        kind: PatchType,
        body: &impl serde::Serialize,
    ) -> Result<T, KubeError> {
        let body = to_body(body, kind.content_type())?;
        let resp = self
            .send(Method::PATCH, path, &[], body, REQUEST_TIMEOUT)
            .await?;
        decode(resp, "PATCH").await
    }

    /// DELETE an object.
    pub async fn delete(&self, path: &str) -> Result<(), KubeError> {
        self.send(Method::DELETE, path, &[], None, REQUEST_TIMEOUT)
            .await
            .map(drop)
    }

    /// Opens a watch; the stream ends when the server closes it, when no byte (not even a
    /// bookmark) arrives for `idle`, or at the first transport error.
    pub async fn watch<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, String)],
        idle: Duration,
    ) -> Result<impl Stream<Item = Result<WatchEvent<T>, KubeError>> + Send + 'static, KubeError>
    {
        let mut query = query.to_vec();
        query.push(("watch", "true".to_string()));
        // The request as a whole may last as long as the server keeps the watch open.
        let resp = self
            .send(
                Method::GET,
                path,
                &query,
                None,
                Duration::from_secs(24 * 3600),
            )
            .await?;
        let url = resp.url().to_string();
        let bytes = resp.bytes_stream();
        Ok(watch_lines(bytes, url, idle))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &'static str)>,
        timeout: Duration,
    ) -> Result<reqwest::Response, KubeError> {
        self.limiter.acquire().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let method_name = method_name(&method);
        let mut url = self.base.clone();
        url.set_path(path);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self
            .http
            .request(method, url.clone())
            .header(ACCEPT, "application/json")
            .timeout(timeout);
        if let Some(token) = self.token.token().await? {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                KubeError::Tls("the bearer token contains invalid characters".into())
            })?;
            req = req.header(AUTHORIZATION, value);
        }
        if let Some((bytes, content_type)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|source| KubeError::Transport {
            method: method_name,
            url: url.to_string(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(resp, method_name).await)
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "REQUEST",
    }
}

fn to_body(
    body: &impl serde::Serialize,
    content_type: &'static str,
) -> Result<Option<(Vec<u8>, &'static str)>, KubeError> {
    serde_json::to_vec(body)
        .map(|bytes| Some((bytes, content_type)))
        .map_err(|e| KubeError::Decode {
            method: "encode",
            url: String::new(),
            reason: e.to_string(),
        })
}

async fn decode<T: DeserializeOwned>(
    resp: reqwest::Response,
    method: &'static str,
) -> Result<T, KubeError> {
    let url = resp.url().to_string();
    let bytes = resp.bytes().await.map_err(|source| KubeError::Transport {
        method,
        url: url.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| KubeError::Decode {
        method,
        url,
        reason: e.to_string(),
    })
}

async fn api_error(resp: reqwest::Response, method: &'static str) -> KubeError {
    let code = resp.status();
    let url = resp.url().to_string();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    let mut status: ApiStatus = serde_json::from_slice(&body).unwrap_or_default();
    status.code = code.as_u16();
    if status.reason.is_empty() {
        status.reason = code.canonical_reason().unwrap_or("Error").to_string();
    }
    if status.message.is_empty() {
        status.message = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    }
    let retry_after = retry_after.filter(|_| {
        code == StatusCode::TOO_MANY_REQUESTS || code == StatusCode::SERVICE_UNAVAILABLE
    });
    KubeError::Api {
        method,
        url,
        status,
        retry_after,
    }
}

/// Splits a watch body into newline-delimited JSON events.
fn watch_lines<T, S>(
    bytes: S,
    url: String,
    idle: Duration,
) -> impl Stream<Item = Result<WatchEvent<T>, KubeError>> + Send + 'static
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
{
    let state = (Box::pin(bytes), Vec::<u8>::new(), url, false);
    futures_util::stream::unfold(state, move |(mut bytes, mut buf, url, done)| async move {
        if done {
            return None;
        }
        loop {
            if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = parse_event(&line, &url);
                return Some((event, (bytes, buf, url, false)));
            }
            match tokio::time::timeout(idle, bytes.next()).await {
                Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
                Ok(Some(Err(source))) => {
                    let err = KubeError::Transport {
                        method: "WATCH",
                        url: url.clone(),
                        source,
                    };
                    return Some((Err(err), (bytes, buf, url, true)));
                }
                // Closed by the server, or silent for too long: either way the caller
                // re-watches from its last resourceVersion.
                Ok(None) | Err(_) => return None,
            }
        }
    })
}

fn parse_event<T: DeserializeOwned>(line: &[u8], url: &str) -> Result<WatchEvent<T>, KubeError> {
    let decode_err = |reason: String| KubeError::Decode {
        method: "WATCH",
        url: url.to_string(),
        reason,
    };
    let raw: RawWatchEvent = serde_json::from_slice(line).map_err(|e| decode_err(e.to_string()))?;
    let object = |v: serde_json::Value| {
        serde_json::from_value::<T>(v).map_err(|e| decode_err(e.to_string()))
    };
    match raw.kind.as_str() {
        "ADDED" => Ok(WatchEvent::Added(object(raw.object)?)),
        "MODIFIED" => Ok(WatchEvent::Modified(object(raw.object)?)),
        "DELETED" => Ok(WatchEvent::Deleted(object(raw.object)?)),
        "BOOKMARK" => {
            let b: BookmarkObject =
                serde_json::from_value(raw.object).map_err(|e| decode_err(e.to_string()))?;
            Ok(WatchEvent::Bookmark(b.metadata.resource_version))
        }
        "ERROR" => Ok(WatchEvent::Error(
            serde_json::from_value(raw.object).map_err(|e| decode_err(e.to_string()))?,
        )),
        other => Err(decode_err(format!("unknown watch event type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Obj {
        n: u32,
    }

    #[tokio::test]
    async fn splits_chunks_into_events() {
        let chunks: Vec<Result<bytes::Bytes, reqwest::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n{\"type\":\"MOD")),
            Ok(bytes::Bytes::from_static(b"IFIED\",\"object\":{\"n\":2}}\n\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\n")),
            Ok(bytes::Bytes::from_static(b"{\"type\":\"ERROR\",\"object\":{\"code\":410,\"reason\":\"Expired\",\"message\":\"too old\"}}\n")),
        ];
        let events: Vec<_> = watch_lines::<Obj, _>(
            futures_util::stream::iter(chunks),
            "u".into(),
            Duration::from_secs(1),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[0].as_ref().unwrap(),
            &WatchEvent::Added(Obj { n: 1 })
        );
        assert_eq!(
            events[1].as_ref().unwrap(),
            &WatchEvent::Modified(Obj { n: 2 })
        );
        assert_eq!(
            events[2].as_ref().unwrap(),
            &WatchEvent::Bookmark("7".into())
        );
        match events[3].as_ref().unwrap() {
            WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let chunks: Vec<Result<bytes::Bytes, reqwest::Error>> = vec![Ok(
            bytes::Bytes::from_static(b"\xff\xfe not json\n{\"type\":\"WAT\",\"object\":{}}\n"),
        )];
        let events: Vec<_> = watch_lines::<Obj, _>(
            futures_util::stream::iter(chunks),
            "u".into(),
            Duration::from_secs(1),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(Result::is_err));
    }
}
