//! `nft-recorder serve`: the recording session over HTTP, for the users of
//! the tool this project replaces (start a session with a POST, watch it
//! live over a WebSocket, stop it with a DELETE that returns the recording).
//! axum on tokio; every request needs the bearer token; each session is a
//! `record::Session`; SIGTERM stops them all before the server exits.
//!
//! `routes` (the endpoints) -> `request` (the session body) -> `registry`
//! (the running sessions) -> `live` (events to WebSocket clients);
//! `nftables` and `recordings` answer the listings; `token` and `error`
//! are the edges.

mod error;
mod live;
mod nftables;
mod recordings;
mod registry;
mod request;
mod routes;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use error::ApiError;
use registry::Registry;
use token::Token;

/// Request bodies larger than this are refused.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// One recording directory per session under here.
    pub data: PathBuf,
    /// Default: `<data>/api-token`.
    pub token_file: Option<PathBuf>,
    pub max_sessions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--listen {0}: not a loopback address, and no --token-file: a server reachable from other hosts needs a token its operator chose")]
    ExposedWithoutToken(SocketAddr),
    #[error("--data {path}: {why}")]
    Data { path: PathBuf, why: String },
    #[error("token file {path}: {why}")]
    Token { path: PathBuf, why: String },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

pub struct AppState {
    registry: Arc<Registry>,
    token: Token,
}

async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if state.token.accepts(header) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
        .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/api.md)")
}

/// The data directory: created 0700, or an existing one the recorder's
/// user owns and nobody else can write to (recordings are made there).
fn prepare_data(path: &std::path::Path) -> Result<(), ServeError> {
    let err = |why: String| ServeError::Data {
        path: path.to_owned(),
        why,
    };
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| err(e.to_string()))?;
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| err(e.to_string()))?;
    crate::record::outdir::unsafe_reason(&meta).map_or(Ok(()), |why| Err(err(why)))
}

/// Serves until `shutdown` completes, then stops every session.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !config.listen.ip().is_loopback() && config.token_file.is_none() {
        return Err(ServeError::ExposedWithoutToken(config.listen));
    }
    prepare_data(&config.data)?;
    let token_file = config
        .token_file
        .clone()
        .unwrap_or_else(|| config.data.join("api-token"));
    let token = Token::load_or_create(&token_file)?;
    let registry = Arc::new(Registry::new(config.data.clone(), config.max_sessions));
    let state = Arc::new(AppState {
        registry: registry.clone(),
        token,
    });
    let app = routes::router()
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    eprintln!(
        "nft-recorder: serving on http://{addr} (token in {}, recordings under {})",
        token_file.display(),
        config.data.display()
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    registry.stop_all().await;
    served.map_err(ServeError::Serve)
}
