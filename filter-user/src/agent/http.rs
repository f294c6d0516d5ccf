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
    release::refusal_reasons,
    IfaceStatus, Shared,
};
use crate::{
    model::iface::IfaceName,
    ops::{
        metrics::{exposition, interface_family, labelled_family, InterfaceMetrics},
        release::{self, Manifest},
    },
};

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
    release_families(&mut out, shared, &statuses);
    out
}

/// The release each interface runs (recorded beside its known-good copies, so one applied by
/// `update --release-url` shows too), the newest one published, and refusals by reason.
fn release_families(out: &mut String, shared: &Shared, statuses: &[(IfaceName, IfaceStatus)]) {
    let running: Vec<(&IfaceName, Manifest)> = statuses
        .iter()
        .filter_map(|(iface, _)| {
            let applied = release::applied(&shared.layout.lib_dir.join(iface));
            Some((iface, applied.ok().flatten()?))
        })
        .collect();
    let published: Vec<(&IfaceName, &Manifest, u16)> = statuses
        .iter()
        .filter_map(|(iface, s)| s.release.published.as_ref().map(|(m, p)| (iface, m, *p)))
        .collect();
    let channel = |m: &Manifest| vec![("channel", m.channel.clone())];
    labelled_family(
        out,
        (
            "regionfilter_release_version",
            "gauge",
            "The release the interface runs (its manifest's version).",
        ),
        running.iter().map(|(i, m)| (*i, channel(m), m.version)),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_dry_run",
            "gauge",
            "1 when the release the interface runs was applied in a dry-run stage.",
        ),
        running
            .iter()
            .map(|(i, m)| (*i, channel(m), u64::from(m.rollout.current().dry_run))),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_published_version",
            "gauge",
            "The newest release that verified at the release URL, in this node's stage or not.",
        ),
        published
            .iter()
            .map(|(i, m, _)| (*i, channel(m), m.version)),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_cohort_per_mille",
            "gauge",
            "This node's position (0-999) in the published release's rollout: it takes part in a stage of more per mille.",
        ),
        published.iter().map(|(i, m, p)| (*i, channel(m), u64::from(*p))),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_stage_per_mille",
            "gauge",
            "The share of nodes (per mille) the published release's stage in force takes.",
        ),
        published
            .iter()
            .map(|(i, m, _)| (*i, channel(m), u64::from(m.rollout.current().per_mille))),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_expiry_timestamp_seconds",
            "gauge",
            "When the newest manifest that verified expires (Unix seconds): past it, the node keeps its filter and is stale.",
        ),
        statuses.iter().filter_map(|(iface, s)| {
            let newest = s.release.published.as_ref().map(|(m, _)| m).or_else(|| {
                running.iter().find(|(i, _)| *i == iface).map(|(_, m)| m)
            })?;
            Some((iface, channel(newest), newest.expires))
        }),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_last_check_timestamp_seconds",
            "gauge",
            "When a manifest last verified at the release URL (Unix seconds).",
        ),
        statuses.iter().filter_map(|(iface, s)| {
            let (m, _) = s.release.published.as_ref()?;
            Some((iface, channel(m), s.release.last_check?))
        }),
    );
    labelled_family(
        out,
        (
            "regionfilter_release_refusals_total",
            "counter",
            "Releases refused since the agent started, by reason; nothing was changed by any.",
        ),
        statuses
            .iter()
            .filter(|(_, s)| s.release.following)
            .flat_map(|(iface, s)| {
                refusal_reasons().map(move |reason| {
                    let n = s.release.refusals.get(reason).copied().unwrap_or(0);
                    (iface, vec![("reason", reason.to_owned())], n)
                })
            }),
    );
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

    fn manifest(version: u64, stage: usize) -> Manifest {
        use crate::ops::release::{ArtifactRef, Rollout, Stage};
        Manifest {
            format: release::FORMAT,
            channel: "stable".to_owned(),
            version,
            created: 1_000,
            expires: 2_000 + version,
            artifact: ArtifactRef {
                file: "f.rgnf".to_owned(),
                sha256: "00".repeat(32),
                size: 10,
                content_hash: "11".repeat(32),
            },
            rollout: Rollout {
                plan: vec![
                    Stage::parse("dry:10%").unwrap(),
                    Stage::parse("100%").unwrap(),
                ],
                stage,
            },
        }
    }

    #[test]
    fn metrics_say_which_release_runs_which_is_published_and_what_was_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let eth0: IfaceName = "eth0".parse().unwrap();
        // Release 4 applied in its dry-run stage; release 5 published, at 100%; two expired
        // manifests refused.
        release::record_applied(&dir.path().join("lib/eth0"), &manifest(4, 0)).unwrap();
        shared.set(&eth0, |s| {
            s.release.following = true;
            s.release.published = Some((manifest(5, 1), 42));
            s.release.last_check = Some(1_500);
            s.release.refusals.insert("expired", 2);
        });
        let (_, _, body) = answer(&shared, Method::GET, "/metrics");
        for line in [
            "regionfilter_release_version{interface=\"eth0\",channel=\"stable\"} 4\n",
            "regionfilter_release_dry_run{interface=\"eth0\",channel=\"stable\"} 1\n",
            "regionfilter_release_published_version{interface=\"eth0\",channel=\"stable\"} 5\n",
            "regionfilter_release_cohort_per_mille{interface=\"eth0\",channel=\"stable\"} 42\n",
            "regionfilter_release_stage_per_mille{interface=\"eth0\",channel=\"stable\"} 1000\n",
            "regionfilter_release_expiry_timestamp_seconds{interface=\"eth0\",channel=\"stable\"} 2005\n",
            "regionfilter_release_last_check_timestamp_seconds{interface=\"eth0\",channel=\"stable\"} 1500\n",
            "regionfilter_release_refusals_total{interface=\"eth0\",reason=\"expired\"} 2\n",
            "regionfilter_release_refusals_total{interface=\"eth0\",reason=\"wrong_key\"} 0\n",
        ] {
            assert!(body.contains(line), "{line}: {body}");
        }
    }

    #[test]
    fn an_interface_without_releases_has_no_release_series() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let (_, _, body) = answer(&shared, Method::GET, "/metrics");
        assert!(!body.contains("regionfilter_release_version{"), "{body}");
        assert!(
            !body.contains("regionfilter_release_refusals_total{"),
            "{body}"
        );
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
