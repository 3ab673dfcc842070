//! The sync server a workspace syncs through (`sync.remote.url:
//! http(s)://…`): its `/health`, timed. Unreachable, or answering
//! Unhealthy (503), is Unhealthy (local writes go on and queue); Degraded
//! when it says so or answers slower than the round-trip line.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::check::{Check, CheckError, CheckFuture, CheckResult, Status};

pub struct ServerCheck {
    client: reqwest::Client,
    url: String,
    slow: Duration,
}

impl ServerCheck {
    /// `base` is the server (`https://host:port`); `timeout` bounds the
    /// request, `slow` is the Degraded line; `ca_file` adds certificates to
    /// trust, as `sync.remote.ca_file` does for sync itself.
    pub fn new(
        base: &str,
        timeout: Duration,
        slow: Duration,
        ca_file: Option<&str>,
    ) -> Result<Self, CheckError> {
        let url = format!("{}/health", base.trim().trim_end_matches('/'));
        reqwest::Url::parse(&url).map_err(|e| CheckError::new(format!("{base:?}: {e}")))?;
        let builder = acode_sync::http::client_builder(ca_file)
            .map_err(CheckError::new)?
            .timeout(timeout);
        let client = builder
            .build()
            .map_err(|e| CheckError::new(format!("building the HTTP client: {e}")))?;
        Ok(ServerCheck { client, url, slow })
    }
}

impl Check for ServerCheck {
    fn name(&self) -> &str {
        "sync_server"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            let response = match self.client.get(&self.url).send().await {
                Ok(r) => r,
                Err(e) => {
                    let message = format!("{} unreachable: {e}", self.url);
                    let data = json!({ "url": self.url });
                    return Ok(CheckResult::new(Status::Unhealthy, message, data));
                }
            };
            let code = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let said = body["status"].as_str().unwrap_or("unknown").to_string();
            let status = match (code, said.as_str()) {
                (200, "Healthy") => Status::of_growing(start.elapsed(), self.slow, Duration::MAX),
                (200, _) => Status::Degraded,
                _ => Status::Unhealthy,
            };
            let message = format!(
                "{} answered {code} ({said}) in {ms:.1} ms (Degraded above {} ms)",
                self.url,
                self.slow.as_millis()
            );
            Ok(CheckResult::new(
                status,
                message,
                json!({ "url": self.url, "http_status": code, "server_status": said, "round_trip_ms": ms }),
            ))
        })
    }
}
