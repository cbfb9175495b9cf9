//! `fgstp watch` on RTSP cameras: a synthetic leak video served by GStreamer's RTSP server
//! (`scripts/rtsp-serve`), killed and restarted mid-stream; wrong credentials, a path that is
//! not a stream, a host that does not answer; and RTP damaged on the way (garbage payloads,
//! truncated packets, bytes outside any packet) by a proxy between server and watch.

use crate::common::{free_port, ok, s, stderr, FGSTP};
use crate::watch_cli::{
    fgstp, fixture, json_lines, states, wait_for_state, watch_args, WHOLE_FRAME_IS_GAS,
};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A 10 s leak video (96×64, 30 frames/s, key frames every 2 s), made once.
pub(crate) fn video() -> &'static Path {
    static VIDEO: OnceLock<PathBuf> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let out = fixture().root.join("rtsp-episodes");
        ok(fgstp(&[
            "synth",
            "--out",
            s(&out),
            "--episodes",
            "2",
            "--frames",
            "300",
            "--size",
            "96x64",
            "--seed",
            "37",
        ]));
        out.join("video.mp4")
    })
}

/// `scripts/rtsp-serve` serving `video` at rtsp://127.0.0.1:PORT/cam.
pub(crate) struct RtspServer {
    child: Child,
    pub(crate) port: u16,
    args: Vec<String>,
}

impl RtspServer {
    fn start(port: u16, extra: &[&str]) -> Self {
        Self::serve(video(), port, extra)
    }

    /// `scripts/rtsp-serve VIDEO --port PORT EXTRA…` (port 0: a free one).
    pub(crate) fn serve(video: &Path, port: u16, extra: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rtsp-serve");
        let mut args = vec![s(video).to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        // The port of a killed server can take a moment to be free again.
        for attempt in 0..20 {
            let mut child = Command::new(&script)
                .args(&args)
                .args(["--port", &port.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("scripts/rtsp-serve (needs scripts/setup-system's GStreamer packages)");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if let Some(bound) = line.trim().strip_prefix("rtsp://127.0.0.1:") {
                let port = bound.split('/').next().unwrap().parse().unwrap();
                return Self { child, port, args };
            }
            let done = child.wait_with_output().unwrap();
            assert!(
                attempt < 19 && port != 0,
                "rtsp-serve did not start: {}",
                String::from_utf8_lossy(&done.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        unreachable!()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        let extra: Vec<&str> = self.args[1..].iter().map(String::as_str).collect();
        *self = Self::serve(Path::new(&self.args[0].clone()), self.port, &extra);
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn stats(out: &Path) -> serde_json::Value {
    std::fs::read_to_string(out.join("stats.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until `what` holds, for at most `limit`; the time it took.
pub(crate) fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn event_records(out: &Path, camera: &str, kind: &str) -> Vec<serde_json::Value> {
    if !out.join("events.jsonl").exists() {
        return Vec::new();
    }
    json_lines(&out.join("events.jsonl"))
        .into_iter()
        .filter(|r| r["camera"] == camera && r["type"] == kind)
        .collect()
}

pub(crate) fn interrupt(child: Child) -> std::process::Output {
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().unwrap()
}

#[test]
fn an_rtsp_camera_whose_server_is_killed_is_offline_in_time_and_back_online_with_whole_events() {
    let f = fixture();
    let mut server = RtspServer::start(0, &["--user", "op", "--password", "s3cret"]);
    let port = server.port;
    let out = f.root.join("rtsp-restart");
    let cam = format!("cam=rtsp://op:s3cret@127.0.0.1:{port}/cam");
    let locked = format!("locked=rtsp://op:guess@127.0.0.1:{port}/cam");
    let nopath = format!("nopath=rtsp://op:s3cret@127.0.0.1:{port}/nothing");
    let gone = format!("gone=rtsp://127.0.0.1:{}/cam", free_port());
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &out));
    for camera in [&cam, &locked, &nopath, &gone] {
        args.extend(["--camera", camera.as_str()]);
    }
    args.extend(["--set", "watch.stall_timeout=2"]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_state(&out, "cam", "online", Duration::from_secs(60));
    wait_until("a leak event on cam", Duration::from_secs(20), || {
        !event_records(&out, "cam", "new").is_empty()
    });

    server.kill();
    let took = wait_for_state(&out, "cam", "offline", Duration::from_secs(10));
    assert!(
        took <= Duration::from_secs(3),
        "offline after {took:?} (stall_timeout 2 s)"
    );
    // The open event ends with the stream.
    let ends = event_records(&out, "cam", "end");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["end_reason"], "stream_lost");

    server.restart();
    let took = wait_for_state(&out, "cam", "online", Duration::from_secs(20));
    assert!(
        took <= Duration::from_secs(10),
        "online {took:?} after the server's return"
    );
    wait_until(
        "a new event after the return",
        Duration::from_secs(20),
        || event_records(&out, "cam", "new").len() == 2,
    );
    let done = interrupt(child);
    assert!(done.status.success(), "{}", stderr(&done));

    // One end per event, none lost or repeated: the leak before the break ended stream_lost,
    // the one after it stopped with the watch.
    let news = event_records(&out, "cam", "new");
    let ends = event_records(&out, "cam", "end");
    let ids = |records: &[serde_json::Value]| -> Vec<String> {
        records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&news), ids(&ends));
    assert_ne!(ids(&news)[0], ids(&news)[1]);
    let reasons: Vec<&str> = ends
        .iter()
        .map(|r| r["end_reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["stream_lost", "stopped"]);

    // The cameras that never came up say why, and keep trying; no password anywhere.
    let status = std::fs::read_to_string(out.join("status.jsonl")).unwrap();
    let detail = |camera: &str| -> String {
        json_lines(&out.join("status.jsonl"))
            .iter()
            .filter(|l| l["camera"] == camera && l["state"] == "reconnecting")
            .map(|l| l["detail"].as_str().unwrap_or("").to_string())
            .next()
            .unwrap_or_else(|| panic!("{camera} never reconnecting: {status}"))
    };
    assert!(
        detail("locked").ends_with("/cam: the camera refused the credentials (RTSP 401)"),
        "{status}"
    );
    assert!(
        detail("nopath").contains("no stream at this path (RTSP 404)"),
        "{status}"
    );
    assert!(detail("gone").contains("127.0.0.1"), "{status}");
    for camera in ["locked", "nopath", "gone"] {
        assert!(!states(&out, camera).contains(&"online".to_string()));
    }
    let stats = std::fs::read_to_string(out.join("stats.json")).unwrap();
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    for text in [&status, &stats, &events, &stderr(&done)] {
        assert!(
            !text.contains("s3cret") && !text.contains("guess"),
            "{text}"
        );
    }
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["cam"]["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["locked"]["reconnects"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

/// What the proxy does to one RTP packet (by its number on the connection, from 0).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Damage {
    /// The payload after the RTP header replaced by pseudo-random bytes (length kept).
    Garbage,
    /// The packet cut to its header and a third of its payload.
    Truncate,
    /// 64 pseudo-random bytes sent before the packet, outside any interleaved frame.
    Unframed,
}

/// A TCP proxy in front of an RTSP server that damages the RTP packets of its first
/// connection as `plan` says; later connections pass through untouched.
struct DamagingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DamagingProxy {
    fn start(upstream: u16, plan: fn(u64) -> Option<Damage>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let first = connections.fetch_add(1, Ordering::Relaxed) == 0;
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = relay(server, client, if first { plan } else { |_| None });
                });
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DamagingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Server → client: RTSP responses pass as they are; interleaved packets (`$`, channel,
/// length) on channel 0 (RTP) are numbered and damaged as `plan` says.
fn relay(
    server: TcpStream,
    mut client: TcpStream,
    plan: fn(u64) -> Option<Damage>,
) -> std::io::Result<()> {
    let mut from = BufReader::new(server);
    let mut rtp_packets = 0u64;
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let mut random_bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                noise as u8
            })
            .collect()
    };
    loop {
        let first = from.fill_buf()?;
        if first.is_empty() {
            return Ok(());
        }
        if first[0] == b'$' {
            let mut head = [0u8; 4];
            from.read_exact(&mut head)?;
            let mut packet = vec![0u8; u16::from_be_bytes([head[2], head[3]]) as usize];
            from.read_exact(&mut packet)?;
            if head[1] == 0 {
                match plan(rtp_packets) {
                    Some(Damage::Garbage) if packet.len() > 12 => {
                        let n = packet.len() - 12;
                        packet[12..].copy_from_slice(&random_bytes(n));
                    }
                    Some(Damage::Truncate) if packet.len() > 12 => {
                        packet.truncate(12 + (packet.len() - 12) / 3);
                    }
                    Some(Damage::Unframed) => client.write_all(&random_bytes(64))?,
                    _ => {}
                }
                rtp_packets += 1;
            }
            let len = (packet.len() as u16).to_be_bytes();
            client.write_all(&[b'$', head[1], len[0], len[1]])?;
            client.write_all(&packet)?;
        } else {
            // An RTSP response: headers, then Content-Length bytes of body.
            let mut message = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if from.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                message.extend_from_slice(line.as_bytes());
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            from.read_exact(&mut body)?;
            message.extend_from_slice(&body);
            client.write_all(&message)?;
        }
    }
}

#[test]
fn damaged_rtp_is_counted_and_the_stream_resyncs_at_the_next_key_frame() {
    let f = fixture();
    let server = RtspServer::start(0, &[]);
    // Truncated packets early in the first GOP, and again in the second.
    let cut = DamagingProxy::start(server.port, |n| {
        matches!(n, 20..=22 | 75).then_some(Damage::Truncate)
    });
    // Garbage payloads, then bytes outside any packet (the connection's framing is lost).
    let noise = DamagingProxy::start(server.port, |n| match n {
        20..=24 => Some(Damage::Garbage),
        90 => Some(Damage::Unframed),
        _ => None,
    });
    let out = f.root.join("rtsp-damaged");
    let cameras = [
        format!("cut=rtsp://127.0.0.1:{}/cam", cut.port),
        format!("noise=rtsp://127.0.0.1:{}/cam", noise.port),
        format!("clean=rtsp://127.0.0.1:{}/cam", server.port),
    ];
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &out));
    for camera in &cameras {
        args.extend(["--camera", camera.as_str()]);
    }
    let child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each stream's frames go on after the damage.
    wait_until("frames after the damage", Duration::from_secs(60), || {
        let st = stats(&out);
        ["cut", "noise", "clean"]
            .iter()
            .all(|c| st[c]["frames"].as_u64().unwrap_or(0) >= 150)
    });
    let done = interrupt(child);
    assert!(done.status.success(), "{}", stderr(&done));
    let st = stats(&out);
    assert_eq!(st["clean"]["damaged"], 0, "{st}");
    assert_eq!(st["clean"]["reconnects"], 0, "{st}");
    // Truncated packets: frames dropped up to the next key frame (every 2 s), the
    // connection kept.
    let cut = &st["cut"];
    let damaged = cut["damaged"].as_u64().unwrap();
    assert!((2..130).contains(&damaged), "{st}");
    assert_eq!(cut["reconnects"], 0, "{st}");
    // Garbage payloads are damaged frames on the same connection; bytes outside any packet
    // break the connection, which is made again.
    let noise = &st["noise"];
    assert!(noise["damaged"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(noise["reconnects"], 1, "{st}");
    // Damage is not a break: no camera went offline.
    for camera in ["cut", "noise", "clean"] {
        assert!(
            !states(&out, camera).contains(&"offline".to_string()),
            "{camera}"
        );
    }
}
