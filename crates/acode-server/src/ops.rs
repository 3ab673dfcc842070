//! `GET /health` and `GET /metrics` (DESIGN.md §9).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::App;

/// Every check, run in parallel under its timeout (cached by status):
/// 200 while Healthy or Degraded, 503 when Unhealthy.
pub(crate) async fn health(State(app): State<Arc<App>>) -> Response {
    let report = app.health.run().await;
    app.metrics.record_health(&report);
    let (code, body) = report.http();
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, axum::Json(body)).into_response()
}

/// The Prometheus text of this instance's counters, gauges and histogram.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let status = app.remote.connection_pool().status();
    app.metrics.observe_pool(
        status.size.saturating_sub(status.available),
        status.available,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
