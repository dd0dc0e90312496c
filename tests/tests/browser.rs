//! The web pages in a real browser: `cairn devnet up` runs four nodes and
//! seeds the demo credentials; headless Chromium, driven over WebDriver by
//! Debian's chromedriver, opens the verifier page, drops the demo
//! presentation file on it and reads the verdict; the credential is then
//! revoked with `cairn tx revoke` and the page must show it revoked. Each
//! page is saved as a screenshot (paths printed) for a person to look at.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (`scripts/setup`
//! installs them); `CAIRN_CHROMEDRIVER` and `CAIRN_CHROMIUM` override the
//! paths.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use cairn_devnet::layout::Layout;
use cairn_devnet::seed;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);

fn cairn_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_BIN") {
        return PathBuf::from(path);
    }
    let mut bin = std::env::current_exe().unwrap();
    bin.pop();
    if bin.ends_with("deps") {
        bin.pop();
    }
    bin.join("cairn")
}

fn free_port() -> u16 {
    cairn_devnet::layout::free_port().unwrap()
}

/// A running `cairn devnet up`, stopped with SIGINT (as Ctrl-C) on drop.
struct Devnet {
    child: Child,
    layout: Layout,
    log: PathBuf,
}

impl Devnet {
    fn up(dir: &Path) -> Devnet {
        let layout = Layout::new(dir.join("devnet"));
        let log = dir.join("devnet-up.log");
        let child = Command::new(cairn_bin())
            .args(["devnet", "up", "--dir"])
            .arg(layout.root())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let devnet = Devnet { child, layout, log };
        let start = Instant::now();
        // The summary (printed after seeding) ends with the Ctrl-C line.
        while !std::fs::read_to_string(&devnet.log)
            .unwrap_or_default()
            .contains("Ctrl-C stops every node")
        {
            assert!(
                start.elapsed() < T,
                "devnet not seeded after {T:?}:\n{}",
                std::fs::read_to_string(&devnet.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        devnet
    }

    fn api(&self, i: usize) -> String {
        self.layout.manifest().unwrap().nodes[i].api()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session with headless Chromium.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(profile: &Path) -> Browser {
        let chromedriver =
            std::env::var("CAIRN_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium =
            std::env::var("CAIRN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromedriver).exists() && Path::new(&chromium).exists(),
            "{chromedriver} or {chromium} is missing: run ./scripts/setup (it installs Debian's chromium and chromium-driver)"
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            let ready = agent
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
        };
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1100,1400",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }}}),
        );
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let value: Value = response.body_mut().read_json().unwrap();
        assert_eq!(status, 200, "WebDriver {method} {path}: {value}");
        value["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// The element matching `css`, waiting for it to appear.
    fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let found = self.call(
                "POST",
                "/execute/sync",
                json!({"script": "return document.querySelector(arguments[0]) !== null;", "args": [css]}),
            );
            if found == true {
                let e = self.call(
                    "POST",
                    "/element",
                    json!({"using": "css selector", "value": css}),
                );
                return e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{css}: {e}"))
                    .to_owned();
            }
            assert!(start.elapsed() < T, "no {css} on the page");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), Value::Null)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until `script` (a JS expression) is true on the page.
    fn wait_until(&self, what: &str, script: &str) {
        let start = Instant::now();
        while self.call(
            "POST",
            "/execute/sync",
            json!({"script": format!("return Boolean({script});"), "args": []}),
        ) != true
        {
            assert!(start.elapsed() < T, "{what}: still false after {T:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens the verifier page of `api`, gives it `file` through its file
    /// input (as a person choosing or dropping it) and returns the verdict.
    fn verify_file(&self, api: &str, file: &Path) -> String {
        self.go(&format!("{api}/verify"));
        let input = self.find("#file");
        self.call(
            "POST",
            &format!("/element/{input}/value"),
            json!({"text": file.display().to_string()}),
        );
        self.wait_until("a verdict", "document.querySelector('#verdict-banner')");
        self.text("#verdict-banner")
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `CAIRN_SCREENSHOTS`, else `screenshots/` next to
/// the test binaries (in the target folder, never in the work tree).
fn screenshots() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_SCREENSHOTS") {
        return PathBuf::from(dir);
    }
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    dir.join("screenshots")
}

#[test]
fn the_web_verifier_shows_the_demo_license_valid_then_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::up(dir.path());
    let seeded = seed::seeded(&devnet.layout).expect("the devnet was seeded");
    let api = devnet.api(1);
    let browser = Browser::start(&dir.path().join("chromium-profile"));

    // The explorer: blocks, validators, issuers, types, no evidence.
    browser.go(&format!("{api}/"));
    browser.wait_until(
        "blocks listed",
        "document.querySelectorAll('#blocks tbody tr').length > 0",
    );
    browser.wait_until(
        "issuers listed",
        "document.querySelectorAll('#issuers tbody tr').length > 0",
    );
    assert!(
        browser.text("#validators").contains("交通警察"),
        "validators by name"
    );
    assert!(browser.text("#no-evidence").contains("None"));
    browser.screenshot("1-explorer");

    // The verifier: the demo presentation file, dropped through the file input.
    let file = seeded.presentation.canonicalize().unwrap();
    let verdict = browser.verify_file(&api, &file);
    assert!(verdict.contains("有效 VALID"), "{verdict}");
    assert!(!verdict.contains("NOT VALID"), "{verdict}");
    let checks = browser.text("#checks");
    for label in ["Finality", "Inclusion", "Accreditation", "Status"] {
        assert!(checks.contains(label), "{label} in {checks}");
    }
    assert!(!checks.contains('✗'), "{checks}");
    browser.screenshot("2-verifier-valid");

    // The issuer revokes it.
    let out = Command::new(cairn_bin())
        .args([
            "tx",
            "revoke",
            &seeded.presented,
            "--reason",
            "revoked-as-penalty",
            "--node",
        ])
        .arg(devnet.api(0))
        .arg("--key")
        .arg(devnet.layout.police_key(0))
        .arg("--wait")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let at = stdout.rsplit("finalized at height ").next().unwrap().trim();
    let height: u64 = at.parse().unwrap();
    let start = Instant::now();
    while cairn_devnet::client::Api::new(api.as_str())
        .height()
        .unwrap_or(0)
        < height
    {
        assert!(start.elapsed() < T, "node 1 never reached height {height}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same file on the same page: now refused, and it says why.
    let verdict = browser.verify_file(&api, &file);
    assert!(verdict.contains("NOT VALID"), "{verdict}");
    assert!(verdict.contains("revoked"), "{verdict}");
    assert!(verdict.contains("吊销"), "{verdict}");
    let status = browser.find("li[data-check=status][data-passed=false]");
    assert!(!status.is_empty());
    assert!(browser.text("#stapled").contains("newer and prevails"));
    browser.screenshot("3-verifier-revoked");
    // The same on a phone's width: the verdict still heads the page.
    browser.call("POST", "/window/rect", json!({"width": 390, "height": 844}));
    let width = browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "return document.querySelector('#verdict-banner').getBoundingClientRect().width;", "args": []}),
    );
    assert!(
        width.as_f64().unwrap() <= 390.0,
        "the verdict fits a phone: {width}"
    );
    browser.screenshot("3-verifier-revoked-phone");
    browser.call(
        "POST",
        "/window/rect",
        json!({"width": 1100, "height": 1400}),
    );

    // The trace page: both events, each proven.
    browser.go(&format!("{api}/trace/{}", seeded.presented));
    browser.wait_until("a trace", "document.querySelector('#trace-banner')");
    assert!(browser.text("#trace-banner").contains("Every event proven"));
    let trace = browser.text("#trace");
    assert!(
        trace.contains("签发 anchored") && trace.contains("吊销/撤销 revoked"),
        "{trace}"
    );
    browser.screenshot("4-trace");

    // The regulator's page: the revocation, found by kind.
    browser.go(&format!("{api}/regulator"));
    let revoked = browser.find("input[data-kind=revoked]");
    browser.call("POST", &format!("/element/{revoked}/click"), json!({}));
    let search = browser.find("#search");
    browser.call("POST", &format!("/element/{search}/click"), json!({}));
    browser.wait_until(
        "the revocation listed",
        &format!(
            "document.querySelector('#events').dataset.state === 'done' && document.querySelector('#events').textContent.includes('{}') && !document.querySelector('#events').textContent.includes('签发 anchored')",
            &seeded.presented[..10]
        ),
    );
    browser.screenshot("5-regulator");
}
