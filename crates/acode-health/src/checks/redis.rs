//! Redis (the hot-state tier, DESIGN.md §12), when a URL is configured
//! (`health.redis_url`, else `REDIS_URL`): a `PING` round trip.

use std::time::{Duration, Instant};

use acode_protocol::ErrorCode;
use serde_json::json;

use crate::check::{Check, CheckError, CheckFuture, CheckResult, Status};

pub struct RedisCheck {
    client: redis::Client,
    /// host:port, never the password.
    target: String,
    slow: Duration,
}

impl RedisCheck {
    pub fn new(url: &str, slow: Duration) -> Result<Self, CheckError> {
        let client = redis::Client::open(url).map_err(|e| {
            CheckError::new(format!(
                "{} invalid Redis URL: {e}",
                ErrorCode::ConfigInvalidValue
            ))
        })?;
        let target = client.get_connection_info().addr().to_string();
        Ok(RedisCheck {
            client,
            target,
            slow,
        })
    }
}

impl Check for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let data = json!({ "target": self.target });
            let mut conn = match self.client.get_multiplexed_async_connection().await {
                Ok(c) => c,
                Err(e) => {
                    let message = format!("connecting to Redis at {}: {e}", self.target);
                    return Ok(CheckResult::new(Status::Unhealthy, message, data));
                }
            };
            let start = Instant::now();
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| CheckError::new(format!("PING to Redis at {}: {e}", self.target)))?;
            let rtt = start.elapsed();
            let ms = rtt.as_secs_f64() * 1000.0;
            let status = Status::of_growing(rtt, self.slow, Duration::MAX);
            let message = format!(
                "{} answered {pong} in {ms:.2} ms (Degraded above {} ms)",
                self.target,
                self.slow.as_millis()
            );
            Ok(CheckResult::new(
                status,
                message,
                json!({ "target": self.target, "round_trip_ms": ms }),
            ))
        })
    }
}
