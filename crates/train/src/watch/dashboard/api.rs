//! The dashboard's JSON API (the table is in the book's "Alerts and dashboard"). Every id,
//! camera name and query value is checked before use; answers to bad input are 4xx with a
//! JSON `{"error": …}` naming what was wrong.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::app::{error, App};
use crate::run_config::watch::check_camera_name;
use crate::watch::clips::tint;
use crate::watch::feed::{Command, EventSummary, LiveFrame, ALREADY_MARKED};
use crate::watch::suspend::Suspensions;

type Shared = State<Arc<App>>;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/stats", get(stats))
        .route("/api/cameras", get(cameras))
        .route("/api/cameras/{name}/latest.jpg", get(latest_jpeg))
        .route("/api/cameras/{name}/live.mjpeg", get(live_mjpeg))
        .route("/api/cameras/{name}/area", get(area))
        .route("/api/cameras/{name}/suspend", post(suspend))
        .route("/api/events", get(events))
        .route("/api/events/{id}", get(event))
        .route("/api/events/{id}/snapshot.png", get(snapshot))
        .route("/api/events/{id}/clip.mp4", get(clip))
        .route("/api/events/{id}/false_positive", post(false_positive))
        .route("/api/live", get(live))
}

fn bad(message: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, &message.to_string())
}

/// A camera of this watch, by a name that is valid.
fn camera(app: &App, name: &str) -> Result<String, Response> {
    if check_camera_name(name).is_err() {
        return Err(bad("a camera name is 1–64 letters, digits, '-' or '_'"));
    }
    if !app.feed.has_camera(name) {
        return Err(error(StatusCode::NOT_FOUND, "no such camera in this watch"));
    }
    Ok(name.to_string())
}

/// An event the dashboard knows, by a valid id (ids are made of the start time, the camera
/// name and a count: letters, digits, '-', '_').
fn known_event(app: &App, id: &str) -> Result<EventSummary, Response> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(bad("an event id is up to 128 letters, digits, '-' or '_'"));
    }
    app.feed
        .event_summary(id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such event"))
}

/// The query's pairs; any key but `allowed`, a repeated one, or an oversized query is an error.
fn query(raw: Option<String>, allowed: &[&str]) -> Result<Vec<(String, String)>, Response> {
    let raw = raw.unwrap_or_default();
    if raw.len() > 1024 {
        return Err(bad("the query is longer than 1024 bytes"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(bad(format!(
                "unknown query parameter {k:?} (known: {})",
                allowed.join(", ")
            )));
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(bad(format!("query parameter {k:?} given twice")));
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    Ok(pairs)
}

async fn stats(State(app): Shared) -> Response {
    Json(app.feed.stats_json()).into_response()
}

async fn cameras(State(app): Shared) -> Response {
    let list: Vec<serde_json::Value> = app
        .feed
        .camera_names()
        .map(|name| {
            let state = app.feed.camera_state(name);
            serde_json::json!({
                "name": name,
                "state": state.as_ref().map_or("starting", |s| s.state.as_str()),
                "detail": state.and_then(|s| s.detail),
                "suspended_until": app.suspensions.until_text(name),
            })
        })
        .collect();
    Json(list).into_response()
}

fn encode_jpeg(frame: &LiveFrame) -> Option<Vec<u8>> {
    let tinted = tint(&frame.image, &frame.prob, frame.grid, frame.threshold);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&tinted)
        .ok()?;
    Some(jpeg)
}

/// The camera's latest JPEG, encoded off the async workers.
async fn jpeg_of(app: &Arc<App>, name: &str) -> Option<(u64, Arc<Vec<u8>>)> {
    let (app, name) = (app.clone(), name.to_string());
    tokio::task::spawn_blocking(move || app.feed.latest_jpeg(&name, encode_jpeg))
        .await
        .ok()
        .flatten()
}

/// The latest analysed frame with its gas tinted; `If-None-Match: "<seq>"` of the frame the
/// client has gets 304 until a newer one is there.
async fn latest_jpeg(State(app): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let name = match camera(&app, &name) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let seq = app.feed.latest_seq(&name);
    if seq == 0 {
        return error(StatusCode::NOT_FOUND, "no frame analysed yet");
    }
    let etag = |seq: u64| format!("\"{seq}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag(seq))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let Some((seq, jpeg)) = jpeg_of(&app, &name).await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the frame could not be encoded",
        );
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::ETAG, etag(seq)),
            (
                header::HeaderName::from_static("x-frame-seq"),
                seq.to_string(),
            ),
        ],
        Bytes::from(jpeg.as_ref().clone()),
    )
        .into_response()
}

/// `multipart/x-mixed-replace` JPEGs (what MJPEG viewers and home-automation camera
/// integrations read), at most `live_fps`, each new analysed frame once.
async fn live_mjpeg(State(app): Shared, Path(name): Path<String>) -> Response {
    let name = match camera(&app, &name) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let state = (app.clone(), name, 0u64);
    let stream = futures_util::stream::unfold(state, |(app, name, mut last)| async move {
        let mut shutdown = app.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return None;
            }
            if app.feed.latest_seq(&name) != last {
                if let Some((seq, jpeg)) = jpeg_of(&app, &name).await {
                    last = seq;
                    let mut part = format!(
                        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        jpeg.len()
                    )
                    .into_bytes();
                    part.extend_from_slice(&jpeg);
                    part.extend_from_slice(b"\r\n");
                    return Some((Ok::<_, Infallible>(Bytes::from(part)), (app, name, last)));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(app.frame_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    });
    (
        [
            (
                header::CONTENT_TYPE,
                "multipart/x-mixed-replace; boundary=frame",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `[[unix second, gas area %], …]` over the last `minutes` (1–60, default 60).
async fn area(State(app): Shared, Path(name): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let name = match camera(&app, &name) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut minutes = 60i64;
    match query(raw, &["minutes"]) {
        Ok(pairs) => {
            for (_, v) in pairs {
                match v.parse::<i64>() {
                    Ok(m) if (1..=60).contains(&m) => minutes = m,
                    _ => return bad("minutes is a whole number from 1 to 60"),
                }
            }
        }
        Err(e) => return e,
    }
    let points: Vec<(i64, f32)> = app
        .feed
        .area_history(&name, minutes * 60)
        .unwrap_or_default();
    Json(points).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    minutes: f64,
}

async fn suspend(
    State(app): Shared,
    Path(name): Path<String>,
    body: Result<Json<SuspendBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let name = match camera(&app, &name) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            let status = match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(
                status,
                &format!("the body is {{\"minutes\": N}} (0 resumes): {e}"),
            );
        }
    };
    if let Err(e) = Suspensions::check_minutes(body.minutes) {
        return bad(format!("{e:#}"));
    }
    if let Err(e) = app.suspensions.suspend(&name, body.minutes) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"));
    }
    let until = app.suspensions.until_text(&name);
    eprintln!(
        "camera {name}: alerts {} (dashboard)",
        until
            .as_deref()
            .map_or("resumed".to_string(), |t| format!("suspended until {t}"))
    );
    Json(serde_json::json!({ "camera": name, "suspended_until": until })).into_response()
}

fn parse_utc(key: &str, value: &str) -> Result<DateTime<Utc>, Response> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad(format!(
                "{key} is an RFC 3339 time, e.g. 2026-12-06T23:00:00Z"
            ))
        })
}

/// Newest first; `camera`, `zone`, `since`/`until` (events that overlap the span), `limit`
/// (1–1000, default 100).
async fn events(State(app): Shared, RawQuery(raw): RawQuery) -> Response {
    let pairs = match query(raw, &["camera", "zone", "since", "until", "limit"]) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (mut cam, mut zone, mut since, mut until, mut limit) = (None, None, None, None, 100);
    for (k, v) in pairs {
        match k.as_str() {
            "camera" => {
                if check_camera_name(&v).is_err() {
                    return bad("camera is 1–64 letters, digits, '-' or '_'");
                }
                cam = Some(v);
            }
            "zone" => {
                if v.is_empty() || v.len() > 128 {
                    return bad("zone is a zone's name (1–128 bytes)");
                }
                zone = Some(v);
            }
            "since" => match parse_utc("since", &v) {
                Ok(t) => since = Some(t),
                Err(e) => return e,
            },
            "until" => match parse_utc("until", &v) {
                Ok(t) => until = Some(t),
                Err(e) => return e,
            },
            _ => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return bad("limit is a whole number from 1 to 1000"),
            },
        }
    }
    let time = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let keep = |s: &EventSummary| {
        let r = &s.latest;
        let start = time(&r.start_utc);
        let end = r.end_utc.as_deref().and_then(time).or(Some(Utc::now()));
        cam.as_ref().is_none_or(|c| *c == r.camera)
            && zone.as_ref().is_none_or(|z| r.zones.contains(z))
            && since.is_none_or(|t| end.is_some_and(|e| e >= t))
            && until.is_none_or(|t| start.is_some_and(|s| s <= t))
    };
    let list: Vec<serde_json::Value> = app
        .feed
        .events(keep, limit)
        .iter()
        .map(|s| app.feed.summary_json(s))
        .collect();
    Json(list).into_response()
}

async fn event(State(app): Shared, Path(id): Path<String>) -> Response {
    match known_event(&app, &id) {
        Ok(s) => Json(app.feed.summary_json(&s)).into_response(),
        Err(e) => e,
    }
}

/// A file of a known event, `DIR/<folder>/<id>.<ext>`: streamed from disk (a clip of a
/// long leak can be gigabytes), with `Range` requests answered (seeking; Safari plays video
/// only so).
async fn event_file(app: &App, id: &str, folder: &str, ext: &str, request: Request) -> Response {
    let summary = match known_event(app, id) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let path = app
        .feed
        .dir()
        .join(folder)
        .join(format!("{}.{ext}", summary.latest.id));
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return if folder == "clips" {
            error(
                StatusCode::NOT_FOUND,
                "no clip (yet): a clip is written once its event has ended and post_capture passed",
            )
        } else {
            error(StatusCode::NOT_FOUND, "no snapshot for this event")
        };
    }
    match ServeFile::new(&path).oneshot(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read {}: {e}", path.display()),
        ),
    }
}

async fn snapshot(State(app): Shared, Path(id): Path<String>, request: Request) -> Response {
    event_file(&app, &id, "snapshots", "png", request).await
}

async fn clip(State(app): Shared, Path(id): Path<String>, request: Request) -> Response {
    event_file(&app, &id, "clips", "mp4", request).await
}

/// Marks the event a false positive: recorded in `events.jsonl` (and so on MQTT) by the
/// engine, which, with `watch.learn_false_positives`, ends it and suppresses its region.
async fn false_positive(State(app): Shared, Path(id): Path<String>) -> Response {
    let summary = match known_event(&app, &id) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if summary.false_positive.is_some() {
        return error(StatusCode::CONFLICT, ALREADY_MARKED);
    }
    let (reply, answer) = std::sync::mpsc::channel();
    let sent = app.feed.command(Command::FalsePositive {
        latest: Box::new(summary.latest),
        reply,
    });
    let answer = tokio::task::spawn_blocking(move || {
        sent.then(|| answer.recv_timeout(Duration::from_secs(10)).ok())
            .flatten()
    })
    .await
    .ok()
    .flatten();
    match answer {
        Some(Ok(_)) => match app.feed.event_summary(&id) {
            Some(s) => Json(app.feed.summary_json(&s)).into_response(),
            None => error(StatusCode::NOT_FOUND, "no such event"),
        },
        Some(Err(e)) if e == ALREADY_MARKED => error(StatusCode::CONFLICT, &e),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the watch did not take the mark (it is stopping); try again",
        ),
    }
}

/// Server-sent events: `event` (an event's summary at each of its records), `status` (a
/// camera's new state), `stats` (each `stats_interval`).
async fn live(State(app): Shared) -> Response {
    let mut shutdown = app.shutdown.clone();
    let updates = BroadcastStream::new(app.feed.subscribe())
        // A page too slow to keep up (over the channel's 1024 updates behind) would miss
        // some: its stream ends there, and the page's EventSource reconnects and reloads
        // the lists.
        .take_while(|u| std::future::ready(u.is_ok()))
        .filter_map(|u| async move { u.ok() })
        .map(|(name, data)| Ok::<_, Infallible>(Event::default().event(name).data(&*data)))
        .take_until(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
    Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response()
}
