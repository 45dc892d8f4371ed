//! `nft-analyzer serve`: the report page over HTTP, plus the traces behind
//! it for recordings too large for one file: `GET /api/traces` (filters as
//! `traces` has them, the same JSON document) and `GET /api/trace/{id}`
//! (one trace, as `traces --format json` writes it). Each API request is
//! one pass over the events, one at a time (a semaphore), on a blocking
//! thread: the trace pipeline is synchronous and its sink not `Send`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::catalog::Catalog;
use crate::traces::sinks::{JsonSink, Sink};
use crate::traces::{self, Filter};

/// At most this many traces per `/api/traces` answer.
pub const MAX_LIMIT: u64 = 10_000;
const DEFAULT_LIMIT: u64 = 100;

struct AppState {
    catalog: Catalog,
    options: traces::Options,
    page: String,
    one_pass: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Deserialize)]
struct TracesQuery {
    verdict: Option<String>,
    flow: Option<String>,
    function: Option<String>,
    recording: Option<String>,
    limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct OneQuery {
    recording: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"status": "error", "message": message.into()});
    (status, axum::Json(body)).into_response()
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Keeps the traces a sink is handed (for `/api/trace/{id}`).
struct Keep(Vec<traces::model::Trace>);

impl Sink for Keep {
    fn trace(&mut self, t: traces::model::Trace) -> std::io::Result<()> {
        self.0.push(t);
        Ok(())
    }
    fn finish(&mut self, _: &traces::model::Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one trace pass on a blocking thread, after the ones before it.
async fn pass<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&AppState) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    // The permit goes with the pass: a client that hangs up does not let
    // the next pass start while this one still runs.
    let turn = state
        .one_pass
        .clone()
        .acquire_owned()
        .await
        .expect("never closed");
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = f(&state);
        drop(turn);
        result
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn run_traces(state: &AppState, filter: &Filter, sink: &mut dyn Sink) -> Result<(), String> {
    let handle = tokio::runtime::Handle::current();
    let summary = handle
        .block_on(traces::run(
            &state.catalog,
            &state.options,
            filter,
            sink,
            &indicatif::ProgressBar::hidden(),
        ))
        .map_err(|e| e.to_string())?;
    sink.finish(&summary).map_err(|e| e.to_string())
}

/// A 404 for a recording the server does not hold.
fn unknown_recording(state: &AppState, name: &Option<String>) -> Option<Response> {
    let n = name.as_ref()?;
    let known = state.catalog.recordings.iter().any(|r| &r.name == n);
    (!known).then(|| error(StatusCode::NOT_FOUND, format!("no recording named {n:?}")))
}

async fn list(State(state): State<Arc<AppState>>, Query(q): Query<TracesQuery>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={MAX_LIMIT}"),
        );
    }
    if let Some(r) = unknown_recording(&state, &q.recording) {
        return r;
    }
    let filter = Filter {
        verdict: q.verdict,
        flow: q.flow,
        function: q.function,
        recording: q.recording,
        limit: Some(limit),
        ..Filter::default()
    };
    let result = pass(&state, move |state| {
        let session: Vec<&str> = state
            .catalog
            .recordings
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let mode = state.catalog.recordings[0].manifest.backend.clone();
        let mut body = Vec::new();
        let mut sink =
            JsonSink::new(&mut body, &session.join(","), &mode).map_err(|e| e.to_string())?;
        run_traces(state, &filter, &mut sink)?;
        Ok(body)
    })
    .await;
    match result {
        Ok(body) => json(body),
        Err(r) => r,
    }
}

async fn one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<OneQuery>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("trace id {id:?} is not a number"),
        );
    };
    if let Some(r) = unknown_recording(&state, &q.recording) {
        return r;
    }
    let recording = q
        .recording
        .unwrap_or_else(|| state.catalog.recordings[0].name.clone());
    let filter = Filter {
        trace_id: Some(id),
        recording: Some(recording.clone()),
        limit: Some(1),
        ..Filter::default()
    };
    let found = pass(&state, move |state| {
        let mut keep = Keep(Vec::new());
        run_traces(state, &filter, &mut keep)?;
        Ok(keep.0.pop())
    })
    .await;
    match found {
        Ok(Some(t)) => json(serde_json::to_vec(&t).expect("a trace serialises")),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no trace {id} in recording {recording:?}"),
        ),
        Err(r) => r,
    }
}

async fn page(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        state.page.clone(),
    )
        .into_response()
}

/// Serves `page` and the traces of `catalog` on `listen` until ctrl-c;
/// `ready` gets the bound address (port 0 picks one).
pub async fn run(
    catalog: Catalog,
    options: traces::Options,
    page_html: String,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let state = Arc::new(AppState {
        catalog,
        options,
        page: page_html,
        one_pass: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/api/traces", get(list))
        .route("/api/trace/{id}", get(one))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
