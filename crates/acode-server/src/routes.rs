//! `POST /v1/push` and `GET /v1/pull` (PROTOCOL.md), the request checks
//! they share (token, schema version), and the per-request metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acode_protocol::{
    Change, ChangeKey, ErrorCode, Id, ItemResult, Policy, PullPage, PushRequest, SCHEMA_VERSION,
};
use acode_remote::{Device, RemoteError};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::{App, ops};

/// The oldest client schema version this server still serves.
pub const MIN_SCHEMA_VERSION: u32 = 1;

pub(crate) fn router(app: Arc<App>) -> Router {
    let limit = app.opts.max_body_bytes;
    Router::new()
        .route("/v1/push", post(push))
        .route("/v1/pull", get(pull))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::UsageInvalid, "no such route: see PROTOCOL.md")
        .with_status(StatusCode::NOT_FOUND)
}

/// Counts every answer by route and status, and failures by code.
async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = match request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/v1/push") => "push",
        Some("/v1/pull") => "pull",
        Some("/health") => "health",
        Some("/metrics") => "metrics",
        _ => "other",
    };
    let response = next.run(request).await;
    app.metrics
        .record_request(route, response.status().as_u16());
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        app.metrics.record_failure(*code);
    }
    response
}

/// The calling device, from `Authorization: Bearer <token>`.
pub(crate) struct Authed(pub Device);

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("send the device token as `Authorization: Bearer <token>`")
            })?;
        let device = timed(app, "checking the token", app.remote.authenticate(token)).await?;
        Ok(Authed(device))
    }
}

/// The `Acode-Schema` check: a newer client waits for the server to be
/// upgraded (retryable); an older one than the server serves must upgrade.
fn check_schema(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get("acode-schema") else {
        return Ok(());
    };
    let n: u32 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("Acode-Schema is not a number"))?;
    if n > SCHEMA_VERSION {
        let mut e = ApiError::new(
            ErrorCode::SyncSchemaMismatch,
            format!(
                "client schema version {n} is newer than this server's {SCHEMA_VERSION}: retry after the server is upgraded"
            ),
        )
        .retryable(true);
        e.retry_after = Some(Duration::from_secs(60));
        return Err(e);
    }
    if n < MIN_SCHEMA_VERSION {
        return Err(ApiError::new(
            ErrorCode::SyncSchemaMismatch,
            format!(
                "client schema version {n} is older than the oldest this server serves ({MIN_SCHEMA_VERSION}): upgrade acode"
            ),
        )
        .retryable(false));
    }
    Ok(())
}

/// Runs a call to PostgreSQL under the request timeout.
async fn timed<T>(
    app: &App,
    what: &str,
    call: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(app.opts.request_timeout, call).await {
        Ok(outcome) => outcome.map_err(ApiError::from),
        Err(_) => Err(ApiError::timed_out(what, app.opts.request_timeout)),
    }
}

/// A push as far as it must parse for the batch to be taken at all; each
/// change is parsed on its own, so a bad one is rejected alone.
#[derive(Deserialize)]
struct RawPush<'a> {
    #[serde(default)]
    device_oldest_unsettled: Option<ChangeKey>,
    #[serde(default)]
    policy: Option<Policy>,
    #[serde(borrow)]
    changes: Vec<&'a RawValue>,
}

/// One result of the answer: ingest's, or a rejection of a change that did
/// not parse (its key as sent, whatever it was).
#[derive(Serialize)]
#[serde(untagged)]
enum Slot<'a> {
    Taken(&'a ItemResult),
    Unparsed(Value),
}

#[derive(Serialize)]
struct PushAnswer<'a> {
    results: Vec<Slot<'a>>,
    server_time: String,
}

async fn push(
    State(app): State<Arc<App>>,
    Authed(device): Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    check_schema(&headers)?;
    let batch_key: Id = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("send the batch key as `Idempotency-Key: <ULID>`"))?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the body is larger than {} bytes: send smaller batches",
                app.opts.max_body_bytes
            ))
        } else {
            ApiError::bad_request(r.body_text())
        }
    })?;
    let raw: RawPush = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a push: {e}")))?;
    if raw.changes.len() > app.opts.max_changes {
        return Err(ApiError::too_large(format!(
            "{} changes in one push; at most {}",
            raw.changes.len(),
            app.opts.max_changes
        )));
    }
    // Parse each change alone: one that does not parse is rejected in its
    // place, and the rest go to ingest together.
    let mut slots: Vec<Result<usize, Value>> = Vec::with_capacity(raw.changes.len());
    let mut valid: Vec<Change> = Vec::with_capacity(raw.changes.len());
    for text in raw.changes {
        match serde_json::from_str::<Change>(text.get()) {
            Ok(change) => {
                slots.push(Ok(valid.len()));
                valid.push(change);
            }
            Err(e) => {
                let key = serde_json::from_str::<Value>(text.get())
                    .ok()
                    .and_then(|v| v.get("key").cloned())
                    .unwrap_or(Value::Null);
                app.metrics.record_failure(ErrorCode::SyncInvalidPayload);
                slots.push(Err(json!({
                    "key": key,
                    "status": "rejected",
                    "code": ErrorCode::SyncInvalidPayload.code(),
                    "message": format!("invalid change: {e}"),
                })));
            }
        }
    }
    let request = PushRequest {
        device_oldest_unsettled: raw.device_oldest_unsettled,
        policy: raw.policy.unwrap_or_default(),
        changes: valid,
    };
    let (taken, server_time) = if request.changes.is_empty() {
        (Vec::new(), now())
    } else {
        let answer = timed(
            &app,
            "ingesting the batch",
            app.remote.push(&device, batch_key, &request),
        )
        .await?;
        (answer.results, answer.server_time)
    };
    app.metrics.record_push(&taken, started.elapsed());
    let results = slots
        .into_iter()
        .map(|slot| match slot {
            Ok(i) => taken.get(i).map(Slot::Taken).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::SyncBatchFailed,
                    "the stored answer does not match the batch",
                )
            }),
            Err(rejected) => Ok(Slot::Unparsed(rejected)),
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(PushAnswer {
        results,
        server_time,
    })
    .into_response())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn pull(
    State(app): State<Arc<App>>,
    Authed(device): Authed,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_schema(&headers)?;
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let since = query.get("since").map_or("0", String::as_str).to_string();
    let number = |name: &str, default: u64| -> Result<u64, ApiError> {
        query.get(name).map_or(Ok(default), |v| {
            v.trim()
                .parse()
                .map_err(|_| ApiError::bad_request(format!("{name} is not a whole number: {v:?}")))
        })
    };
    let limit = number("limit", 500)?.clamp(1, u64::from(acode_remote::feed::MAX_LIMIT)) as u32;
    let wait = Duration::from_secs(number("wait", 0)?).min(app.opts.max_wait);
    // Subscribe before the first read, so a change committed between the
    // read and the wait still wakes this request.
    let mut events = app.feed.subscribe();
    let mut page = read(&app, &device, &since, limit).await?;
    if page.changes.is_empty() && !wait.is_zero() {
        let _slot = WaitSlot::take(&app, &device.device_id)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut stopping = app.stopping.clone();
        let outcome: Result<(), ApiError> = async {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(e) if !e.concerns(&device.tenant_id) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        // The listener is gone: the server is stopping.
                        Err(RecvError::Closed) => return Ok(()),
                    },
                    () = tokio::time::sleep_until(deadline) => return Ok(()),
                    _ = stopping.wait_for(|s| *s) => return Ok(()),
                }
                page = read(&app, &device, &since, limit).await?;
                if !page.changes.is_empty() {
                    return Ok(());
                }
            }
        }
        .await;
        outcome?;
    }
    app.metrics.record_pulled(page.changes.len());
    Ok(Json(page).into_response())
}

/// One of a device's long-polls on this instance (and the waiting gauge),
/// given back on drop.
struct WaitSlot<'a> {
    app: &'a App,
    device: &'a str,
}

impl<'a> WaitSlot<'a> {
    fn take(app: &'a App, device: &'a str) -> Result<WaitSlot<'a>, ApiError> {
        let mut waiting = app.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let n = waiting.entry(device.to_string()).or_insert(0);
        if *n >= app.opts.max_waits_per_device {
            let mut e = ApiError::new(
                ErrorCode::SyncBatchFailed,
                format!("this device already holds {n} long-polls open here: wait for one to end"),
            )
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .retryable(true);
            e.retry_after = Some(Duration::from_secs(1));
            return Err(e);
        }
        *n += 1;
        app.metrics.long_polls(1.0);
        Ok(WaitSlot { app, device })
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        // Also when the request is dropped mid-wait (its client went away).
        self.app.metrics.long_polls(-1.0);
        let mut waiting = self.app.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = waiting.get_mut(self.device) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(self.device);
            }
        }
    }
}

async fn read(app: &App, device: &Device, since: &str, limit: u32) -> Result<PullPage, ApiError> {
    timed(
        app,
        "reading the feed",
        app.remote.pull(device, since, limit),
    )
    .await
    .map_err(|e| {
        if e.code == ErrorCode::SyncCursorExpired {
            ApiError::new(ErrorCode::SyncCursorExpired, e.message)
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions_are_checked() {
        let mut h = HeaderMap::new();
        assert!(check_schema(&h).is_ok());
        h.insert("acode-schema", SCHEMA_VERSION.to_string().parse().unwrap());
        assert!(check_schema(&h).is_ok());
        h.insert(
            "acode-schema",
            (SCHEMA_VERSION + 1).to_string().parse().unwrap(),
        );
        let newer = check_schema(&h).unwrap_err();
        assert_eq!((newer.status.as_u16(), newer.retryable), (412, true));
        h.insert("acode-schema", "0".parse().unwrap());
        let older = check_schema(&h).unwrap_err();
        assert_eq!((older.status.as_u16(), older.retryable), (412, false));
        h.insert("acode-schema", "x".parse().unwrap());
        assert_eq!(check_schema(&h).unwrap_err().status.as_u16(), 400);
    }
}
