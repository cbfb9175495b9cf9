//! What the dashboard's handlers share, and how they answer an error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::watch::feed::LiveFeed;
use crate::watch::suspend::Suspensions;

pub(super) struct App {
    pub feed: Arc<LiveFeed>,
    pub suspensions: Suspensions,
    pub token: Option<String>,
    /// `Host` values accepted (loopback without a token); empty: any.
    pub hosts: Vec<String>,
    pub sessions: Mutex<VecDeque<String>>,
    /// Seconds between two frames of a camera's MJPEG stream.
    pub frame_interval: Duration,
    /// Raised when the watch ends: streams (SSE, MJPEG) finish.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Held for a second by each refused token, so that guesses, from any number of
    /// connections, come at most one a second.
    pub refusals: tokio::sync::Mutex<()>,
}

impl App {
    /// Waits out a refused token: one second, one refusal at a time.
    pub async fn refuse_slowly(&self) {
        let _one_at_a_time = self.refusals.lock().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `{"error": message}` with `status`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
