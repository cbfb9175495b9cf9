//! `fgstp watch --mqtt` with a real broker (Debian's mosquitto, started by the tests on a free
//! port of 127.0.0.1) and `mosquitto_sub` as the subscriber: every event line on the broker
//! in the order of `events.jsonl`, the retained state, snapshots, the last will after a kill,
//! and events written while the broker is away (absent at start, its network cut mid-run,
//! across a restart of the watch) delivered when it returns.

use crate::common::{free_port, ok, s, stderr, FGSTP};
use crate::watch_cli::{fixture, json_lines, watch_args, WHOLE_FRAME_IS_GAS};
use crate::watch_rtsp::wait_until;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// mosquitto on 127.0.0.1:`port`, anonymous, nothing kept on disk.
pub(crate) struct Broker {
    child: Option<Child>,
    pub(crate) port: u16,
    conf: PathBuf,
}

impl Broker {
    pub(crate) fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, "")
    }

    /// With `extra` lines of configuration after the plain listener (another listener).
    pub(crate) fn start_with(dir: &Path, port: u16, extra: &str) -> Self {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        // `user root`: the broker reads the test's key files after it would have dropped to
        // the mosquitto user.
        std::fs::write(
            &conf,
            format!(
                "user root\nallow_anonymous true\npersistence false\n\
                 listener {port} 127.0.0.1\n{extra}"
            ),
        )
        .unwrap();
        let mut broker = Self {
            child: None,
            port,
            conf,
        };
        broker.restart();
        broker
    }

    fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        loop {
            let mut child = Command::new("mosquitto")
                .args(["-c", s(&self.conf)])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("mosquitto (scripts/setup-system installs it)");
            // Up once it accepts connections; the port of a killed broker can take a moment.
            while start.elapsed() < Duration::from_secs(10) {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start on port {}: {err}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `mosquitto_sub` on `topics`, each message as "topic<TAB>retained<TAB>payload" (snapshots:
/// their length instead of their bytes), into a file.
pub(crate) struct Subscriber {
    child: Child,
    path: PathBuf,
}

impl Subscriber {
    pub(crate) fn start(port: u16, path: PathBuf, topics: &[&str]) -> Self {
        let mut args = vec![
            "-h".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-q".into(),
            "1".into(),
            "-F".into(),
            "%t\t%r\t%p".into(),
            "-T".into(),
            "+/+/snapshot".into(),
        ];
        for t in topics {
            args.extend(["-t".into(), t.to_string()]);
        }
        let child = Command::new("mosquitto_sub")
            .args(&args)
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Subscribed once the broker counts it; a short wait is what mosquitto_sub offers.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, path }
    }

    fn lines(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, '\t');
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// The payloads on `topic`, in order.
    pub(crate) fn payloads(&self, topic: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, _, p)| p)
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained messages of `topics` as a new subscriber gets them: topic → payload.
fn retained(port: u16, topics: &[&str]) -> Vec<(String, String, String)> {
    let mut args = vec![
        "-h".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-W".into(),
        "2".into(),
        "-C".into(),
        topics.len().to_string(),
        "-F".into(),
        "%t\t%r\t%p".into(),
    ];
    for t in topics {
        args.extend(["-t".into(), t.to_string()]);
    }
    let out = Command::new("mosquitto_sub").args(&args).output().unwrap();
    let mut lines: Vec<(String, String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, '\t');
            Some((p.next()?.into(), p.next()?.into(), p.next()?.into()))
        })
        .collect();
    lines.sort();
    lines
}

/// The lines of `events.jsonl`, as written.
fn event_lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_event_state_and_snapshot_reaches_the_broker_and_a_killed_watch_leaves_its_last_will() {
    let f = fixture();
    let dir = f.root.join("mqtt-live");
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start(&dir, free_port());
    let sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let snapshots = Subscriber {
        child: Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-t", "fgstp/+/snapshot", "-F", "%t\t%l"])
            .stdout(std::fs::File::create(dir.join("snapshots.txt")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        path: dir.join("snapshots.txt"),
    };
    let out = dir.join("out");
    // A cursor that cannot be saved (here a folder in its place; a full disk in the field)
    // is reported once and sends no line twice (each line used to go out every 50 ms).
    std::fs::create_dir_all(out.join("mqtt-cursor")).unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--realtime", "--mqtt", &url]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let done = ok(crate::watch_cli::fgstp(&args));
    assert_eq!(
        stderr(&done).matches("cannot save").count(),
        1,
        "{}",
        stderr(&done)
    );

    // The leak events, exactly the lines of events.jsonl and in their order.
    let lines = event_lines(&out);
    assert!(lines.len() >= 2, "{lines:?}");
    wait_until("every event on the broker", Duration::from_secs(5), || {
        sub.payloads("fgstp/pump/leaks").len() >= lines.len()
    });
    assert_eq!(sub.payloads("fgstp/pump/leaks"), lines);
    assert_eq!(sub.payloads("fgstp/pump/leak"), ["OFF", "ON", "OFF"]);
    assert_eq!(sub.payloads("fgstp/pump/status"), ["online", "ended"]);
    assert_eq!(sub.payloads("fgstp/available"), ["online", "offline"]);
    let stats = sub.payloads("fgstp/pump/stats");
    assert!(!stats.is_empty());
    let last: serde_json::Value = serde_json::from_str(stats.last().unwrap()).unwrap();
    assert!(last["frames"].as_u64().unwrap() > 0, "{last}");
    // The snapshot, at new and at end, is the event's PNG.
    let records = json_lines(&out.join("events.jsonl"));
    let id = records[0]["id"].as_str().unwrap();
    let png = std::fs::metadata(out.join("snapshots").join(format!("{id}.png")))
        .unwrap()
        .len();
    wait_until("two snapshots", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("snapshots.txt"))
            .unwrap()
            .lines()
            .count()
            >= 2
    });
    drop(snapshots);
    let sizes = std::fs::read_to_string(dir.join("snapshots.txt")).unwrap();
    for line in sizes.lines() {
        assert_eq!(line, format!("fgstp/pump/snapshot\t{png}"));
    }
    // Retained for whoever subscribes later.
    assert_eq!(
        retained(
            broker.port,
            &["fgstp/available", "fgstp/pump/status", "fgstp/pump/leak"]
        ),
        [
            ("fgstp/available".into(), "1".into(), "offline".into()),
            ("fgstp/pump/leak".into(), "1".into(), "OFF".into()),
            ("fgstp/pump/status".into(), "1".into(), "ended".into()),
        ]
    );

    // A watch killed outright: the broker says offline for it (the last will) within 1.5
    // keep-alives.
    let killed = dir.join("killed");
    let folder = format!("cam={}", s(&f.episodes.join("images")));
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &killed));
    args.extend(["--camera", &folder, "--follow", "--mqtt", &url]);
    args.extend(["--set", "watch.mqtt.keep_alive=2"]);
    let mut child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = sub.payloads("fgstp/available").len();
    wait_until("available online", Duration::from_secs(60), || {
        sub.payloads("fgstp/available").len() > before
    });
    assert_eq!(sub.payloads("fgstp/available").last().unwrap(), "online");
    child.kill().unwrap();
    let _ = child.wait();
    let took = wait_until("the last will", Duration::from_secs(10), || {
        sub.payloads("fgstp/available").len() > before + 1
    });
    assert_eq!(sub.payloads("fgstp/available").last().unwrap(), "offline");
    assert!(took <= Duration::from_secs(4), "last will after {took:?}");
}

/// A TCP link to the broker that can be cut (every connection closed, new ones refused) and
/// restored: the network between `fgstp watch` and its broker going away and coming back,
/// while subscribers stay on the broker itself.
struct Link {
    port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<std::net::TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Link {
    fn start(broker: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (up2, stop2, conns2) = (up.clone(), stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if !up2.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", broker)) else {
                    continue;
                };
                let mut guard = conns2.lock().unwrap();
                guard.push(client.try_clone().unwrap());
                guard.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            up,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn events_written_while_the_broker_is_away_are_delivered_in_order_when_it_returns() {
    let f = fixture();
    let dir = f.root.join("mqtt-away");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let out = dir.join("out");
    let url = format!("mqtt://127.0.0.1:{port}");
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--mqtt", &url]);
    args.extend(WHOLE_FRAME_IS_GAS);

    // No broker: the watch runs, writes its events and ends anyway.
    let first = ok(crate::watch_cli::fgstp(&args));
    let written = event_lines(&out).len();
    assert!(written >= 2, "{}", stderr(&first));
    assert!(!out.join("mqtt-cursor").exists());

    // The broker is there for the next run (10 s, paced; reached through a link that is cut
    // mid-run): the first run's events come first, and every event, in order.
    let broker = Broker::start(&dir, port);
    let sub = Subscriber::start(port, dir.join("sub.txt"), &["fgstp/+/leaks"]);
    let link = Link::start(port);
    let long = format!("pump={}", s(crate::watch_rtsp::video()));
    let through_link = format!("mqtt://127.0.0.1:{}", link.port);
    let mut paced = watch_args(f, &out);
    paced.extend(["--camera", &long, "--realtime", "--mqtt", &through_link]);
    paced.extend(WHOLE_FRAME_IS_GAS);
    let mut child = Command::new(FGSTP)
        .args(&paced)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first run's events", Duration::from_secs(30), || {
        sub.payloads("fgstp/pump/leaks").len() >= written
    });
    // Cut until the new run's first event is written, and a second longer.
    link.cut();
    let cut_at = event_lines(&out).len();
    wait_until("an event while cut off", Duration::from_secs(30), || {
        event_lines(&out).len() > written
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sub.payloads("fgstp/pump/leaks").len(),
        written,
        "nothing passes while the link is cut"
    );
    link.restore();
    let status = child.wait().unwrap();
    assert!(status.success());
    let lines = event_lines(&out);
    assert!(lines.len() >= written + 2);
    let len = std::fs::metadata(out.join("events.jsonl")).unwrap().len();
    wait_until("every event acknowledged", Duration::from_secs(10), || {
        std::fs::read_to_string(out.join("mqtt-cursor")).is_ok_and(|c| c.trim() == len.to_string())
    });
    wait_until("every event received", Duration::from_secs(5), || {
        sub.payloads("fgstp/pump/leaks").len() >= lines.len()
    });
    // Every line, in order; a line whose acknowledgement the cut took may come twice (at
    // least once, as QoS 1 promises).
    let mut got = sub.payloads("fgstp/pump/leaks");
    got.dedup();
    assert_eq!(got, lines, "cut after {cut_at} lines");
    drop(broker);
}

#[test]
fn snapshots_over_the_limit_are_left_out_and_the_connection_holds() {
    let f = fixture();
    let dir = f.root.join("mqtt-snapshot-limit");
    std::fs::create_dir_all(&dir).unwrap();
    // A broker that closes the connection of a client sending a packet over 2000 bytes (as
    // EMQX does over 1 MB by default).
    let broker = Broker::start_with(&dir, free_port(), "max_packet_size 2000\n");
    let sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let out = dir.join("out");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--realtime", "--mqtt", &url]);
    args.extend(["--set", "watch.mqtt.snapshot_max_bytes=1500"]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let done = ok(crate::watch_cli::fgstp(&args));
    let log = stderr(&done);

    let lines = event_lines(&out);
    assert!(lines.len() >= 2, "{lines:?}");
    let records = json_lines(&out.join("events.jsonl"));
    let id = records[0]["id"].as_str().unwrap();
    let png = std::fs::metadata(out.join("snapshots").join(format!("{id}.png")))
        .unwrap()
        .len();
    assert!(
        png > 2000,
        "the snapshot ({png} bytes) must be over both limits"
    );
    wait_until("every event on the broker", Duration::from_secs(5), || {
        sub.payloads("fgstp/pump/leaks").len() >= lines.len()
    });
    assert_eq!(sub.payloads("fgstp/pump/leaks"), lines);
    assert!(sub.payloads("fgstp/pump/snapshot").is_empty());
    // Said once, and one connection for the whole run (each snapshot cost a reconnect).
    assert_eq!(
        log.matches("watch.mqtt.snapshot_max_bytes").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("trying again"), "{log}");
}

#[test]
fn a_suspended_camera_writes_its_events_marked_and_publishes_no_alert() {
    let f = fixture();
    let dir = f.root.join("mqtt-suspend");
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start(&dir, free_port());
    let sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let out = dir.join("out");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let long = format!("pump={}", s(crate::watch_rtsp::video()));
    // A retained command (a home-automation button's habit) is ignored: it would come back
    // at every reconnect.
    let retained = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-r", "-t", "fgstp/pump/suspend", "-m", "10080"])
        .status()
        .unwrap();
    assert!(retained.success());
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &long, "--realtime", "--mqtt", &url]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("available online", Duration::from_secs(30), || {
        sub.payloads("fgstp/available").first().map(String::as_str) == Some("online")
    });
    let publish = |payload: &str| {
        let done = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-t", "fgstp/pump/suspend", "-m", payload])
            .status()
            .unwrap();
        assert!(done.success());
    };
    // A command that is not a number of minutes is refused, and changes nothing.
    publish("soon");
    publish("5");
    wait_until("suspended", Duration::from_secs(10), || {
        sub.payloads("fgstp/pump/suspended")
            .last()
            .is_some_and(|p| p != "OFF")
    });
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    let log = stderr(&done);
    assert!(log.contains("\"soon\""), "{log}");
    assert_eq!(
        log.matches("camera pump: alerts suspended until").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("fgstp/pump/suspend ignored: a retained message"),
        "{log}"
    );

    // The leak is written, each record marked with the end of the suspension, and not one
    // alert went out.
    let until = sub.payloads("fgstp/pump/suspended").last().unwrap().clone();
    let records = json_lines(&out.join("events.jsonl"));
    assert!(records.len() >= 2, "{records:?}");
    for r in &records {
        assert_eq!(r["suspended_until"], until.as_str(), "{r}");
    }
    assert!(sub.payloads("fgstp/pump/leaks").is_empty());
    assert!(sub.payloads("fgstp/pump/leak").iter().all(|p| p == "OFF"));
    // The suspension outlives the run.
    let kept = std::fs::read_to_string(out.join("suspended.json")).unwrap();
    assert!(kept.contains(&until), "{kept}");
}

#[test]
fn an_mqtts_broker_is_reached_with_its_certificate_authority() {
    let f = fixture();
    let dir = f.root.join("mqtt-tls");
    std::fs::create_dir_all(&dir).unwrap();
    // A certificate authority and the broker's certificate for 127.0.0.1, made with openssl.
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fgstp test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
    let tls_port = free_port();
    let broker = Broker::start_with(
        &dir,
        free_port(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            s(&dir.join("ca.pem")),
            s(&dir.join("server.pem")),
            s(&dir.join("server.key"))
        ),
    );
    let sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let ca = format!("watch.mqtt.ca_file=\"{}\"", s(&dir.join("ca.pem")));

    // Without the broker's authority (not among the system's), the certificate is refused:
    // said once, retried, the watch goes on and nothing is delivered.
    let out = dir.join("untrusted");
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--mqtt", &url]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let log = stderr(&ok(crate::watch_cli::fgstp(&args)));
    assert_eq!(log.matches("(trying again)").count(), 1, "{log}");
    assert!(log.contains(&format!("mqtt: {url}: ")), "{log}");
    assert!(!out.join("mqtt-cursor").exists());

    // With it: every event over TLS.
    let out = dir.join("trusted");
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--mqtt", &url, "--set", &ca]);
    args.extend(WHOLE_FRAME_IS_GAS);
    ok(crate::watch_cli::fgstp(&args));
    let lines = event_lines(&out);
    wait_until("every event over TLS", Duration::from_secs(5), || {
        sub.payloads("fgstp/pump/leaks").len() >= lines.len()
    });
    assert_eq!(sub.payloads("fgstp/pump/leaks"), lines);
}
