//! The web dashboard of `fgstp watch` (`--listen`, `[watch.http]`): one page served from the
//! binary (`page.html`: no build step), and the JSON API it reads ([`api`]). axum on a
//! two-worker tokio runtime in a thread of its own; what it shows comes from the engine's
//! [`LiveFeed`], and false positives go back to the engine as commands.
//!
//! Security: it listens on the loopback unless a token is set (`watch.http.token`,
//! `token_file` or `token_env`); with a token every route but `/healthz` and `/login` needs it,
//! as `Authorization: Bearer <token>` or the session cookie `/login` sets. On the loopback
//! without a token, requests must name the loopback in `Host` (a web page elsewhere cannot
//! reach it through DNS rebinding), and every POST must be `application/json` (a form on
//! another site cannot send one without the browser asking first). Files are only served from
//! `DIR/snapshots` and `DIR/clips`, by the id of an event the dashboard knows.

mod api;
mod app;

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};

use app::{error, App};

use super::feed::LiveFeed;
use super::suspend::Suspensions;
use crate::run_config::watch::HttpConfig;

/// The page (HTML, CSS and JavaScript in one file).
const PAGE: &str = include_str!("page.html");
/// The session cookie `/login` sets.
const COOKIE: &str = "fgstp_session";
/// Sessions kept (the oldest are logged out first).
const MAX_SESSIONS: usize = 256;
/// Largest request body (the API takes small JSON objects).
const MAX_BODY: usize = 16 * 1024;

/// The running dashboard.
pub struct Dashboard {
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The token from `token`, `token_file` (first line) or `token_env`; None without one.
fn token(cfg: &HttpConfig) -> Result<Option<String>> {
    let token = if !cfg.token_file.is_empty() {
        let text = std::fs::read_to_string(&cfg.token_file)
            .with_context(|| format!("watch.http.token_file {}: cannot read it", cfg.token_file))?;
        text.lines().next().unwrap_or("").trim().to_string()
    } else if !cfg.token_env.is_empty() {
        std::env::var(&cfg.token_env).with_context(|| {
            format!(
                "watch.http.token_env: the environment variable {} is not set",
                cfg.token_env
            )
        })?
    } else {
        cfg.token.clone()
    };
    // As a token is compared: without the spaces around it.
    let token = token.trim().to_string();
    if token.is_empty() {
        if !cfg.token_file.is_empty() || !cfg.token_env.is_empty() {
            bail!("watch.http: the token given by token_file/token_env is empty");
        }
        return Ok(None);
    }
    ensure!(
        token.len() >= 12,
        "watch.http: the token must have at least 12 characters"
    );
    Ok(Some(token))
}

impl Dashboard {
    /// Listens on `cfg.listen` and serves `feed`. Fails (before any camera is opened) when
    /// the address is taken, or reachable from other machines without a token.
    pub fn start(cfg: &HttpConfig, feed: Arc<LiveFeed>, suspensions: Suspensions) -> Result<Self> {
        let token = token(cfg)?;
        let addrs: Vec<SocketAddr> = cfg
            .listen
            .to_socket_addrs()
            .with_context(|| {
                format!(
                    "--listen / watch.http.listen {:?}: not a host:port (e.g. 127.0.0.1:8090)",
                    cfg.listen
                )
            })?
            .collect();
        let Some(&addr) = addrs.first() else {
            bail!("--listen {:?}: the name has no address", cfg.listen);
        };
        let loopback = addrs.iter().all(|a| a.ip().is_loopback());
        ensure!(
            loopback || token.is_some(),
            "--listen {}: other machines can reach this address; set watch.http.token \
             (or token_file, token_env) so that only those who have it can, or listen on \
             127.0.0.1",
            cfg.listen
        );
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("--listen {}: cannot listen there (in use?)", cfg.listen))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let hosts = if loopback && token.is_none() {
            let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
                .iter()
                .map(|h| format!("{h}:{port}"))
                .collect();
            if port == 80 {
                hosts.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
            }
            hosts
        } else {
            Vec::new()
        };
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(App {
            feed,
            suspensions,
            token: token.clone(),
            hosts,
            sessions: Mutex::new(VecDeque::new()),
            frame_interval: Duration::from_secs_f64(1.0 / cfg.live_fps),
            shutdown: shutdown_rx.clone(),
            refusals: tokio::sync::Mutex::new(()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("watch-http")
            .enable_all()
            .build()?;
        let client_timeout = Duration::from_secs_f64(cfg.client_timeout);
        let router = router(app, client_timeout);
        let thread = std::thread::Builder::new()
            .name("watch-http-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("dashboard: {e}"),
                    };
                    let listener = CappedListener {
                        inner: listener,
                        slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
                    };
                    let serve = serve(listener, router, client_timeout, shutdown_rx.clone());
                    // Streams end at the signal; a client that keeps a connection open does not
                    // hold the watch's exit up for more than 2 s.
                    let mut signal = shutdown_rx;
                    let deadline = async move {
                        let _ = signal.wait_for(|s| *s).await;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = deadline => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        eprintln!(
            "dashboard: http://{}/{}",
            listener_display(&cfg.listen, port),
            if token.is_some() {
                " (token required)"
            } else {
                ""
            }
        );
        Ok(Self {
            shutdown: shutdown_tx,
            thread: Some(thread),
        })
    }

    /// Stops serving (open streams end; the page shows the connection lost).
    pub fn finish(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connections the dashboard holds open at once. The watch's own files, clips and camera
/// connections share the process's file-descriptor limit (often 1024): connections opened
/// and left idle by anyone who can reach the port must not use it up. Beyond the cap, new
/// connections wait in the kernel's queue until one closes.
const MAX_CONNECTIONS: usize = 256;

/// Serves HTTP/1.1 on `listener` until `stop`. A client has `client_timeout` to send a
/// request's head (on a kept-alive connection: from the end of the previous response), and a
/// response waits that long at most for a client that stopped reading; bodies are bounded by
/// [`read_body_in_time`]. axum's own `serve` bounds none of these, so a connection opened and
/// left silent, or fed a byte now and then, held its slot for good.
async fn serve(
    mut listener: CappedListener,
    router: Router,
    client_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let io = tokio::select! {
            io = listener.accept(client_timeout) => io,
            // Ended connections are reaped as they end (the set would keep them all).
            Some(_) = connections.join_next() => continue,
            _ = stop.wait_for(|s| *s) => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(client_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            // Errors are clients that went away or timed out: nothing to report.
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|s| *s) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    // Answers under way are finished (live streams end at the signal); the caller bounds the
    // wait.
    while connections.join_next().await.is_some() {}
}

/// A TCP listener that accepts only while fewer than its slots are taken.
struct CappedListener {
    inner: tokio::net::TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
}

impl CappedListener {
    /// The next connection, once a slot is free; its writes fail after `write_timeout` without
    /// progress.
    async fn accept(&mut self, write_timeout: Duration) -> Capped {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((io, _)) => {
                    return Capped {
                        io,
                        _slot: slot,
                        write_timeout,
                        stalled: None,
                    }
                }
                // A connection reset before it was taken, or no descriptor left for now (the
                // watch's own files): try again shortly rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A connection that gives its slot back when it closes.
struct Capped {
    io: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Started when a write found the client's window full; reset by any progress.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Capped {
    /// `op` on the connection, as [`Capped::unless_stalled`] passes it on.
    fn write_op<T>(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        op: impl FnOnce(
            std::pin::Pin<&mut tokio::net::TcpStream>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        let this = self.get_mut();
        let poll = op(std::pin::Pin::new(&mut this.io), cx);
        this.unless_stalled(cx, poll)
    }

    /// A write's outcome, or an error once writes have waited `write_timeout` for the client
    /// to read (a live stream to a client that stopped reading would hold its slot forever).
    fn unless_stalled<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match std::future::Future::poll(stalled.as_mut(), cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for Capped {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.write_op(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.write_op(cx, |io, cx| io.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// `host:port` with the port bound (port 0 asks for a free one).
fn listener_display(listen: &str, port: u16) -> String {
    match listen.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => listen.to_string(),
    }
}

fn router(app: Arc<App>, client_timeout: Duration) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/login", get(login_page).post(login))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(api::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .layer(axum::middleware::from_fn_with_state(
            client_timeout,
            read_body_in_time,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(PAGE),
    )
}

/// Reads a request's body whole (at most [`MAX_BODY`]) within `client_timeout` before it is
/// looked at: a body sent a byte now and then would otherwise hold its connection (and the
/// handler) as long as the client likes.
async fn read_body_in_time(
    State(client_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes =
        match tokio::time::timeout(client_timeout, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large (or was cut off)",
                )
            }
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body took too long",
                )
            }
        };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// What a request's credentials are worth.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Granted,
    /// No token and no session of this run: a first visit, or a page from before a restart.
    Missing,
    /// A token that does not match: a guess, perhaps (sessions are random, not guessed).
    Refused,
}

impl App {
    fn access(&self, headers: &HeaderMap) -> Access {
        let Some(token) = &self.token else {
            return Access::Granted;
        };
        let granted = |ok: bool| if ok { Access::Granted } else { Access::Refused };
        // The scheme's name is case-insensitive (RFC 9110).
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            })
        {
            return granted(same(bearer.trim(), token));
        }
        let Some(session) = cookie(headers, COOKIE) else {
            return Access::Missing;
        };
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.iter().any(|s| same(s, &session)) {
            Access::Granted
        } else {
            Access::Missing
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Host check, token, and JSON-only POSTs, before any route.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !app.hosts.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !app.hosts.contains(&host) {
            return error(
                StatusCode::FORBIDDEN,
                "this dashboard answers requests for 127.0.0.1 or localhost only",
            );
        }
    }
    let path = request.uri().path();
    if path == "/healthz" || path == "/login" {
        return next.run(request).await;
    }
    let access = app.access(headers);
    if access != Access::Granted {
        if access == Access::Refused {
            app.refuse_slowly().await;
        }
        if request.method() == Method::GET && path == "/" {
            return Redirect::to("/login").into_response();
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "a token is required (Authorization: Bearer <token>, or log in at /login)",
        );
    }
    if request.method() == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
        if !json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST requests take Content-Type: application/json",
            );
        }
    }
    next.run(request).await
}

const LOGIN_PAGE: &str = "<!doctype html><meta charset=utf-8><title>fgstp watch — log in</title>\
<style>body{font:16px system-ui;margin:15vh auto;max-width:22em}input,button{font:inherit;\
padding:.4em;width:100%;box-sizing:border-box;margin:.3em 0}</style>\
<h1>fgstp watch</h1><form method=post action=/login><label>Token \
<input type=password name=token autocomplete=current-password autofocus></label>\
<button>Log in</button></form>";

async fn login_page(State(app): State<Arc<App>>) -> Response {
    if app.token.is_none() {
        return Redirect::to("/").into_response();
    }
    Html(LOGIN_PAGE).into_response()
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(State(app): State<Arc<App>>, Form(form): Form<Login>) -> Response {
    let Some(token) = &app.token else {
        return Redirect::to("/").into_response();
    };
    if !same(form.token.trim(), token) {
        app.refuse_slowly().await;
        return (
            StatusCode::UNAUTHORIZED,
            Html(format!("{LOGIN_PAGE}<p>Wrong token.</p>")),
        )
            .into_response();
    }
    let Some(session) = random_hex(32) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no random source");
    };
    {
        let mut sessions = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.push_back(session.clone());
        while sessions.len() > MAX_SESSIONS {
            sessions.pop_front();
        }
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// `bytes` random bytes from the system, as hex.
fn random_hex(bytes: usize) -> Option<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .ok()?
        .read_exact(&mut buf)
        .ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `test` with a capped listener of `slots` on a free port of 127.0.0.1 (and its
    /// address).
    fn on_a_capped_listener<F: std::future::Future<Output = ()>>(
        slots: usize,
        test: impl FnOnce(CappedListener, SocketAddr) -> F,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = CappedListener {
                inner: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            };
            let addr = listener.inner.local_addr().unwrap();
            test(listener, addr).await;
        });
    }

    #[test]
    fn the_listener_holds_at_most_its_slots_and_frees_one_when_a_connection_closes() {
        on_a_capped_listener(2, |mut listener, addr| async move {
            let mut clients = Vec::new();
            for _ in 0..3 {
                clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            }
            let write_timeout = Duration::from_secs(5);
            let first = listener.accept(write_timeout).await;
            let _second = listener.accept(write_timeout).await;
            let wait = Duration::from_millis(300);
            // The third waits (in the kernel's queue, no descriptor of ours) …
            assert!(tokio::time::timeout(wait, listener.accept(write_timeout))
                .await
                .is_err());
            // … until a connection closes.
            drop(first);
            let third = tokio::time::timeout(wait, listener.accept(write_timeout)).await;
            assert!(third.is_ok());
        });
    }

    #[test]
    fn writes_to_a_client_that_stopped_reading_fail_after_the_timeout() {
        use tokio::io::AsyncWriteExt;
        on_a_capped_listener(1, |mut listener, addr| async move {
            // Connected and never read from: the kernel's buffers fill, then writes wait.
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut connection = listener.accept(Duration::from_millis(300)).await;
            let chunk = vec![0u8; 1 << 16];
            let mut written = 0usize;
            let writes = async {
                loop {
                    match connection.write_all(&chunk).await {
                        Ok(()) => written += chunk.len(),
                        Err(e) => break e,
                    }
                }
            };
            let error = tokio::time::timeout(Duration::from_secs(10), writes)
                .await
                .expect("writes to a client that reads nothing still wait after 10 s");
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
            assert!(written > 0, "the first writes fit the kernel's buffers");
        });
    }
}
