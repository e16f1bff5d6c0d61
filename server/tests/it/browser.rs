//! The operator console in headless Chromium (Debian's chromium + chromium-driver, installed by
//! `make test`): upload two testdata photos through the page's file inputs, click, read the decision.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{KEY, Server, config, data_dir, http, root};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    addr: SocketAddr,
    child: Child,
    session: String,
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; `make test` installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut driver = Driver { addr, child, session: String::new() };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}});
        let reply = driver.call("POST", "/session", Some(caps));
        driver.session =
            reply["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {reply}")).to_string();
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let reply =
            http(self.addr, method, path, &[("Content-Type", "application/json".into())], body.as_bytes());
        let value = reply.json();
        assert!(reply.status < 300, "{method} {path}: {value}");
        value["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn find(&self, css: &str) -> String {
        let found = self.session("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        if !css.starts_with("#photo") {
            self.session("POST", &format!("/element/{id}/clear"), Some(json!({})));
        }
        self.session("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.session("GET", &format!("/element/{id}/text"), None).as_str().unwrap_or_default().to_string()
    }

    /// Waits for `css` to show a final decision.
    fn decision(&self) -> String {
        let started = Instant::now();
        loop {
            let text = self.text("#decision");
            // A decision, an enrolment, or an error message ending with its code in brackets.
            if text.contains("MATCH") || text.starts_with("Enrolment") || text.ends_with(')') {
                return text;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no decision shown: {text:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.addr, "DELETE", &format!("/session/{}", self.session), &[], b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn console_compares_two_uploaded_photos_in_headless_chromium() {
    let dir = data_dir("browser");
    let server = Server::start(config(&dir));
    let driver = Driver::start(&dir.path().join("chromium-profile"));
    driver.session("POST", "/url", Some(json!({ "url": format!("http://{}/", server.addr) })));
    driver.type_into("#key", KEY);

    let photos = root().join("testdata/identities");
    let upload = |a: &str, b: &str| {
        driver.type_into("#photo_a", &photos.join(a).display().to_string());
        driver.type_into("#photo_b", &photos.join(b).display().to_string());
        driver.click("#compare");
        driver.decision()
    };
    assert_eq!(upload("fr_obama/obama.jpg", "fr_obama/obama2.jpg"), "MATCH");
    let score: f32 = driver.text("#score").parse().expect("a score on the page");
    assert!(score > 0.363, "score {score}");
    assert!(!driver.find(".crop").is_empty(), "aligned crops shown");
    if let Ok(path) = std::env::var("WAJAH_SCREENSHOT") {
        use base64::Engine as _;
        driver.session("POST", "/window/rect", Some(json!({ "width": 1000, "height": 1300 })));
        let png = driver.session("GET", "/screenshot", None);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("png");
        std::fs::write(path, bytes).expect("screenshot written");
    }
    // Same inputs, new files: the page must clear and show the new decision.
    driver.session("POST", "/refresh", Some(json!({})));
    driver.type_into("#key", KEY);
    assert_eq!(upload("fr_obama/obama.jpg", "fr_biden/biden.jpg"), "NO MATCH");

    // Registration mode (the console's default) and Bahasa Indonesia (its default): enrol an ID
    // photo, then a masked selfie is refused with the message a citizen reads.
    driver.session("POST", "/refresh", Some(json!({})));
    driver.type_into("#key", KEY);
    driver.type_into("#nik", "3201011505900001");
    let testdata = root().join("testdata");
    driver.type_into("#ktp", &testdata.join("capture/replay/id_photo.jpg").display().to_string());
    driver.click("#enrol");
    assert_eq!(driver.decision(), "Enrolment created");
    let masked = testdata.join("robustness/insightface___robustness__mask2.jpg");
    driver.type_into("#selfie", &masked.display().to_string());
    driver.click("#verify");
    let shown = driver.decision();
    assert!(
        shown.starts_with("Foto belum memenuhi syarat") && shown.ends_with("(capture_rejected)"),
        "{shown}"
    );
    let problems = driver.text("#scoreline");
    assert!(problems.contains("Lepaskan masker Anda. (mask)"), "{problems}");
    drop(driver);
    drop(server);
}
