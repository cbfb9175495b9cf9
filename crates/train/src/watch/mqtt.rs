//! MQTT: what `fgstp watch` writes under its output folder, published to a broker as it is
//! written (Frigate's conventions, for gas leaks).
//!
//! Topics under `watch.mqtt.topic_prefix` (`fgstp`):
//! - `fgstp/available`: `online` / `offline`, retained; the broker's last will says `offline`
//!   (retained state is published at QoS 0, and again on every new connection);
//! - `fgstp/<camera>/status`: the camera's state (`online`, `offline`, `reconnecting`,
//!   `paused`, `ended`, `stopped`, `error`), retained;
//! - `fgstp/<camera>/leaks`: each line of `events.jsonl` (`new`, `update`, `end`,
//!   `false_positive`), QoS 1;
//! - `fgstp/<camera>/leak`: `ON` while the camera has an open event, else `OFF`, retained;
//! - `fgstp/<camera>/snapshot`: the event's PNG, at `new` and `end`;
//! - `fgstp/<camera>/stats`: the camera's entry of `stats.json`, each `stats_interval`;
//! - `fgstp/<camera>/suspended`: until when the camera's alerts are muted (RFC 3339), or
//!   `OFF`, retained; set by the command `fgstp/<camera>/suspend` (minutes, 0 resumes): the
//!   events of a suspended camera are written, marked `suspended_until`, and not published.
//!
//! Events are never lost: `events.jsonl` is the queue. A cursor file (`DIR/mqtt-cursor`)
//! holds how far the broker has acknowledged (PUBACK); the next line is sent only after the
//! previous one was acknowledged, so a broker down at start or mid-run, or a restart of
//! `fgstp watch` in between, delays events but neither drops nor reorders them (a line whose
//! acknowledgement was cut off by a break is sent again: at least once, like QoS 1 itself).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rumqttc::{
    Client, Connection, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};

use super::suspend::Suspensions;
use crate::run_config::watch::MqttConfig;

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First wait after the connection breaks.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long a connection must hold before the backoff starts over.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// A line not acknowledged this long on a live connection is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection state the follower needs from the network thread.
#[derive(Default)]
struct Link {
    /// Connections made so far (each one: retained state published again).
    generation: AtomicU64,
    connected: AtomicBool,
}

/// The publisher: a network thread (rumqttc's event loop, reconnecting) and a follower thread
/// (tails the output files, publishes).
pub struct MqttPublisher {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Where the broker is and how to log in, from `[watch.mqtt]`.
fn options(cfg: &MqttConfig) -> Result<MqttOptions> {
    let (tls, rest) = if let Some(rest) = cfg.url.strip_prefix("mqtt://") {
        (false, rest)
    } else if let Some(rest) = cfg.url.strip_prefix("mqtts://") {
        (true, rest)
    } else {
        bail!(
            "watch.mqtt.url {:?}: use mqtt://host[:port] or mqtts://host[:port]",
            cfg.url
        );
    };
    let authority = rest.split('/').next().unwrap_or("");
    ensure!(
        !authority.contains('@'),
        "watch.mqtt.url: no user or password in the URL; set watch.mqtt.username and \
         watch.mqtt.password_file or watch.mqtt.password_env"
    );
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .with_context(|| format!("watch.mqtt.url: bad port {port:?}"))?,
        ),
        None => (authority, if tls { 8883 } else { 1883 }),
    };
    ensure!(!host.is_empty(), "watch.mqtt.url {:?}: no host", cfg.url);
    let client_id = if cfg.client_id.is_empty() {
        // The host and process too: two watches with one id would take turns throwing each
        // other off the broker (a broker drops the older session of an id).
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!(
            "fgstp-{}-{}-{}",
            cfg.topic_prefix.replace('/', "-"),
            host.trim(),
            std::process::id()
        )
    } else {
        cfg.client_id.clone()
    };
    let mut options = MqttOptions::new(client_id, host.trim_matches(['[', ']']), port);
    options
        .set_keep_alive(Duration::from_secs_f64(cfg.keep_alive))
        .set_clean_session(true)
        .set_max_packet_size(64 << 20, 64 << 20)
        .set_last_will(LastWill::new(
            format!("{}/available", cfg.topic_prefix),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if !cfg.username.is_empty() {
        options.set_credentials(cfg.username.clone(), password(cfg)?);
    }
    if tls {
        options.set_transport(Transport::tls_with_config(tls_config(cfg)?));
    }
    Ok(options)
}

/// The password from `password_file` (first line) or `password_env`; empty without either.
fn password(cfg: &MqttConfig) -> Result<String> {
    if !cfg.password_file.is_empty() {
        let text = std::fs::read_to_string(&cfg.password_file).with_context(|| {
            format!(
                "watch.mqtt.password_file {}: cannot read it",
                cfg.password_file
            )
        })?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    if !cfg.password_env.is_empty() {
        return std::env::var(&cfg.password_env).with_context(|| {
            format!(
                "watch.mqtt.password_env: the environment variable {} is not set",
                cfg.password_env
            )
        });
    }
    Ok(String::new())
}

fn tls_config(cfg: &MqttConfig) -> Result<TlsConfiguration> {
    use rustls::RootCertStore;
    // ring: rustls's other provider, aws-lc, needs cmake and a long C build. rustls 0.23.48
    // deprecates ring's provider for lacking post-quantum key exchange, which MQTT brokers do
    // not offer either.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    if cfg.ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        ensure!(
            !roots.is_empty(),
            "watch.mqtt: mqtts:// needs certificate authorities: none found on this system; \
             set watch.mqtt.ca_file to the broker's CA (PEM)"
        );
    } else {
        let pem = std::fs::read(&cfg.ca_file)
            .with_context(|| format!("watch.mqtt.ca_file {}: cannot read it", cfg.ca_file))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.with_context(|| format!("watch.mqtt.ca_file {}: not PEM", cfg.ca_file))?;
            roots
                .add(cert)
                .with_context(|| format!("watch.mqtt.ca_file {}: bad certificate", cfg.ca_file))?;
        }
        ensure!(
            !roots.is_empty(),
            "watch.mqtt.ca_file {}: no certificate in it",
            cfg.ca_file
        );
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

impl MqttPublisher {
    /// Starts publishing what is written under `out` for `cameras`. Returns at once: a broker
    /// that cannot be reached is retried in the background while the watch goes on.
    pub fn start(
        cfg: &MqttConfig,
        out: &Path,
        cameras: Vec<String>,
        stats_interval: f64,
        suspensions: Suspensions,
    ) -> Result<Self> {
        let options = options(cfg)?;
        let (client, connection) = Client::new(options, 256);
        let link = Arc::new(Link::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (acks_tx, acks_rx) = mpsc::channel();
        let network = {
            let (link, stop) = (link.clone(), stop.clone());
            let commands = Commands {
                url: cfg.url.clone(),
                client: client.clone(),
                prefix: cfg.topic_prefix.clone(),
                cameras: cameras.clone(),
                suspensions: suspensions.clone(),
            };
            std::thread::Builder::new()
                .name("watch-mqtt-net".into())
                .spawn(move || network_loop(connection, &commands, &link, &stop, acks_tx))?
        };
        let follower = {
            let mut follower = Follower {
                client,
                prefix: cfg.topic_prefix.clone(),
                snapshot_max_bytes: cfg.snapshot_max_bytes,
                oversized_said: false,
                out: out.to_path_buf(),
                cameras,
                link,
                acks: acks_rx,
                stats_interval: Duration::from_secs_f64(stats_interval),
                generation: 0,
                status_offset: file_len(&out.join("status.jsonl")),
                states: BTreeMap::new(),
                open: BTreeMap::new(),
                in_flight: None,
                cursor: None,
                cursor_unsaved: false,
                muted: BTreeSet::new(),
                last_stats: Instant::now(),
                suspension_changes: suspensions.changes(),
                suspensions: suspensions.clone(),
            };
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("watch-mqtt".into())
                .spawn(move || follower.run(&stop))?
        };
        Ok(Self {
            stop,
            threads: vec![follower, network],
        })
    }

    /// Publishes what is left (waiting up to `grace` for the broker), `available` = `offline`,
    /// and disconnects.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What the network thread tells the follower about QoS 1 publishes.
enum Ack {
    /// rumqttc gave the publish this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
}

/// What the network thread needs to answer the commands that come in.
struct Commands {
    /// The broker's URL, for messages.
    url: String,
    client: Client,
    prefix: String,
    cameras: Vec<String>,
    suspensions: Suspensions,
}

impl Commands {
    /// `<prefix>/<camera>/suspend` with minutes (0 resumes): mutes the camera's alerts and
    /// publishes the end of the suspension on `<prefix>/<camera>/suspended` (retained; `OFF`
    /// when not suspended).
    fn handle(&self, topic: &str, payload: &[u8]) {
        let Some(camera) = topic
            .strip_prefix(&format!("{}/", self.prefix))
            .and_then(|rest| rest.strip_suffix("/suspend"))
        else {
            return;
        };
        if !self.cameras.iter().any(|c| c == camera) {
            eprintln!("mqtt: {topic}: no camera {camera:?} in this watch");
            return;
        }
        let text = String::from_utf8_lossy(payload);
        let done = text
            .trim()
            .parse::<f64>()
            .map_err(anyhow::Error::from)
            .and_then(|minutes| self.suspensions.suspend(camera, minutes));
        match done {
            Ok(_) => {
                let until = self.suspensions.until_text(camera);
                eprintln!(
                    "camera {camera}: alerts {}",
                    until.map_or("resumed".to_string(), |t| format!("suspended until {t}"))
                );
                self.publish_suspended(camera);
            }
            Err(e) => {
                // Enough of it to recognise; a payload may be megabytes.
                let shown: String = text.trim().chars().take(64).collect();
                eprintln!("mqtt: {topic} {shown:?}: {e:#} (send minutes, 0 to resume)")
            }
        }
    }

    fn publish_suspended(&self, camera: &str) {
        let state = self
            .suspensions
            .until_text(camera)
            .unwrap_or_else(|| "OFF".into());
        let _ = self.client.try_publish(
            format!("{}/{camera}/suspended", self.prefix),
            QoS::AtMostOnce,
            true,
            state.into_bytes(),
        );
    }
}

fn network_loop(
    mut connection: Connection,
    commands: &Commands,
    link: &Link,
    stop: &AtomicBool,
    acks: mpsc::Sender<Ack>,
) {
    let (client, prefix) = (&commands.client, commands.prefix.as_str());

    let mut backoff = FIRST_BACKOFF;
    let mut connected_at: Option<Instant> = None;
    let mut stopping_since: Option<Instant> = None;
    let mut disconnecting = false;
    let mut last_error: Option<String> = None;
    loop {
        if stop.load(Ordering::Relaxed) && stopping_since.is_none() {
            stopping_since = Some(Instant::now());
        }
        // The follower disconnects once done; this is the bound if the broker is away.
        if stopping_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            return;
        }
        // While connecting, one poll is the whole attempt (a cancelled poll would drop a
        // connection that takes longer than the wait: a distant broker, a TLS handshake);
        // rumqttc bounds it by its connection timeout (5 s).
        let wait = if link.connected.load(Ordering::Relaxed) {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        match connection.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                // The backoff starts over only once the connection has held (see below).
                connected_at = Some(Instant::now());
                if last_error.take().is_some() {
                    eprintln!("mqtt: connected to {}", commands.url);
                }
                let _ = client.try_subscribe(format!("{prefix}/+/suspend"), QoS::AtLeastOnce);
                for camera in &commands.cameras {
                    commands.publish_suspended(camera);
                }
                link.connected.store(true, Ordering::Relaxed);
                link.generation.fetch_add(1, Ordering::Relaxed);
            }
            // A retained command would come back at every reconnect (a week's suspension
            // renewed each time, or a dashboard's suspension undone): commands are live only.
            Ok(Ok(Event::Incoming(Packet::Publish(command)))) if command.retain => {
                eprintln!(
                    "mqtt: {} ignored: a retained message (publish commands without -r/retain)",
                    command.topic
                );
            }
            Ok(Ok(Event::Incoming(Packet::Publish(command)))) => {
                commands.handle(&command.topic, &command.payload);
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                let _ = acks.send(Ack::Acked(ack.pkid));
            }
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) if pkid != 0 => {
                let _ = acks.send(Ack::Sent(pkid));
            }
            // The broker closes the connection after DISCONNECT (polling on until then sends
            // it for sure: a connection dropped before it would fire the last will).
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => disconnecting = true,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                link.connected.store(false, Ordering::Relaxed);
                // After our DISCONNECT the broker closing the connection is the goodbye.
                if disconnecting {
                    return;
                }
                // Each new reason once, not every attempt.
                let reason = e.to_string();
                if last_error.as_deref() != Some(reason.as_str()) {
                    let next = if stopping_since.is_some() {
                        "stopping"
                    } else {
                        "trying again"
                    };
                    eprintln!("mqtt: {}: {reason} ({next})", commands.url);
                    last_error = Some(reason);
                }
                if stopping_since.is_some() {
                    return;
                }
                // A broker that accepts and then drops the client (an ACL refusing a publish,
                // another client with this id) is backed off like one that refuses.
                if connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
                {
                    backoff = FIRST_BACKOFF;
                }
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A line of `events.jsonl` sent and not yet acknowledged.
struct InFlight {
    /// Where the line ends in the file (the cursor once acknowledged).
    end: u64,
    line: String,
    camera: String,
    pkid: Option<u16>,
    sent: Instant,
    generation: u64,
}

struct Follower {
    client: Client,
    prefix: String,
    /// Larger snapshots are not published (0: no limit).
    snapshot_max_bytes: u64,
    /// Whether a snapshot over the limit was reported (once a run).
    oversized_said: bool,
    out: PathBuf,
    cameras: Vec<String>,
    link: Arc<Link>,
    acks: mpsc::Receiver<Ack>,
    stats_interval: Duration,
    /// The connection generation whose retained state was published.
    generation: u64,
    /// How far `status.jsonl` was read (from its end at start: this run's states only).
    status_offset: u64,
    /// Each camera's latest state.
    states: BTreeMap<String, String>,
    /// Each camera's open events (`leak` is `ON` while there is one).
    open: BTreeMap<String, BTreeSet<String>>,
    in_flight: Option<InFlight>,
    /// How far `events.jsonl` is acknowledged, once known here (`mqtt-cursor` is its copy for
    /// the next start: a cursor that cannot be saved must not resend the line).
    cursor: Option<u64>,
    /// Whether the last save of the cursor failed (reported once until one succeeds).
    cursor_unsaved: bool,
    /// Events whose `new` came while their camera was suspended: muted to their end.
    muted: BTreeSet<String>,
    last_stats: Instant,
    /// The suspensions (and how many changes of them were published).
    suspensions: Suspensions,
    suspension_changes: u64,
}

impl Follower {
    fn run(&mut self, stop: &AtomicBool) {
        let mut stopping_since: Option<Instant> = None;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && stopping_since.is_none() {
                stopping_since = Some(Instant::now());
            }
            if self.link.connected.load(Ordering::Relaxed) {
                if let Err(e) = self.step() {
                    eprintln!("mqtt: {e:#}");
                }
            }
            // Done when stopping and every event is out, or after a grace period.
            if let Some(since) = stopping_since {
                let drained = self.in_flight.is_none()
                    && next_line(&self.out.join("events.jsonl"), self.cursor()).is_none();
                if (drained && self.link.connected.load(Ordering::Relaxed))
                    || since.elapsed() > Duration::from_secs(3)
                {
                    if self.link.connected.load(Ordering::Relaxed) {
                        // The final stats and states (a short run may end before the first
                        // stats_interval).
                        let _ = self.follow_status();
                        self.publish_stats();
                        self.publish_retained(&format!("{}/available", self.prefix), "offline");
                    }
                    let _ = self.client.disconnect();
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn step(&mut self) -> Result<()> {
        let generation = self.link.generation.load(Ordering::Relaxed);
        if generation != self.generation {
            // A new connection (a new MQTT session): retained state again, and the line in
            // flight, if any, sent again.
            self.generation = generation;
            self.publish_retained(&format!("{}/available", self.prefix), "online");
            for camera in self.cameras.clone() {
                let leak = if self.open.get(&camera).is_some_and(|o| !o.is_empty()) {
                    "ON"
                } else {
                    "OFF"
                };
                self.publish_retained(&format!("{}/{camera}/leak", self.prefix), leak);
            }
            for (camera, state) in self.states.clone() {
                self.publish_retained(&format!("{}/{camera}/status", self.prefix), &state);
            }
        }
        // A suspension changed elsewhere (the dashboard); the MQTT command publishes its own.
        let changes = self.suspensions.changes();
        if changes != self.suspension_changes {
            self.suspension_changes = changes;
            for camera in &self.cameras {
                let state = self
                    .suspensions
                    .until_text(camera)
                    .unwrap_or_else(|| "OFF".into());
                self.publish_retained(&format!("{}/{camera}/suspended", self.prefix), &state);
            }
        }
        self.follow_status()?;
        self.follow_events()?;
        if self.last_stats.elapsed() >= self.stats_interval {
            self.last_stats = Instant::now();
            self.publish_stats();
        }
        Ok(())
    }

    /// Retained state, at QoS 0: it is published again on every new connection, and only the
    /// event lines may take packet ids (the follower pairs the one in flight with its PUBACK).
    fn publish_retained(&self, topic: &str, payload: &str) {
        let _ = self
            .client
            .try_publish(topic, QoS::AtMostOnce, true, payload.as_bytes().to_vec());
    }

    fn follow_status(&mut self) -> Result<()> {
        let path = self.out.join("status.jsonl");
        while let Some((line, end)) = next_line(&path, self.status_offset) {
            self.status_offset = end;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let (Some(camera), Some(state)) = (v["camera"].as_str(), v["state"].as_str()) else {
                continue;
            };
            self.states.insert(camera.to_string(), state.to_string());
            self.publish_retained(&format!("{}/{camera}/status", self.prefix), state);
        }
        Ok(())
    }

    fn cursor_path(&self) -> PathBuf {
        self.out.join("mqtt-cursor")
    }

    /// How far `events.jsonl` has been acknowledged by the broker (bytes); from the start of a
    /// file shorter than that (replaced or rotated since: none of its lines were sent).
    fn cursor(&self) -> u64 {
        let cursor = self.cursor.unwrap_or_else(|| {
            std::fs::read_to_string(self.cursor_path())
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0)
        });
        if cursor > file_len(&self.out.join("events.jsonl")) {
            0
        } else {
            cursor
        }
    }

    /// Moves the cursor to `end` and saves it. A save that fails (a full or read-only disk) is
    /// an error once, until a save succeeds; the cursor moves on regardless, so no line is
    /// published twice in this run (after a restart, lines since the last save are resent).
    fn set_cursor(&mut self, end: u64) -> Result<()> {
        self.cursor = Some(end);
        let tmp = self.out.join("mqtt-cursor.tmp");
        let saved = std::fs::write(&tmp, format!("{end}\n"))
            .and_then(|()| std::fs::rename(&tmp, self.cursor_path()));
        match saved {
            Ok(()) => self.cursor_unsaved = false,
            Err(e) if !self.cursor_unsaved => {
                self.cursor_unsaved = true;
                return Err(e).with_context(|| {
                    format!(
                        "cannot save {} (events go on; after a restart those since are sent again)",
                        self.cursor_path().display()
                    )
                });
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn follow_events(&mut self) -> Result<()> {
        while let Ok(ack) = self.acks.try_recv() {
            let Some(flight) = self.in_flight.as_mut() else {
                continue;
            };
            match ack {
                Ack::Sent(pkid) if flight.pkid.is_none() => flight.pkid = Some(pkid),
                Ack::Acked(pkid) if flight.pkid == Some(pkid) => {
                    let flight = self.in_flight.take().expect("in flight");
                    let saved = self.set_cursor(flight.end);
                    self.acknowledged(&flight);
                    saved?;
                }
                _ => {}
            }
        }
        if let Some(flight) = &self.in_flight {
            let generation = self.link.generation.load(Ordering::Relaxed);
            // Lost with its connection (a new session starts empty), or unanswered.
            if flight.generation != generation || flight.sent.elapsed() > ACK_TIMEOUT {
                let (line, camera) = (flight.line.clone(), flight.camera.clone());
                let end = flight.end;
                self.send_event(line, camera, end);
            }
            return Ok(());
        }
        let path = self.out.join("events.jsonl");
        if let Some((line, end)) = next_line(&path, self.cursor()) {
            let record = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
            let (camera, id) = (record["camera"].as_str(), record["id"].as_str());
            match (camera, id) {
                // Written while its camera was suspended (from its `new` on): not an alert.
                (Some(_), Some(id))
                    if record["suspended_until"].is_string() || self.muted.contains(id) =>
                {
                    if record["type"] == "end" {
                        self.muted.remove(id);
                    } else {
                        self.muted.insert(id.to_string());
                    }
                    self.set_cursor(end)?;
                }
                (Some(camera), _) => self.send_event(line, camera.to_string(), end),
                // Not an event line (cut by a crash and ended by the next start): passed over.
                _ => self.set_cursor(end)?,
            }
        }
        Ok(())
    }

    fn send_event(&mut self, line: String, camera: String, end: u64) {
        // Stale packet ids of an earlier send are of no use now.
        while self.acks.try_recv().is_ok() {}
        let _ = self.client.try_publish(
            format!("{}/{camera}/leaks", self.prefix),
            QoS::AtLeastOnce,
            false,
            line.as_bytes().to_vec(),
        );
        self.in_flight = Some(InFlight {
            end,
            line,
            camera,
            pkid: None,
            sent: Instant::now(),
            generation: self.link.generation.load(Ordering::Relaxed),
        });
    }

    /// After the broker took an event line: `leak` ON/OFF and the snapshot.
    fn acknowledged(&mut self, flight: &InFlight) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&flight.line) else {
            return;
        };
        let (Some(kind), Some(id)) = (v["type"].as_str(), v["id"].as_str()) else {
            return;
        };
        let camera = &flight.camera;
        let open = self.open.entry(camera.clone()).or_default();
        let was_on = !open.is_empty();
        match kind {
            "new" => {
                open.insert(id.to_string());
            }
            "end" => {
                open.remove(id);
            }
            _ => return,
        }
        let is_on = !open.is_empty();
        if was_on != is_on || kind == "new" {
            let leak = if is_on { "ON" } else { "OFF" };
            self.publish_retained(&format!("{}/{camera}/leak", self.prefix), leak);
        }
        let snapshot = self.out.join("snapshots").join(format!("{id}.png"));
        let Ok(size) = std::fs::metadata(&snapshot).map(|m| m.len()) else {
            return;
        };
        // A broker closes the connection of a client that sends more than it takes (EMQX: 1 MB
        // by default, AWS IoT: 128 KiB), and every event would cost a reconnect.
        if self.snapshot_max_bytes > 0 && size > self.snapshot_max_bytes {
            if !self.oversized_said {
                self.oversized_said = true;
                eprintln!(
                    "mqtt: the snapshot of event {id} has {size} bytes, over \
                     watch.mqtt.snapshot_max_bytes ({}): not published, nor are later ones \
                     over it (raise the limit if the broker takes more; 0: no limit)",
                    self.snapshot_max_bytes
                );
            }
            return;
        }
        if let Ok(png) = std::fs::read(&snapshot) {
            let _ = self.client.try_publish(
                format!("{}/{camera}/snapshot", self.prefix),
                QoS::AtMostOnce,
                false,
                png,
            );
        }
    }

    fn publish_stats(&self) {
        let Ok(text) = std::fs::read_to_string(self.out.join("stats.json")) else {
            return;
        };
        let Ok(serde_json::Value::Object(cameras)) = serde_json::from_str(&text) else {
            return;
        };
        for (camera, stats) in cameras {
            let _ = self.client.try_publish(
                format!("{}/{camera}/stats", self.prefix),
                QoS::AtMostOnce,
                false,
                stats.to_string().into_bytes(),
            );
        }
    }
}

/// The complete line of `path` that starts at byte `from` (without its newline) and where the
/// next one starts; `None` when no complete line is there yet.
fn next_line(path: &Path, from: u64) -> Option<(String, u64)> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = file.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&chunk[..i]);
            let end = from + buf.len() as u64 + 1;
            return Some((String::from_utf8_lossy(&buf).into_owned(), end));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_from_a_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let (first, end) = next_line(&path, 0).unwrap();
        assert_eq!((first.as_str(), end), ("{\"a\":1}", 8));
        let (second, end) = next_line(&path, end).unwrap();
        assert_eq!((second.as_str(), end), ("{\"b\":2}", 16));
        // The last line is not complete yet.
        assert!(next_line(&path, end).is_none());
    }

    #[test]
    fn urls_with_passwords_and_other_schemes_are_refused() {
        let cfg = |url: &str| MqttConfig {
            url: url.into(),
            ..MqttConfig::default()
        };
        let e = options(&cfg("mqtt://op:secret@broker:1883")).unwrap_err();
        assert!(!format!("{e:#}").contains("secret"), "{e:#}");
        assert!(format!("{e:#}").contains("password_file"), "{e:#}");
        assert!(options(&cfg("http://broker")).is_err());
        let ok = options(&cfg("mqtt://broker")).unwrap();
        assert_eq!(ok.broker_address(), ("broker".to_string(), 1883));
    }
}
