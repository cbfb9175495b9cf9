//! `fgstp watch --listen`: the web dashboard in Debian's headless chromium (through
//! chromedriver) while a test stream runs, its JSON API and what it refuses, its token, and
//! its load (8 cameras of one stream with the page open and an MQTT subscriber).

use crate::common::webdriver::Browser;
use crate::common::{free_port, ok, s, stderr, FGSTP};
use crate::watch_cli::{fixture, json_lines, watch_args, Fixture, WHOLE_FRAME_IS_GAS};
use crate::watch_mqtt::{Broker, Subscriber};
use crate::watch_rtsp::{interrupt, wait_until, RtspServer};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A 96×64 stream of 40 s at 30 frames/s with leak episodes (the tests stop the watch before
/// its end).
fn long_video() -> &'static Path {
    static VIDEO: OnceLock<PathBuf> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let out = fixture().root.join("dashboard-episodes");
        ok(crate::common::fgstp(&[
            "synth",
            "--out",
            s(&out),
            "--episodes",
            "4",
            "--frames",
            "1200",
            "--size",
            "96x64",
            "--seed",
            "41",
        ]));
        out.join("video.mp4")
    })
}

/// One HTTP exchange: (status, the `Content-Type`, the body).
fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String, Vec<u8>) {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(20));
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let response = match body {
        Some(b) => request.send_bytes(b),
        None => request.call(),
    };
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let kind = response.content_type().to_string();
    let mut bytes = Vec::new();
    response.into_reader().read_to_end(&mut bytes).unwrap();
    (status, kind, bytes)
}

fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let (status, _, body) = http("GET", url, headers, None);
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn post_json(url: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// A request with a `Host` header of our choosing (HTTP clients set their own).
fn raw_get(port: u16, path: &str, host: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `fgstp watch … --listen 127.0.0.1:PORT` with `extra` arguments, up once `/healthz` answers.
fn start_watch(f: &Fixture, out: &Path, port: u16, extra: &[&str]) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let mut args = watch_args(f, out);
    args.extend(["--listen", &listen]);
    args.extend(extra);
    let mut child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let start = Instant::now();
    while ureq::get(&url).call().is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("fgstp watch exited ({status}) before serving: {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no dashboard on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn records(out: &Path) -> Vec<serde_json::Value> {
    if !out.join("events.jsonl").exists() {
        return Vec::new();
    }
    json_lines(&out.join("events.jsonl"))
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page's live image of `camera`: (its frame number, a hash of its pixels), once drawn.
const LIVE_IMAGE: &str = "
    const img = document.querySelector(`section.camera[data-camera=\"${arguments[0]}\"] img.live`);
    if (!img || !img.dataset.seq || !img.complete || !img.naturalWidth) return null;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < px.length; i++) h = (h * 31 + px[i]) >>> 0;
    return [img.dataset.seq, h];";

#[test]
fn in_a_browser_the_page_shows_live_images_and_events_and_marks_a_false_positive() {
    let f = fixture();
    let dir = f.root.join("dashboard-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start(&dir, free_port());
    let sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let out = dir.join("out");
    let port = free_port();
    let mqtt = format!("mqtt://127.0.0.1:{}", broker.port);
    let (pump, flange) = (
        format!("pump={}", s(long_video())),
        format!("flange={}", s(long_video())),
    );
    let mut extra = vec!["--camera", &pump, "--camera", &flange, "--realtime"];
    extra.extend(["--mqtt", &mqtt]);
    extra.extend(WHOLE_FRAME_IS_GAS);
    let watch = start_watch(f, &out, port, &extra);

    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{port}/"));

    // The live image is drawn, and changes.
    let first = browser
        .wait_for(
            &format!("return (function(){{{LIVE_IMAGE}}}).apply(null, ['pump']);"),
            Duration::from_secs(20),
        )
        .expect("the page shows pump's live image");
    let changed = browser.wait_for(
        &format!(
            "const now = (function(){{{LIVE_IMAGE}}}).apply(null, ['pump']);
             return now && now[0] !== {0} && now[1] !== {1} ? now : null;",
            first[0], first[1]
        ),
        Duration::from_secs(10),
    );
    assert!(
        changed.is_some(),
        "pump's live image did not change from {first}"
    );

    // Each `new` shows in the list within 1 s of being written.
    let in_list = |id: &str| {
        browser.execute(
            "return !!document.querySelector(`li.event[data-event-id=\"${arguments[0]}\"]`);",
            serde_json::json!([id]),
        ) == serde_json::Value::Bool(true)
    };
    let mut written: Option<(String, Instant)> = None;
    let start = Instant::now();
    let shown = loop {
        if written.is_none() {
            written = records(&out)
                .iter()
                .find(|r| r["type"] == "new" && r["camera"] == "pump")
                .map(|r| (r["id"].as_str().unwrap().to_string(), Instant::now()));
        }
        if let Some((id, at)) = &written {
            if in_list(id) {
                break at.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no event of pump in the page's list (written: {written:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = written.unwrap().0;
    assert!(
        shown <= Duration::from_secs(1),
        "{id} listed {shown:?} after it was written"
    );

    // Marked a false positive from the page: recorded, ended, published, shown.
    browser.click(&format!(
        "li.event[data-event-id=\"{id}\"] button.false-positive"
    ));
    wait_until("the false_positive record", Duration::from_secs(10), || {
        records(&out)
            .iter()
            .any(|r| r["type"] == "false_positive" && r["id"] == id.as_str())
    });
    let marked = records(&out)
        .into_iter()
        .find(|r| r["type"] == "false_positive")
        .unwrap();
    assert!(marked["marked_utc"].is_string() && marked["learned_until"].is_string());
    // The event's `end` is the line after the mark: it may not be written yet.
    wait_until(
        "the event's end as a false positive",
        Duration::from_secs(5),
        || {
            records(&out).iter().any(|r| {
                r["type"] == "end" && r["id"] == id.as_str() && r["end_reason"] == "false_positive"
            })
        },
    );
    wait_until("the mark on MQTT", Duration::from_secs(10), || {
        sub.payloads("fgstp/pump/leaks")
            .iter()
            .any(|p| p.contains("\"false_positive\"") && p.contains(&id))
    });
    browser
        .wait_for(
            &format!(
                "return document.querySelector('li.event[data-event-id=\"{id}\"]')\
                 ?.classList.contains('false-positive');"
            ),
            Duration::from_secs(5),
        )
        .expect("the page shows the event marked");

    // Suspended from the page: kept, and on MQTT.
    browser.execute(
        "document.querySelector('section.camera[data-camera=\"flange\"] input.suspend-minutes').value = '5';",
        serde_json::json!([]),
    );
    browser.click("section.camera[data-camera=\"flange\"] button.suspend");
    wait_until("flange suspended on MQTT", Duration::from_secs(10), || {
        sub.payloads("fgstp/flange/suspended")
            .last()
            .is_some_and(|p| p != "OFF")
    });
    assert!(std::fs::read_to_string(out.join("suspended.json"))
        .unwrap()
        .contains("flange"));

    // The learned false positive: gas where it was is not alerted again on pump.
    std::thread::sleep(Duration::from_secs(3));
    browser.screenshot(&artifacts().join("dashboard.png"));
    let done = interrupt(watch);
    assert!(done.status.success(), "{}", stderr(&done));
    let all = records(&out);
    let pump_news = all
        .iter()
        .filter(|r| r["type"] == "new" && r["camera"] == "pump")
        .count();
    assert_eq!(pump_news, 1, "{all:?}");
    let png = std::fs::read(artifacts().join("dashboard.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    drop(broker);
}

#[test]
fn the_api_lists_filters_and_serves_events_and_refuses_bad_input_with_4xx() {
    let f = fixture();
    let dir = f.root.join("dashboard-api");
    let out = dir.join("out");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let pump = format!("pump={}", s(long_video()));
    // A camera whose URL carries a password: it never shows.
    let dead = format!("door=rtsp://admin:s3cretpw@127.0.0.1:{}/x", free_port());
    let mut extra = vec!["--camera", &pump, "--camera", &dead, "--realtime"];
    extra.extend(WHOLE_FRAME_IS_GAS);
    extra.extend(["--set", "watch.learn_false_positives=false"]);
    let watch = start_watch(f, &out, port, &extra);

    wait_until("pump's first event", Duration::from_secs(30), || {
        records(&out).iter().any(|r| r["type"] == "new")
    });
    wait_until("door reconnecting", Duration::from_secs(10), || {
        get_json(&format!("{base}/api/cameras"), &[])
            .1
            .to_string()
            .contains("reconnecting")
    });
    let (status, stats) = get_json(&format!("{base}/api/stats"), &[]);
    assert_eq!(status, 200);
    assert!(
        stats["cameras"]["pump"]["analysed"].as_u64().unwrap() > 0,
        "{stats}"
    );
    let (_, list) = get_json(&format!("{base}/api/events?camera=pump"), &[]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["camera"], "pump");
    assert!(list[0]["snapshot"].as_bool().unwrap());
    let (status, one) = get_json(&format!("{base}/api/events/{id}"), &[]);
    assert_eq!((status, &one["id"]), (200, &serde_json::json!(id)));
    for (query, count) in [
        ("camera=door", 0),
        ("since=2099-01-01T00:00:00Z", 0),
        ("until=2000-01-01T00:00:00Z", 0),
        ("zone=flare", 0),
        ("since=2000-01-01T00:00:00Z&limit=1", 1),
    ] {
        let (status, list) = get_json(&format!("{base}/api/events?{query}"), &[]);
        assert_eq!(status, 200, "{query}");
        assert_eq!(list.as_array().unwrap().len(), count, "{query}: {list}");
    }
    let (status, kind, png) = http(
        "GET",
        &format!("{base}/api/events/{id}/snapshot.png"),
        &[],
        None,
    );
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert!(png.starts_with(b"\x89PNG"));
    // Files are streamed with Range requests answered (seeking in clips; Safari).
    let (status, _, head) = http(
        "GET",
        &format!("{base}/api/events/{id}/snapshot.png"),
        &[("Range", "bytes=0-7")],
        None,
    );
    assert_eq!((status, head.as_slice()), (206, &png[..8]));
    let (status, _, _) = http(
        "GET",
        &format!("{base}/api/events/{id}/snapshot.png"),
        &[("Range", "bytes=999999999-")],
        None,
    );
    assert_eq!(status, 416);
    let (status, kind, jpeg) = http(
        "GET",
        &format!("{base}/api/cameras/pump/latest.jpg"),
        &[],
        None,
    );
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    let (status, area) = get_json(&format!("{base}/api/cameras/pump/area?minutes=5"), &[]);
    assert_eq!(status, 200);
    assert!(
        area.as_array()
            .unwrap()
            .iter()
            .any(|p| p[1].as_f64().unwrap() > 50.0),
        "{area}"
    );

    // Not learned (learn_false_positives = false): recorded, the event goes on.
    let (status, marked) = post_json(&format!("{base}/api/events/{id}/false_positive"), "{}");
    assert_eq!(status, 200, "{marked}");
    assert!(marked["false_positive"].is_string() && marked["learned_until"].is_null());
    let (status, _) = post_json(&format!("{base}/api/events/{id}/false_positive"), "{}");
    assert_eq!(status, 409);

    // Bad input: 4xx with a reason, never a panic, never a file outside DIR.
    let long_query = format!("camera={}", "a".repeat(2000));
    for (path, want) in [
        ("/api/events/..%2F..%2Fstats.json", 400),
        ("/api/events/..%2Fevents.jsonl/snapshot.png", 400),
        ("/api/events/nope-1", 404),
        ("/api/events/nope-1/clip.mp4", 404),
        ("/api/events?limit=0", 400),
        ("/api/events?limit=abc", 400),
        ("/api/events?since=yesterday", 400),
        ("/api/events?camera=../x", 400),
        ("/api/events?camera=a&camera=b", 400),
        ("/api/events?rm=1", 400),
        (&format!("/api/events?{long_query}"), 400),
        ("/api/cameras/nope/latest.jpg", 404),
        ("/api/cameras/..%2F/latest.jpg", 400),
        ("/api/cameras/pump/area?minutes=61", 400),
        ("/etc/passwd", 404),
        ("/../stats.json", 404),
    ] {
        let (status, kind, body) = http("GET", &format!("{base}{path}"), &[], None);
        assert_eq!(
            status,
            want,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(kind, "application/json", "{path}");
    }
    let suspend = format!("{base}/api/cameras/pump/suspend");
    for body in [
        "{\"minutes\": -1}",
        "{\"minutes\": \"x\"}",
        "{\"minutes\": 1e9}",
        "[",
        "{}",
    ] {
        let (status, _) = post_json(&suspend, body);
        assert!((400..500).contains(&status), "{body}: {status}");
    }
    let (status, _, _) = http(
        "POST",
        &suspend,
        &[("Content-Type", "text/plain")],
        Some(b"5"),
    );
    assert_eq!(status, 415);
    // Just over the 16 KiB limit: the server answers 413 and closes without reading the rest,
    // and a much larger body could still be being written then (a broken pipe, not a 413).
    let big = format!("{{\"minutes\": 1, \"pad\": \"{}\"}}", "x".repeat(17 * 1024));
    let (status, _) = post_json(&suspend, &big);
    assert_eq!(status, 413);
    let (status, answer) = post_json(&suspend, "{\"minutes\": 0}");
    assert_eq!(
        (status, &answer["suspended_until"]),
        (200, &serde_json::Value::Null)
    );
    // Dot segments as sent (HTTP clients resolve them before sending).
    let host = format!("127.0.0.1:{port}");
    for path in [
        "/api/events/%2e%2e/clip.mp4",
        "/api/events/../../events.jsonl",
    ] {
        let answer = raw_get(port, path, &host);
        assert!(answer.starts_with("HTTP/1.1 4"), "{path}: {answer}");
        assert!(!answer.contains("\"type\":\"new\""), "{path}: {answer}");
    }
    // A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is refused.
    assert!(raw_get(port, "/api/stats", "evil.example:80").starts_with("HTTP/1.1 403"));
    assert!(raw_get(port, "/api/stats", &format!("localhost:{port}")).starts_with("HTTP/1.1 200"));

    // The password of door's URL: nowhere in the API, the page's stream, the logs.
    let mut seen = String::new();
    for path in ["/api/cameras", "/api/stats", "/api/events", "/"] {
        seen.push_str(&String::from_utf8_lossy(
            &http("GET", &format!("{base}{path}"), &[], None).2,
        ));
    }
    assert!(seen.contains("door"), "{seen}");
    let done = interrupt(watch);
    assert!(done.status.success(), "{}", stderr(&done));
    seen.push_str(&stderr(&done));
    for file in ["events.jsonl", "status.jsonl", "stats.json"] {
        seen.push_str(&std::fs::read_to_string(out.join(file)).unwrap());
    }
    for secret in ["s3cretpw", "admin:"] {
        let at = seen
            .find(secret)
            .map(|i| &seen[i.saturating_sub(200)..(i + 200).min(seen.len())]);
        assert!(at.is_none(), "{secret} shows: {at:?}");
    }
}

/// Reads until the server closes the connection (or 20 s pass): (what it sent, when it closed).
fn read_until_closed(stream: &mut std::net::TcpStream, start: Instant) -> (String, Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn silent_and_trickling_clients_are_cut_off_after_the_client_timeout() {
    let f = fixture();
    let dir = f.root.join("dashboard-timeouts");
    let out = dir.join("out");
    let port = free_port();
    let pump = format!("pump={}", s(long_video()));
    let watch = start_watch(
        f,
        &out,
        port,
        &[
            "--camera",
            &pump,
            "--realtime",
            "--set",
            "watch.http.client_timeout=1",
        ],
    );
    let host = format!("127.0.0.1:{port}");
    let connect = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();

    // Connected, nothing sent: closed after the timeout.
    let start = Instant::now();
    let (answer, closed) = read_until_closed(&mut connect(), start);
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(8),
        "a silent connection closed after {closed:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A request head trickled a byte every 200 ms: the timeout counts from its first byte.
    let mut trickle = connect();
    let start = Instant::now();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    for byte in head.bytes().take(20) {
        if trickle.write_all(&[byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (answer, closed) = read_until_closed(&mut trickle, start);
    assert!(
        closed < Duration::from_secs(8) && !answer.contains("200 OK"),
        "a trickled head was answered {answer:?} after {closed:?}"
    );

    // A body that stops short of its length: 408, the connection freed.
    let mut short = connect();
    let start = Instant::now();
    write!(
        short,
        "POST /api/cameras/pump/suspend HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"minutes\""
    )
    .unwrap();
    let (answer, closed) = read_until_closed(&mut short, start);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed < Duration::from_secs(8), "answered after {closed:?}");

    // Nothing was suspended, and a whole request is still answered at once.
    let (status, cameras) = get_json(&format!("http://{host}/api/cameras"), &[]);
    assert_eq!(status, 200);
    assert_eq!(cameras[0]["name"], "pump", "{cameras}");
    assert!(cameras[0]["suspended_until"].is_null(), "{cameras}");
    let done = interrupt(watch);
    assert!(done.status.success(), "{}", stderr(&done));
}

#[test]
fn a_token_guards_every_route_and_other_addresses_need_one() {
    let f = fixture();
    let dir = f.root.join("dashboard-token");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let pump = format!("pump={}", s(long_video()));

    // Beyond the loopback without a token: refused before anything is opened.
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &pump, "--listen", "0.0.0.0:1"]);
    let refused = crate::common::fgstp(&args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("watch.http.token"),
        "{}",
        stderr(&refused)
    );

    let token = "correct-horse-battery-staple";
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let set = format!("watch.http.token_file={}", s(&token_file));
    let watch = start_watch(
        f,
        &out,
        port,
        &["--camera", &pump, "--realtime", "--set", &set],
    );
    let bearer = format!("Bearer {token}");
    for path in [
        "/api/stats",
        "/api/events",
        "/api/cameras/pump/latest.jpg",
        "/api/live",
    ] {
        let (status, _, _) = http("GET", &format!("{base}{path}"), &[], None);
        assert_eq!(status, 401, "{path}");
        let wrong = http(
            "GET",
            &format!("{base}{path}"),
            &[("Authorization", "Bearer nope")],
            None,
        );
        assert_eq!(wrong.0, 401, "{path}");
    }
    let (status, _) = post_json(
        &format!("{base}/api/cameras/pump/suspend"),
        "{\"minutes\":1}",
    );
    assert_eq!(status, 401);
    assert_eq!(
        get_json(&format!("{base}/api/stats"), &[("Authorization", &bearer)]).0,
        200
    );
    // The scheme's name in any case (RFC 9110); wrong tokens are answered one a second,
    // however many connections guess at once.
    let lower = format!("bearer {token}");
    assert_eq!(
        get_json(&format!("{base}/api/stats"), &[("Authorization", &lower)]).0,
        200
    );
    let started = std::time::Instant::now();
    let guesses: Vec<_> = (0..3)
        .map(|_| {
            let url = format!("{base}/api/stats");
            std::thread::spawn(move || http("GET", &url, &[("Authorization", "Bearer x")], None).0)
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.join().unwrap(), 401);
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three parallel guesses answered in {:?}",
        started.elapsed()
    );
    assert_eq!(get_json(&format!("{base}/healthz"), &[]).0, 200);
    // The page sends the browser to the login form; the right token gets a session cookie.
    let page = ureq::AgentBuilder::new().redirects(0).build();
    let to_login = page.get(&format!("{base}/")).call();
    let (Err(ureq::Error::Status(303, r)) | Ok(r)) = to_login else {
        panic!("GET / without a token: not a redirect");
    };
    assert_eq!(r.header("location"), Some("/login"));
    let login = page
        .post(&format!("{base}/login"))
        .send_form(&[("token", token)]);
    let (Err(ureq::Error::Status(303, r)) | Ok(r)) = login else {
        panic!("POST /login with the token: not a redirect");
    };
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(token));
    let session = cookie.split(';').next().unwrap();
    assert_eq!(
        get_json(&format!("{base}/api/stats"), &[("Cookie", session)]).0,
        200
    );
    let (status, _, _) = http("GET", &format!("{base}/"), &[("Cookie", session)], None);
    assert_eq!(status, 200);
    let wrong = page
        .post(&format!("{base}/login"))
        .send_form(&[("token", "guess")]);
    assert!(matches!(wrong, Err(ureq::Error::Status(401, _))));
    let done = interrupt(watch);
    assert!(!stderr(&done).contains(token), "{}", stderr(&done));
}

/// Each camera's analysed frames per second over the window, from `/api/stats`.
fn analysed_fps(base: &str, window: Duration) -> Vec<(String, f64)> {
    let count = || {
        let (_, stats) = get_json(&format!("{base}/api/stats"), &[]);
        stats["cameras"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["analysed"].as_u64().unwrap_or(0)))
            .collect::<Vec<_>>()
    };
    let before = count();
    std::thread::sleep(window);
    let after = count();
    before
        .iter()
        .zip(after)
        .map(|((name, a), (_, b))| (name.clone(), (b - a) as f64 / window.as_secs_f64()))
        .collect()
}

#[test]
fn eight_cameras_of_one_stream_share_the_model_fairly_and_stats_answer_fast_under_load() {
    let f = fixture();
    let dir = f.root.join("dashboard-load");
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start(&dir, free_port());
    let _sub = Subscriber::start(broker.port, dir.join("sub.txt"), &["fgstp/#"]);
    let server = RtspServer::serve(long_video(), 0, &[]);
    let url = format!("rtsp://127.0.0.1:{}/cam", server.port);
    let cameras: Vec<String> = (1..=8).map(|k| format!("cam{k}={url}")).collect();
    let mqtt = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut extra: Vec<&str> = Vec::new();
    for c in &cameras {
        extra.extend(["--camera", c]);
    }
    extra.extend(["--mqtt", &mqtt, "--set", "watch.detect_fps=5"]);
    extra.extend(["--set", "watch.stats_interval=0.25"]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let watch = start_watch(f, &dir.join("out"), port, &extra);
    let browser = Browser::start();
    browser.goto(&format!("{base}/"));
    wait_until("every camera analysed", Duration::from_secs(30), || {
        let (_, stats) = get_json(&format!("{base}/api/stats"), &[]);
        (1..=8).all(|k| stats["cameras"][format!("cam{k}")]["analysed"].as_u64() > Some(5))
    });

    // /api/stats at 50 requests/s for 4 s, while the fps of each camera is measured over 8 s.
    let load = std::thread::spawn({
        let url = format!("{base}/api/stats");
        move || {
            let mut times = Vec::new();
            let start = Instant::now();
            for k in 0..200u32 {
                let due = start + Duration::from_millis(20) * k;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let t = Instant::now();
                let (status, _, _) = http("GET", &url, &[], None);
                assert_eq!(status, 200);
                times.push(t.elapsed());
            }
            times
        }
    });
    let fps = analysed_fps(&base, Duration::from_secs(8));
    let mut times = load.join().unwrap();
    times.sort();
    let p95 = times[times.len() * 95 / 100];
    let shown: Vec<String> = browser
        .execute(
            "return [...document.querySelectorAll('section.camera img.live')].map(i => i.dataset.seq || '');",
            serde_json::json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    browser.screenshot(&artifacts().join("dashboard-8-cameras.png"));
    drop(browser);
    let done = interrupt(watch);
    assert!(done.status.success(), "{}", stderr(&done));
    eprintln!("analysed fps per camera: {fps:?}; /api/stats p95 {p95:?} at 50 requests/s");
    assert!(p95 <= Duration::from_millis(50), "/api/stats p95 {p95:?}");
    let (low, high) = fps
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), (_, v)| (l.min(*v), h.max(*v)));
    assert!(low > 0.0 && low >= 0.8 * high, "a camera starves: {fps:?}");
    assert_eq!(shown.len(), 8);
    assert!(
        shown.iter().all(|s| !s.is_empty()),
        "a live image is missing: {shown:?}"
    );
}
