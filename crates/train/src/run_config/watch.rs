//! `[watch]`: the cameras, their zones and ignore masks, and the rules that turn masks into
//! leak events (`fgstp watch`; the engine is `crate::watch`).

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use fgstp_metrics::MinLeakArea;

/// `[watch]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// `[[watch.camera]]`; `--camera NAME=SOURCE` adds more.
    pub camera: Vec<CameraConfig>,
    /// Triplets analysed per second and camera; 0 analyses every frame.
    pub detect_fps: f64,
    /// A source paced at its own frame rate (files and folders; live sources always are).
    pub realtime: bool,
    /// Triplets that may wait per camera for the model; a newer one pushes the oldest out (a
    /// live source) — deeper absorbs longer load peaks, at the cost of the waiting ones' delay.
    pub queue_depth: usize,
    /// Seconds without a frame after which a camera is `offline`.
    pub stall_timeout: f64,
    /// Seconds between rewrites of `stats.json`.
    pub stats_interval: f64,
    /// Seconds of analysed frames before an event's start in its clip.
    pub pre_capture: f64,
    /// Seconds after an event's end in its clip.
    pub post_capture: f64,
    /// Snapshots and clips older than this many days are deleted (0: kept).
    pub retention_days: f64,
    /// The oldest snapshots and clips are deleted beyond this many GB (0: no limit).
    pub retention_gb: f64,
    /// A pixel "changes" in a whole-frame change when its gray level (0–1) moves by more than
    /// this between consecutive frames.
    pub change_delta: f32,
    /// The decision rules: thresholds, minimum area, confirmation, cutoff, cooldown, zones.
    pub events: EventRules,
    /// `[watch.mqtt]`: events, states and stats published to an MQTT broker.
    pub mqtt: MqttConfig,
    /// `[watch.http]`: the web dashboard and its JSON API.
    pub http: HttpConfig,
    /// An event marked a false positive (dashboard, API) is ended, and gas in its box and
    /// zones is not alerted again for `false_positive_hold` seconds; off: only recorded.
    pub learn_false_positives: bool,
    /// Seconds a false positive's region stays suppressed.
    pub false_positive_hold: f64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            camera: Vec::new(),
            detect_fps: 0.0,
            realtime: false,
            queue_depth: 2,
            stall_timeout: 5.0,
            stats_interval: 1.0,
            pre_capture: 5.0,
            post_capture: 5.0,
            retention_days: 0.0,
            retention_gb: 0.0,
            change_delta: 0.15,
            events: EventRules::default(),
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            learn_false_positives: true,
            false_positive_hold: 3600.0,
        }
    }
}

/// `[watch.http]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` the dashboard listens on (`--listen`); empty: no dashboard. An address other
    /// than the loopback needs a token.
    pub listen: String,
    /// The bearer token (or login password) the API and the page ask for…
    pub token: String,
    /// …or a file whose first line is it…
    pub token_file: String,
    /// …or an environment variable holding it.
    pub token_env: String,
    /// Frames per second of each camera's live image on the page (at most).
    pub live_fps: f64,
    /// Seconds a client has to send a request (its head, then its body), and a response
    /// waits for a client that stopped reading, before the connection is closed.
    pub client_timeout: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token: String::new(),
            token_file: String::new(),
            token_env: String::new(),
            live_fps: 5.0,
            client_timeout: 15.0,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<()> {
        let given = [&self.token, &self.token_file, &self.token_env]
            .iter()
            .filter(|t| !t.is_empty())
            .count();
        ensure!(
            given <= 1,
            "watch.http: give the token once (token, token_file or token_env)"
        );
        ensure!(
            (0.01..=60.0).contains(&self.live_fps),
            "watch.http.live_fps must be in [0.01, 60] frames per second, not {}",
            self.live_fps
        );
        ensure!(
            (0.1..=3600.0).contains(&self.client_timeout),
            "watch.http.client_timeout must be in [0.1, 3600] seconds, not {}",
            self.client_timeout
        );
        Ok(())
    }
}

/// `[watch.mqtt]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (TLS, 8883); empty: no MQTT.
    pub url: String,
    /// Every topic starts with this (`fgstp/available`, `fgstp/<camera>/leaks`, …).
    pub topic_prefix: String,
    /// The MQTT client id; empty: `fgstp-<topic_prefix>`.
    pub client_id: String,
    /// The broker's user name (empty: none).
    pub username: String,
    /// A file whose first line is the password…
    pub password_file: String,
    /// …or an environment variable holding it (never on the command line).
    pub password_env: String,
    /// A PEM file with the certificate authority of an `mqtts://` broker (empty: the system's).
    pub ca_file: String,
    /// Seconds between keep-alive pings; the broker sends the last will (`available` =
    /// `offline`) after 1.5 times this without a word from `fgstp watch`.
    pub keep_alive: f64,
    /// Snapshots larger than this many bytes are not published (0: no limit); brokers close
    /// the connection of a client that sends more than their limit.
    pub snapshot_max_bytes: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            topic_prefix: "fgstp".into(),
            client_id: String::new(),
            username: String::new(),
            password_file: String::new(),
            password_env: String::new(),
            ca_file: String::new(),
            keep_alive: 10.0,
            snapshot_max_bytes: 1_000_000,
        }
    }
}

impl MqttConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.topic_prefix.is_empty()
                && !self.topic_prefix.contains(['+', '#', '\0'])
                && !self.topic_prefix.starts_with('/')
                && !self.topic_prefix.ends_with('/'),
            "watch.mqtt.topic_prefix {:?}: a topic level (no '+', '#', leading or trailing '/')",
            self.topic_prefix
        );
        ensure!(
            self.keep_alive >= 1.0 && self.keep_alive <= 65535.0,
            "watch.mqtt.keep_alive must be 1–65535 seconds, not {}",
            self.keep_alive
        );
        ensure!(
            self.password_file.is_empty() || self.password_env.is_empty(),
            "watch.mqtt: give the password in password_file or password_env, not both"
        );
        Ok(())
    }
}

/// `[[watch.camera]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Letters, digits, `-` and `_` (it names files and topics).
    pub name: String,
    /// A video file, or a folder of frames (read as a camera's software fills it).
    pub source: String,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Polygons whose pixels never count (steam vents, flare stacks, exhausts).
    #[serde(default)]
    pub ignore: Vec<Polygon>,
}

/// The longest duration a `[watch]` setting takes, in seconds: a year (a longer one is a
/// mistake, and beyond about 1.8e19 s a duration cannot be represented at all).
const MAX_SECONDS: f64 = 365.0 * 86_400.0;
/// The longest `pre_capture`, in seconds.
const MAX_PRE_CAPTURE: f64 = 60.0;

impl WatchConfig {
    pub fn validate(&self) -> Result<()> {
        self.events.validate()?;
        self.mqtt.validate()?;
        self.http.validate()?;
        ensure!(
            (1..=64).contains(&self.queue_depth),
            "watch.queue_depth must be 1–64 triplets, not {}",
            self.queue_depth
        );
        ensure!(
            (0.0..=MAX_SECONDS).contains(&self.false_positive_hold),
            "watch.false_positive_hold must be 0–{MAX_SECONDS} seconds (a year), not {}",
            self.false_positive_hold
        );
        ensure!(
            self.detect_fps >= 0.0 && self.detect_fps.is_finite(),
            "watch.detect_fps must be ≥ 0 (0 analyses every frame), not {}",
            self.detect_fps
        );
        // The pre-capture is held in memory (every analysed frame of those seconds, per
        // camera); Frigate caps its own at 60 s too.
        ensure!(
            (0.0..=MAX_PRE_CAPTURE).contains(&self.pre_capture),
            "watch.pre_capture must be 0–{MAX_PRE_CAPTURE} seconds (its frames are kept in memory), not {}",
            self.pre_capture
        );
        for (name, v, max, unit) in [
            ("post_capture", self.post_capture, MAX_SECONDS, "seconds"),
            ("retention_days", self.retention_days, 36_500.0, "days"),
        ] {
            ensure!(
                (0.0..=max).contains(&v),
                "watch.{name} must be 0–{max} {unit}, not {v}"
            );
        }
        ensure!(
            self.retention_gb >= 0.0 && self.retention_gb.is_finite(),
            "watch.retention_gb must be ≥ 0, not {}",
            self.retention_gb
        );
        for (name, v) in [
            ("stall_timeout", self.stall_timeout),
            ("stats_interval", self.stats_interval),
        ] {
            ensure!(
                v > 0.0 && v <= MAX_SECONDS,
                "watch.{name} must be positive seconds, at most {MAX_SECONDS} (a year), not {v}"
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for cam in &self.camera {
            check_camera_name(&cam.name)?;
            if !names.insert(cam.name.as_str()) {
                bail!("watch: two cameras are named {:?}", cam.name);
            }
            for zone in &cam.zones {
                check_polygon(
                    &zone.polygon,
                    &format!("camera {} zone {}", cam.name, zone.name),
                )?;
            }
            for (k, polygon) in cam.ignore.iter().enumerate() {
                check_polygon(polygon, &format!("camera {} ignore mask {k}", cam.name))?;
            }
            let zone_names: Vec<&str> = cam.zones.iter().map(|z| z.name.as_str()).collect();
            for required in &self.events.required_zones {
                if !zone_names.contains(&required.as_str()) && !cam.zones.is_empty() {
                    bail!(
                        "watch.events.required_zones names {required:?}, which camera {} does not \
                         have (its zones: {zone_names:?})",
                        cam.name
                    );
                }
            }
        }
        Ok(())
    }
}

/// Camera names end up in file names: letters, digits, `-`, `_`.
pub fn check_camera_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "camera name {name:?}: use 1–64 letters, digits, '-' or '_'"
    );
    Ok(())
}

/// `--camera NAME=SOURCE`.
pub fn parse_camera_arg(arg: &str) -> Result<CameraConfig> {
    let Some((name, source)) = arg.split_once('=') else {
        bail!("--camera takes NAME=SOURCE (e.g. --camera pump1=video.mp4), not {arg:?}");
    };
    check_camera_name(name)?;
    ensure!(!source.is_empty(), "--camera {name}=: the source is empty");
    Ok(CameraConfig {
        name: name.to_string(),
        source: source.to_string(),
        zones: Vec::new(),
        ignore: Vec::new(),
    })
}

/// `[watch.events]`: the decision rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventRules {
    /// A new leak's pixels start at this probability…
    pub start_threshold: f32,
    /// …and a leak's pixels (connected to one ≥ start, or tracked) stay down to this one.
    pub stop_threshold: f32,
    /// The smallest region that counts: pixels (`200`) or a share of the frame (`"0.5%"`).
    pub min_area: MinLeakArea,
    /// M of "seen in M of the last N analysed triplets".
    pub confirm_hits: usize,
    /// N of the same rule.
    pub confirm_window: usize,
    /// T: seconds from a track's first sighting before it can be confirmed.
    pub min_duration: f64,
    /// Seconds without a sighting that end an event.
    pub cutoff: f64,
    /// Seconds after an event's end during which a leak over the same place is not a new event.
    pub cooldown: f64,
    /// Seconds between an event's `update` records.
    pub update_interval: f64,
    /// Only leaks that touch one of these zones become events (empty: any).
    pub required_zones: Vec<String>,
    /// Share of the frame's pixels that must change at once for a whole-frame change.
    pub change_fraction: f64,
    /// Analysed triplets during which decisions pause after a whole-frame change.
    pub change_pause: usize,
}

impl Default for EventRules {
    fn default() -> Self {
        Self {
            start_threshold: 0.5,
            stop_threshold: 0.3,
            min_area: MinLeakArea::default(),
            confirm_hits: 3,
            confirm_window: 5,
            min_duration: 1.0,
            cutoff: 3.0,
            cooldown: 10.0,
            update_interval: 5.0,
            required_zones: Vec::new(),
            change_fraction: 0.5,
            change_pause: 15,
        }
    }
}

impl EventRules {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            0.0 < self.stop_threshold
                && self.stop_threshold <= self.start_threshold
                && self.start_threshold <= 1.0,
            "watch: need 0 < stop_threshold ≤ start_threshold ≤ 1 (got stop {} and start {})",
            self.stop_threshold,
            self.start_threshold
        );
        ensure!(
            self.confirm_hits >= 1 && self.confirm_hits <= self.confirm_window,
            "watch: need 1 ≤ confirm_hits ≤ confirm_window (got M = {}, N = {})",
            self.confirm_hits,
            self.confirm_window
        );
        for (name, v) in [
            ("min_duration", self.min_duration),
            ("cutoff", self.cutoff),
            ("cooldown", self.cooldown),
            ("update_interval", self.update_interval),
        ] {
            ensure!(
                (0.0..=MAX_SECONDS).contains(&v),
                "watch.{name} must be 0–{MAX_SECONDS} seconds (a year), not {v}"
            );
        }
        ensure!(
            self.change_fraction > 0.0 && self.change_fraction <= 1.0,
            "watch.change_fraction must be in (0, 1], not {}",
            self.change_fraction
        );
        Ok(())
    }
}

/// A polygon: its corners `[[x, y], …]` in the camera frame's pixels (at least 3).
pub type Polygon = Vec<[f64; 2]>;

/// A named zone of a camera (`[[watch.camera.zones]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub polygon: Polygon,
}

/// Checks a camera's polygons (`what` names them in the error).
pub fn check_polygon(polygon: &Polygon, what: &str) -> Result<()> {
    if polygon.len() < 3 {
        bail!(
            "{what}: a polygon needs at least 3 corners [[x, y], …], got {}",
            polygon.len()
        );
    }
    if polygon.iter().flatten().any(|v| !v.is_finite()) {
        bail!("{what}: corners must be finite numbers");
    }
    Ok(())
}
