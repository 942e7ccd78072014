//! The internal metrics endpoint: `GET /metrics` in the Prometheus text format.

use std::net::SocketAddr;
use std::time::Instant;

use agentcol_component::Telemetry;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Binds `addr` and serves until `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let started = Instant::now();
    let uptime = telemetry.gauge(
        "agentcol_process_uptime",
        "Seconds since the collector started",
    );
    let rss = telemetry.gauge(
        "agentcol_process_memory_rss",
        "Resident memory of the collector process, in bytes",
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for internal metrics: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(component = "telemetry", transport = "http", endpoint = %bound, "listening");
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let telemetry = telemetry.clone();
            let uptime = uptime.clone();
            let rss = rss.clone();
            async move {
                uptime
                    .get_or_create(&Vec::new())
                    .set(started.elapsed().as_secs() as i64);
                rss.get_or_create(&Vec::new()).set(rss_bytes() as i64);
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    telemetry.render(),
                )
                    .into_response()
            }
        }),
    );
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.cancelled().await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "internal metrics server stopped");
        }
    }))
}
