//! A small blocking WebDriver client for the tests that open a web page in a real browser:
//! Debian's chromium, headless, driven through `chromedriver` (both installed by
//! `scripts/setup-system`) over the W3C WebDriver protocol.
//!
//! Each `Browser` has a chromedriver of its own on a free port of 127.0.0.1, one session, and a
//! scratch folder (chromium's profile and chromedriver's log) under cargo's `target/tmp`.
//! Failures panic with the WebDriver error (and chromedriver's log when starting fails); every
//! request has a time limit, so a hung browser fails the test instead of hanging it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// The key of a web element's id in WebDriver's JSON (the W3C spec's "web element identifier").
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long chromedriver may take to answer that it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// The limit of one HTTP request to chromedriver.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The limits the session puts on scripts and page loads (ms), within `REQUEST_TIMEOUT`, so
/// that WebDriver reports them as errors before the request itself times out.
const SCRIPT_TIMEOUT_MS: u64 = 20_000;
const PAGE_LOAD_TIMEOUT_MS: u64 = 20_000;
/// The poll interval of `Browser::wait_for`.
const POLL: Duration = Duration::from_millis(50);

/// A headless chromium session behind a chromedriver of its own (quit and stopped on drop).
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    session: Option<String>,
    agent: ureq::Agent,
    log: PathBuf,
    /// Chromium's `--user-data-dir` and chromedriver's log; removed after both have stopped.
    dir: tempfile::TempDir,
}

/// Why chromedriver did not become ready.
enum NotReady {
    /// It exited (its port may have been taken since `free_port` let it go): worth a retry.
    Exited(String),
    TimedOut,
}

impl Browser {
    /// chromedriver on a free 127.0.0.1 port and a headless chromium session (`--headless=new
    /// --no-sandbox --disable-gpu --disable-dev-shm-usage --window-size=1280,900`, a profile of
    /// its own in a scratch folder). Waits at most 20 s for chromedriver to be ready.
    pub fn start() -> Browser {
        let mut attempt = 1;
        loop {
            let mut browser = Browser::spawn_driver();
            match browser.wait_ready() {
                Ok(()) => {
                    browser.new_session();
                    return browser;
                }
                Err(NotReady::Exited(_)) if attempt < 3 => attempt += 1,
                Err(why) => {
                    let why = match why {
                        NotReady::Exited(status) => format!("it exited ({status})"),
                        NotReady::TimedOut => format!(
                            "it did not answer ready on {}/status within {} s",
                            browser.base,
                            READY_WITHIN.as_secs()
                        ),
                    };
                    panic!(
                        "chromedriver did not start: {why}; its log:\n{}",
                        browser.log_tail()
                    );
                }
            }
        }
    }

    /// Starts chromedriver (not yet waited for), its output going to the log file.
    fn spawn_driver() -> Browser {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        let dir = tempfile::Builder::new()
            .prefix("chromium-")
            .tempdir_in(parent)
            .unwrap_or_else(|e| {
                panic!("a scratch folder for chromium in {}: {e}", parent.display())
            });
        let log = dir.path().join("chromedriver.log");
        let out = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("sharing {} with stderr: {e}", log.display()));
        let port = super::free_port();
        // Not inherited: a chromium left behind would hold the test's stdout and stderr open.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "running {CHROMEDRIVER} failed ({e}): install chromium and chromium-driver \
                     (scripts/setup-system)"
                )
            });
        Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            agent: ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build(),
            log,
            dir,
        }
    }

    /// Polls chromedriver's `/status` until it says ready.
    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_WITHIN;
        let url = format!("{}/status", self.base);
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(NotReady::Exited(status.to_string()));
            }
            let ready = self
                .agent
                .get(&url)
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .is_some_and(|v| v["value"]["ready"] == Value::Bool(true));
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NotReady::TimedOut);
            }
            std::thread::sleep(POLL);
        }
    }

    fn new_session(&mut self) {
        let profile = self.dir.path().join("profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"script": SCRIPT_TIMEOUT_MS, "pageLoad": PAGE_LOAD_TIMEOUT_MS, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // The tests run as root, where chromium refuses its sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let value = match self.request("POST", "/session", Some(&capabilities)) {
            Ok(value) => value,
            Err(e) => panic!(
                "chromedriver could not start chromium ({CHROMIUM}): {e}; chromedriver's log:\n{}",
                self.log_tail()
            ),
        };
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver's new session has no sessionId: {value}"));
        self.session = Some(id.to_owned());
    }

    /// Opens `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` as the body of a function (`return` gives its value) in the page, with
    /// `args` as `arguments`: an array is the list of arguments, `null` none, any other value
    /// the one argument. Returns the function's value (a promise's, once it settles).
    pub fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": argument_list(args) });
        self.command("POST", "/execute/sync", body)
    }

    /// Like `execute`, but the script's last argument is the callback to call with the result
    /// (within 20 s).
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": argument_list(args) });
        self.command("POST", "/execute/async", body)
    }

    /// Clicks the first element that matches the CSS selector `css` (as a user would: scrolled
    /// into view, and failing if another element covers it).
    pub fn click(&self, css: &str) {
        let found = self.command(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver found {css:?} but gave no element id: {found}"));
        self.command("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Writes a PNG screenshot of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let value = self.command("GET", "/screenshot", Value::Null);
        let encoded = value
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver's screenshot is not a string: {value:.200}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|e| panic!("WebDriver's screenshot is not base64: {e}"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Runs `script` (as `execute`, without arguments) every 50 ms until it returns a truthy
    /// value (JavaScript's sense: not null, false, 0 or ""), which it returns; None once
    /// `timeout` has passed. A script that throws fails the test: return null while waiting.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, Value::Null);
            if truthy(&value) {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends a command of the session (`path` after `/session/ID`), panicking on failure.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let session = self
            .session
            .as_deref()
            .expect("a WebDriver command before the session was made");
        let body = (!body.is_null()).then_some(&body);
        self.request(method, &format!("/session/{session}{path}"), body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Sends one WebDriver request; the response's `value`, or the error as text.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        let response = match body {
            Some(body) => request
                .set("Content-Type", "application/json; charset=utf-8")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        let (status, response) = match response {
            Ok(response) => (200, response),
            Err(ureq::Error::Status(status, response)) => (status, response),
            Err(e) => return Err(format!("no answer from chromedriver: {e}")),
        };
        // Not `into_string`, which stops at 10 MB (a screenshot may come near that).
        let mut text = String::new();
        response
            .into_reader()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading chromedriver's answer (HTTP {status}): {e}"))?;
        let mut json: Value = serde_json::from_str(&text).map_err(|e| {
            format!("chromedriver's answer (HTTP {status}) is not JSON ({e}): {text:.500}")
        })?;
        let value = json["value"].take();
        if status == 200 {
            Ok(value)
        } else {
            Err(format!(
                "HTTP {status}, {}: {}",
                value["error"].as_str().unwrap_or("(no error code)"),
                value["message"].as_str().unwrap_or(&text)
            ))
        }
    }

    /// The last lines of chromedriver's log.
    fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
            Err(e) => format!("({} unreadable: {e})", self.log.display()),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Quits chromium; chromedriver alone would leave it running.
            let _ = self.request("DELETE", &format!("/session/{session}"), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn argument_list(args: Value) -> Value {
    match args {
        Value::Array(_) => args,
        Value::Null => json!([]),
        other => json!([other]),
    }
}

/// Whether JavaScript takes `value` for true.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[test]
fn headless_chromium_runs_a_script_and_takes_a_screenshot() {
    let page = "<!doctype html><title>webdriver</title>\
        <body style='background: linear-gradient(90deg, teal, orange)'>\
        <button id='go' onclick=\"document.getElementById('out').textContent = 'clicked'\">Go</button>\
        <div id='out'>waiting</div>\
        <script>setTimeout(function () { document.body.dataset.late = 'yes'; }, 200);</script>";
    let url: String = std::iter::once("data:text/html;charset=utf-8,".to_owned())
        .chain(page.bytes().map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        }))
        .collect();
    let text = "return document.getElementById('out').textContent";

    let browser = Browser::start();
    browser.goto(&url);
    assert_eq!(browser.execute(text, Value::Null), json!("waiting"));
    browser.click("#go");
    assert_eq!(browser.execute(text, Value::Null), json!("clicked"));
    assert_eq!(
        browser.execute("return arguments[0] + arguments[1]", json!([2, 3])),
        json!(5)
    );
    assert_eq!(
        browser.execute_async(
            "const [word, done] = arguments; setTimeout(() => done(word + '!'), 50);",
            json!("late")
        ),
        json!("late!")
    );
    assert_eq!(
        browser.wait_for(
            "return document.body.dataset.late || null",
            Duration::from_secs(10)
        ),
        Some(json!("yes"))
    );
    assert_eq!(
        browser.wait_for("return 0", Duration::from_millis(200)),
        None
    );

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("page.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "not a PNG of the page ({} bytes)",
        png.len()
    );
}
