//! `/_sim/…`: the simulator's own endpoints, so a test in another process can read the request
//! log and inject faults.
//!
//! | method | path | effect |
//! |---|---|---|
//! | GET | `/_sim/requests` | the request log (JSON array) |
//! | DELETE | `/_sim/requests` | clears the log |
//! | GET | `/_sim/counters` | the counters |
//! | POST | `/_sim/faults/fail?count=N&code=500\|429&retryAfter=S` | fail the next N requests |
//! | POST | `/_sim/faults/stall?seconds=T` | hold requests and watch streams for T seconds |
//! | POST | `/_sim/faults/expire-watches?count=N` | the next N watches get 410 Expired |
//! | POST | `/_sim/faults/drop-watches` | end every open watch |
//! | POST | `/_sim/faults/restart?downSeconds=D` | close every connection, refuse for D seconds |
//! | POST | `/_sim/faults/clear` | clear pending faults |

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, Response};
use serde_json::json;

use super::body::ResponseBody;
use super::faults::Failure;
use super::handler::{error_response, json_response, Query};
use super::server::Shared;
use super::status::ApiError;

fn num(q: &Query, key: &str, default: f64) -> Result<f64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0 && *n < 1e9)
            .ok_or_else(|| ApiError::bad_request(format!("{key}: not a number: {v:?}"))),
    }
}

/// Handles `/_sim{rest}`.
pub fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    q: &Query,
) -> Response<ResponseBody> {
    match run(shared, method, rest, q) {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

fn run(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    q: &Query,
) -> Result<serde_json::Value, ApiError> {
    let ok = json!({"status": "ok"});
    match (method, rest.trim_end_matches('/')) {
        (&Method::GET, "/requests") => serde_json::to_value(shared.log.records())
            .map_err(|e| ApiError::internal(e.to_string())),
        (&Method::DELETE, "/requests") => {
            shared.log.clear();
            Ok(ok)
        }
        (&Method::GET, "/counters") => serde_json::to_value(shared.log.counters())
            .map_err(|e| ApiError::internal(e.to_string())),
        (&Method::POST, "/faults/fail") => {
            let count = num(q, "count", 1.0)? as u64;
            let failure = match num(q, "code", 500.0)? as u16 {
                500 => Failure::Internal,
                429 => Failure::TooManyRequests {
                    retry_after: num(q, "retryAfter", 1.0)? as u64,
                },
                other => {
                    return Err(ApiError::bad_request(format!(
                        "code must be 500 or 429, not {other}"
                    )))
                }
            };
            shared.faults.fail_next(count, failure);
            Ok(ok)
        }
        (&Method::POST, "/faults/stall") => {
            shared
                .faults
                .stall_for(Duration::from_secs_f64(num(q, "seconds", 1.0)?));
            Ok(ok)
        }
        (&Method::POST, "/faults/expire-watches") => {
            shared
                .faults
                .expire_next_watches(num(q, "count", 1.0)? as u64);
            Ok(ok)
        }
        (&Method::POST, "/faults/drop-watches") => {
            shared.faults.drop_watches();
            Ok(ok)
        }
        (&Method::POST, "/faults/clear") => {
            shared.faults.clear();
            Ok(ok)
        }
        (&Method::POST, "/faults/restart") => {
            let down = Duration::from_secs_f64(num(q, "downSeconds", 0.5)?);
            let shared = shared.clone();
            tokio::spawn(async move {
                // Let this answer go out first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Err(error) = shared.restart(down).await {
                    tracing::warn!(%error, "simulated API server restart failed");
                }
            });
            Ok(ok)
        }
        (m, _) if m != Method::GET && m != Method::POST && m != Method::DELETE => {
            Err(ApiError::method_not_allowed(m.as_str()))
        }
        _ => Err(ApiError::path_not_found()),
    }
}
