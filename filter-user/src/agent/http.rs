//! The metrics endpoint: `/metrics` (Prometheus text exposition) and `/healthz` (ready when
//! every configured interface runs its intended content).

use std::{convert::Infallible, fmt::Write as _, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, time::Instant};

use super::{
    log::{event, Level},
    Shared,
};
use crate::ops::metrics::{exposition, interface_family, InterfaceMetrics};

/// Serves `shared.listen` from a task. An address that cannot be bound (loopback not up yet
/// at boot, the port taken) is logged and tried again every few seconds: filtering does not
/// wait for metrics.
pub fn serve(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut failing = false;
        let listener = loop {
            match TcpListener::bind(shared.listen).await {
                Ok(listener) => break listener,
                Err(e) => {
                    if !failing {
                        event(
                            Level::Error,
                            "metrics_unavailable",
                            &[
                                ("listen", &shared.listen),
                                ("msg", &format!("{e}; trying again every {RETRY:?}")),
                            ],
                        );
                        failing = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let bound = listener
            .local_addr()
            .map_or_else(|_| shared.listen.to_string(), |a| a.to_string());
        event(Level::Info, "metrics_listening", &[("listen", &bound)]);
        // At most this many connections at once; one that sends no request within a few
        // seconds is closed, so clients that connect and say nothing cannot pile up.
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut last_complaint: Option<Instant> = None;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: back off, and say so once a minute.
                    if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        event(Level::Warning, "metrics_accept_failed", &[("msg", &e)]);
                        last_complaint = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request: Request<Incoming>| {
                    let shared = shared.clone();
                    let (method, path) =
                        (request.method().clone(), request.uri().path().to_owned());
                    // Answering opens pinned maps and walks pins: off the runtime's threads, so
                    // a slow or flooded scrape never delays signals and timers (at most
                    // MAX_CONNECTIONS answers run at once).
                    async move {
                        let response =
                            tokio::task::spawn_blocking(move || respond(&shared, &method, &path))
                                .await
                                .unwrap_or_else(|_| {
                                    reply(
                                        StatusCode::INTERNAL_SERVER_ERROR,
                                        "text/plain",
                                        "internal error\n".into(),
                                    )
                                });
                        Ok::<_, Infallible>(response)
                    }
                });
                // A client that hangs up mid-request is its own business.
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

const MAX_CONNECTIONS: usize = 32;
const RETRY: Duration = Duration::from_secs(5);

fn respond(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(shared),
        ),
        "/healthz" => {
            let waiting = shared.not_ready();
            if waiting.is_empty() {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                let mut body = String::from("not ready:\n");
                for (iface, why) in waiting {
                    let _ = writeln!(body, "{iface}: {why}");
                }
                reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body)
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /metrics or /healthz\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

/// The same exposition as `stats --format prometheus` for every filter the agent keeps, then
/// the agent's own series.
fn metrics(shared: &Shared) -> String {
    let statuses = shared.snapshot();
    let mut filters = Vec::new();
    for (iface, _) in &statuses {
        // An interface whose filter is not attached has no counters, only the agent's series.
        let facts = |hash: &str| shared.facts(iface, hash);
        if let Ok(m) = InterfaceMetrics::read(&shared.layout, iface, facts) {
            filters.push(m);
        }
    }
    let mut out = exposition(&filters);
    interface_family(
        &mut out,
        (
            "regionfilter_refresh_failures_total",
            "counter",
            "Refreshes (and reconciles) of the interface that failed since the agent started.",
        ),
        statuses.iter().map(|(iface, s)| (iface, Some(s.failures))),
    );
    interface_family(
        &mut out,
        (
            "regionfilter_last_refresh_success_timestamp_seconds",
            "gauge",
            "When the interface last reached its intended content (Unix seconds).",
        ),
        statuses.iter().map(|(iface, s)| (iface, s.last_success)),
    );
    interface_family(
        &mut out,
        (
            "regionfilter_interface_ready",
            "gauge",
            "1 when the interface runs the content its configuration asks for.",
        ),
        statuses
            .iter()
            .map(|(iface, s)| (iface, Some(u64::from(shared.ready(iface, s).is_ok())))),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http_body_util::BodyExt as _;

    use super::*;
    use crate::{agent::config::Config, state::Layout};

    /// A Shared for one configured interface, `eth0`, over empty directories: nothing attached.
    fn shared(dir: &Path) -> Shared {
        let config = Config::parse(
            "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"GB\"] }\n",
            dir,
        )
        .unwrap();
        let layout = Layout {
            pin_root: dir.join("pins"),
            state_dir: dir.join("state"),
            lib_dir: dir.join("lib"),
        };
        let shared = Shared::new(layout, &config);
        shared.track(&"eth0".parse().unwrap());
        shared
    }

    fn answer(shared: &Shared, method: Method, path: &str) -> (StatusCode, String, String) {
        let response = respond(shared, &method, path);
        let status = response.status();
        let kind = response.headers()["Content-Type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = futures_body(response.into_body());
        (status, kind, body)
    }

    fn futures_body(body: Full<Bytes>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn health_says_which_interface_is_not_ready_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let (status, _, body) = answer(&shared, Method::GET, "/healthz");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("not ready:\neth0: "), "{body}");
    }

    #[test]
    fn metrics_carry_the_agents_own_series_without_any_filter() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let (status, kind, body) = answer(&shared, Method::GET, "/metrics");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            body.contains("regionfilter_interface_ready{interface=\"eth0\"} 0\n"),
            "{body}"
        );
        assert!(
            body.contains("regionfilter_refresh_failures_total{interface=\"eth0\"} 0\n"),
            "{body}"
        );
        // No filter attached: no counter series.
        assert!(!body.contains("regionfilter_packets_total{"), "{body}");
    }

    #[test]
    fn other_methods_and_paths_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let (status, _, body) = answer(&shared, Method::POST, "/metrics");
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
        );
        let (status, _, body) = answer(&shared, Method::GET, "/");
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, "not found: /metrics or /healthz\n")
        );
        let (status, _, _) = answer(&shared, Method::HEAD, "/healthz");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
