//! The admin listener: liveness, readiness, Prometheus metrics and the
//! plugins' status (`/plugins`, `/plugins/<name>`, JSON), on a
//! separate plain-HTTP port meant for the site's monitoring only.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::http::body::{Body, full};
use crate::server::Shared;
use crate::shutdown::Shutdown;

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_default();
    body.push('\n');
    text(status, "application/json", body)
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            let rt = shared.runtime.load_full();
            let target = rt.upstream.target().clone();
            let timeout = rt.upstream.connect_timeout().min(Duration::from_secs(2));
            drop(rt);
            match target.probe(timeout).await {
                Ok(addr) => text(
                    StatusCode::OK,
                    "text/plain",
                    format!("ready: upstream {addr} reachable\n"),
                ),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {e}\n"),
                ),
            }
        }
        "/metrics" => {
            let expiry = crate::metrics::expiry_registry(
                &shared.runtime.load().expiries,
                crate::pki::unix_now(),
            );
            let kv = crate::kv::snapshot();
            let state = crate::metrics::shared_state_registry(&kv.errors, &kv.up);
            let paths = crate::metrics::path_cache_registry(
                crate::pki::paths::counts(),
                crate::auth::x509::verdict_counts(),
            );
            text(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                shared.metrics.encode_with(&[
                    &crate::services::schedule::metrics_registry(),
                    &expiry,
                    &state,
                    &paths,
                ]),
            )
        }
        "/plugins" => json(StatusCode::OK, &crate::services::schedule::statuses()),
        p if p.starts_with("/plugins/") => {
            match crate::services::schedule::status(&p["/plugins/".len()..]) {
                Some(s) => json(StatusCode::OK, &s),
                None => text(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "no such plugin has run in this process; see /plugins\n".into(),
                ),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /healthz, /readyz, /metrics or /plugins\n".into(),
        ),
    })
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(shared: Arc<Shared>, listeners: Vec<TcpListener>, shutdown: Shutdown) {
    for l in listeners {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = l.accept() => match a { Ok(x) => x, Err(_) => continue },
                    _ = shutdown.wait() => return,
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| route(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    }
}
