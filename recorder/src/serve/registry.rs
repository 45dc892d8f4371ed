//! The server's sessions: at most `max_sessions` at once, each a recording
//! `Session` under `data/<session_id>`. Starting and stopping run on
//! blocking threads (attaching can take a minute) inside tasks of their
//! own, so a client that goes away mid-request leaves the registry as it
//! would have been: the session either started and is listed, or not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::live;
use crate::record::{RecordOptions, RecordSummary, RunningSession, Session};
use crate::stop::StopSignal;

/// What a session was asked for, fixed at its start.
#[derive(Clone, Debug)]
struct Asked {
    mode: String,
    filters: Value,
    netns: Vec<String>,
    started_unix_ns: i64,
}

struct Entry {
    asked: Asked,
    /// `None` while starting, and while stopping.
    session: Option<RunningSession>,
    stopping: bool,
    live: Option<broadcast::WeakSender<Arc<str>>>,
}

pub struct Registry {
    pub data: PathBuf,
    max_sessions: usize,
    sessions: Mutex<BTreeMap<String, Entry>>,
    /// The session the older `/api/trace/*` names act on.
    pub trace_session: Mutex<Option<String>>,
}

fn unix_ns() -> i64 {
    crate::kernel::clock::now_ns(libc::CLOCK_REALTIME)
}

impl Registry {
    pub fn new(data: PathBuf, max_sessions: usize) -> Self {
        Self {
            data,
            max_sessions,
            sessions: Mutex::new(BTreeMap::new()),
            trace_session: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `id` (and a slot) before anything is attached.
    fn reserve(&self, id: &str, asked: Asked) -> Result<(), ApiError> {
        let mut sessions = self.lock();
        if sessions.contains_key(id) || self.data.join(id).exists() {
            return Err(ApiError::bad_request(format!(
                "session {id} exists (a running session or a recording under {})",
                self.data.display()
            )));
        }
        let active = sessions
            .values()
            .filter(|e| e.session.as_ref().is_none_or(|s| !s.is_finished()))
            .count();
        if active >= self.max_sessions {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{active} sessions are running, the most this server allows (--max-sessions)"
                ),
            ));
        }
        sessions.insert(
            id.to_string(),
            Entry {
                asked,
                session: None,
                stopping: false,
                live: None,
            },
        );
        Ok(())
    }

    /// Starts a session; returns its description once it records.
    pub async fn start(
        self: &Arc<Self>,
        id: String,
        opts: RecordOptions,
    ) -> Result<Value, ApiError> {
        let asked = Asked {
            mode: opts.mode.name().to_string(),
            filters: json!({
                "src_ip": opts.filter.src_ip, "dst_ip": opts.filter.dst_ip,
                "host": opts.filter.host, "src_port": opts.filter.src_port,
                "dst_port": opts.filter.dst_port, "port": opts.filter.port,
                "proto": opts.filter.proto, "mark": opts.filter.mark,
            }),
            netns: opts.netns.clone(),
            started_unix_ns: unix_ns(),
        };
        self.reserve(&id, asked)?;
        let registry = self.clone();
        // A task of its own: the registry is updated even if the client
        // that asked has gone.
        let task = tokio::spawn(async move {
            let (tx, weak) = live::channel();
            let stop = Arc::new(StopSignal::new());
            let started = tokio::task::spawn_blocking(move || {
                Session::start(opts, stop, Some(live::sink(tx)))
            })
            .await;
            let mut sessions = registry.lock();
            let result = match started {
                Ok(Ok(session)) => {
                    let entry = sessions.get_mut(&id).expect("reserved");
                    entry.session = Some(session);
                    entry.live = Some(weak);
                    Ok(describe(&id, entry))
                }
                Ok(Err(e)) => Err(ApiError::from(e)),
                Err(e) => Err(ApiError::internal(format!("starting: {e}"))),
            };
            if result.is_err() {
                sessions.remove(&id);
            }
            result
        });
        task.await
            .map_err(|e| ApiError::internal(format!("starting: {e}")))?
    }

    /// Stops a session and forgets it; returns its finished recording. It
    /// stays listed (`stopping`) until its recording is complete.
    pub async fn stop(self: &Arc<Self>, id: &str) -> Result<RecordSummary, ApiError> {
        let session = {
            let mut sessions = self.lock();
            let entry = sessions
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
            let what = if entry.stopping {
                "stopping"
            } else {
                "starting"
            };
            let session = entry.session.take().ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("session {id} is still {what}"),
                )
            })?;
            entry.stopping = true;
            session
        };
        // A task of its own, like the start: a client that goes away does
        // not leave the session listed as stopping.
        let (registry, id) = (self.clone(), id.to_string());
        let task = tokio::spawn(async move {
            let stopped = tokio::task::spawn_blocking(move || session.stop()).await;
            registry.lock().remove(&id);
            stopped
        });
        task.await
            .map_err(|e| ApiError::internal(format!("stopping: {e}")))?
            .map_err(|e| ApiError::internal(format!("stopping: {e}")))?
            .map_err(ApiError::from)
    }

    /// Stops every session (the server is shutting down).
    pub async fn stop_all(self: &Arc<Self>) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            match self.stop(&id).await {
                Ok(s) => tracing::info!("session {id} stopped: {} events, {}", s.events, s.end),
                Err(e) => tracing::error!("stopping session {id}: {}", e.message),
            }
        }
    }

    pub fn list(&self) -> Vec<Value> {
        self.lock().iter().map(|(id, e)| describe(id, e)).collect()
    }

    pub fn get(&self, id: &str) -> Result<Value, ApiError> {
        self.lock()
            .get(id)
            .map(|e| describe(id, e))
            .ok_or_else(|| ApiError::not_found(format!("no session {id}")))
    }

    /// A receiver of the session's live events.
    pub fn subscribe(&self, id: &str) -> Result<broadcast::Receiver<Arc<str>>, ApiError> {
        let sessions = self.lock();
        let entry = sessions
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
        entry
            .live
            .as_ref()
            .and_then(broadcast::WeakSender::upgrade)
            .map(|tx| tx.subscribe())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("session {id} is not recording"),
                )
            })
    }

    pub fn active(&self) -> usize {
        self.lock().len()
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }
}

/// A session as `GET /api/sessions` shows it.
fn describe(id: &str, e: &Entry) -> Value {
    let mut v = json!({
        "session_id": id,
        "mode": e.asked.mode,
        "filters": e.asked.filters,
        "netns": e.asked.netns,
        "started_unix_ns": e.asked.started_unix_ns,
    });
    match &e.session {
        None if e.stopping => v["state"] = "stopping".into(),
        None => v["state"] = "starting".into(),
        Some(s) => {
            let c = s.counters();
            v["state"] = c.state.name().into();
            v["events"] = c.events.into();
            v["lost"] = c.lost.into();
            v["bytes"] = c.bytes.into();
            v["backend"] = s.ready.backend.clone().into();
            v["probes_attached"] = s.ready.probes_attached.into();
            v["probes_failed"] = s.ready.probes_failed.into();
            v["output_file"] = s.ready.dir.display().to_string().into();
            let failures: Vec<String> = s.ready.failures.iter().map(|g| g.line(200)).collect();
            v["failures"] = failures.into();
        }
    }
    v
}
