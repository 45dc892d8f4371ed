//! The endpoints. The first six are the names and fields the replaced
//! tool's users already call; `/api/trace/*` maps its older single-session
//! names onto them. Every handler answers JSON (`{"status":"success",...}`
//! or an `ApiError`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::nftables::{self, Listing};
use super::request::{check_id, SessionRequest};
use super::{live, recordings, AppState};

type Reply = Result<Json<Value>, ApiError>;

fn success(mut v: Value) -> Json<Value> {
    v["status"] = "success".into();
    Json(v)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn start_session(state: &AppState, req: SessionRequest) -> Reply {
    let opts = req.options(&state.registry.data)?;
    let mode = opts.mode;
    let mut v = state.registry.start(req.session_id.clone(), opts).await?;
    let mut message = format!("Session started in {} mode", mode.name().to_uppercase());
    let no_functions = v["backend"] == "tracepoint";
    if mode != crate::record::functions::Mode::Nft && no_functions {
        message.push_str(
            "; no kernel function can be traced on this kernel, so it records tracepoints \
             and nftrace only (see failures)",
        );
    }
    v["message"] = message.into();
    Ok(success(v))
}

async fn post_session(State(state): State<Arc<AppState>>, body: Bytes) -> Reply {
    let req = SessionRequest::parse(&body)?;
    start_session(&state, req).await
}

async fn delete_session(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    check_id(&id)?;
    let s = state.registry.stop(&id).await?;
    Ok(success(json!({
        "session_id": id,
        "output_file": s.dir.display().to_string(),
        "events": s.events,
        "lost": s.lost,
        "ended": s.end,
    })))
}

async fn list_sessions(State(state): State<Arc<AppState>>) -> Reply {
    Ok(success(json!({"sessions": state.registry.list()})))
}

async fn get_session(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    check_id(&id)?;
    Ok(success(json!({"session": state.registry.get(&id)?})))
}

async fn status(State(state): State<Arc<AppState>>) -> Reply {
    let report = blocking(crate::check::run).await?;
    let capabilities: Vec<Value> = report
        .capabilities
        .iter()
        .map(|c| json!({"name": c.name, "available": c.available, "detail": c.detail}))
        .collect();
    Ok(success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "active_sessions": state.registry.active(),
        "auto_backend": report.auto_backend(),
        "capabilities": capabilities,
    })))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DiscoverRequest {
    priority: Option<u8>,
}

async fn discover(body: Bytes) -> Reply {
    let req: DiscoverRequest = if body.is_empty() {
        DiscoverRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?
    };
    if req.priority.is_some_and(|p| p > 2) {
        return Err(ApiError::bad_request("priority: 0, 1 or 2"));
    }
    let found = blocking(move || {
        crate::discover::discover(&crate::discover::DiscoverOptions {
            btf: None,
            max_priority: req.priority,
        })
    })
    .await?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(success(
        json!({"count": found.functions.len(), "functions": found.functions}),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetnsQuery {
    netns: Option<String>,
}

async fn nft_listing(what: Listing, q: NetnsQuery) -> Reply {
    let netns = q.netns.clone();
    let items = blocking(move || nftables::list(what, netns.as_deref())).await??;
    let key = match what {
        Listing::Tables => "tables",
        Listing::Chains => "chains",
        Listing::Rules => "rules",
    };
    Ok(success(json!({"netns": q.netns, key: items})))
}

async fn nft_tables(Query(q): Query<NetnsQuery>) -> Reply {
    nft_listing(Listing::Tables, q).await
}

async fn nft_chains(Query(q): Query<NetnsQuery>) -> Reply {
    nft_listing(Listing::Chains, q).await
}

async fn nft_rules(Query(q): Query<NetnsQuery>) -> Reply {
    nft_listing(Listing::Rules, q).await
}

/// `POST /api/trace/start`: a session, `trace` unless the body names one.
async fn trace_start(State(state): State<Arc<AppState>>, body: Bytes) -> Reply {
    let mut v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object",
        ));
    }
    if v.get("session_id").is_none() {
        v["session_id"] = "trace".into();
    }
    let req = SessionRequest::parse(v.to_string().as_bytes())?;
    let id = req.session_id.clone();
    let reply = start_session(&state, req).await?;
    *state
        .registry
        .trace_session
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(id);
    Ok(reply)
}

fn trace_id(state: &AppState) -> Result<String, ApiError> {
    state
        .registry
        .trace_session
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| ApiError::not_found("no trace was started with /api/trace/start"))
}

async fn trace_stop(State(state): State<Arc<AppState>>) -> Reply {
    let id = trace_id(&state)?;
    let reply = delete_session(State(state.clone()), Path(id)).await?;
    *state
        .registry
        .trace_session
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
    Ok(reply)
}

async fn trace_status(State(state): State<Arc<AppState>>) -> Reply {
    match trace_id(&state) {
        Ok(id) => Ok(success(
            json!({"active": true, "session": state.registry.get(&id)?}),
        )),
        Err(_) => Ok(success(json!({"active": false}))),
    }
}

async fn live_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let rx = state.registry.subscribe(&id)?;
    Ok(ws.on_upgrade(move |socket| live::stream(socket, rx)))
}

async fn list_recordings(State(state): State<Arc<AppState>>) -> Reply {
    let data = state.registry.data.clone();
    let list = blocking(move || recordings::list(&data)).await?;
    Ok(success(json!({"recordings": list})))
}

async fn archive(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    if state.registry.is_active(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("session {id} is running: stop it first"),
        ));
    }
    let body = recordings::archive(&state.registry.data, &id)?;
    let disposition = format!("attachment; filename=\"{id}.tar\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/sessions", post(post_session).get(list_sessions))
        .route(
            "/api/sessions/{id}",
            get(get_session).delete(delete_session),
        )
        .route("/api/sessions/{id}/live", get(live_events))
        .route("/api/status", get(status))
        .route("/api/discover", post(discover))
        .route("/api/nftables/tables", get(nft_tables))
        .route("/api/nftables/chains", get(nft_chains))
        .route("/api/nftables/rules", get(nft_rules))
        .route("/api/trace/start", post(trace_start))
        .route("/api/trace/stop", post(trace_stop))
        .route("/api/trace/status", get(trace_status))
        .route("/api/recordings", get(list_recordings))
        .route("/api/recordings/{id}/archive", get(archive))
}
