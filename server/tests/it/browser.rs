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
    fn start(profile: &std::path::Path, extra: &[String]) -> Driver {
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
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend_from_slice(extra);
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

    /// Waits until `css` shows text for which `done` holds.
    fn wait_for(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if done(&text) {
                return text;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{css} shows {text:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
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
    let driver = Driver::start(&dir.path().join("chromium-profile"), &[]);
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

/// A Y4M video (4:2:0, 320x240, 10 frames a second) of `photo` held still in front of the camera:
/// what Chromium's fake camera plays in a loop.
fn still_video(photo: &std::path::Path, out: &std::path::Path) {
    let (w, h) = (320u32, 240u32);
    let face = image::open(photo).expect("photo").to_rgb8();
    let face = image::imageops::resize(&face, 184, 224, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut frame, &face, 68, 8);
    let luma =
        |p: &image::Rgb<u8>| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
    let y: Vec<u8> = frame.pixels().map(|p| luma(p) as u8).collect();
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for by in (0..h).step_by(2) {
        for bx in (0..w).step_by(2) {
            let p = frame.get_pixel(bx, by);
            let l = luma(p);
            u.push((128.0 + 0.564 * (f32::from(p[2]) - l)).clamp(0.0, 255.0) as u8);
            v.push((128.0 + 0.713 * (f32::from(p[0]) - l)).clamp(0.0, 255.0) as u8);
        }
    }
    let mut video = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..10 {
        video.extend_from_slice(b"FRAME\n");
        video.extend_from_slice(&y);
        video.extend_from_slice(&u);
        video.extend_from_slice(&v);
    }
    std::fs::write(out, video).expect("video written");
}

#[test]
fn liveness_page_runs_a_challenge_with_uploads_and_with_a_fake_camera() {
    let dir = data_dir("browser-liveness");
    let server = Server::start(config(&dir));
    let poses = root().join("testdata/liveness/poses");
    let nik = crate::nik(31);
    let enrolled = crate::post_form(
        server.addr,
        "/v1/enrollments",
        &[
            ("nik", nik.as_bytes(), false),
            ("photo", &crate::photo("liveness/poses/orl_s1_3.pgm"), true),
            ("mode", b"check", false),
        ],
    );
    assert_eq!(enrolled.status, 201);
    let video = dir.path().join("still.y4m");
    still_video(&poses.join("orl_s1_1.pgm"), &video);
    let camera = [
        "--use-fake-device-for-media-stream".to_string(),
        "--use-fake-ui-for-media-stream".to_string(),
        format!("--use-file-for-fake-video-capture={}", video.display()),
    ];
    let driver = Driver::start(&dir.path().join("chromium-profile"), &camera);
    let open = || {
        driver.session("POST", "/url", Some(json!({ "url": format!("http://{}/liveness", server.addr) })));
        driver.type_into("#key", KEY);
        driver.click("#mode option[value=check]");
    };

    // Uploads of real head-turn photos, one per step the page shows: live, and the NIK matches.
    let mut verified = false;
    for _ in 0..20 {
        open();
        driver.type_into("#nik", &nik);
        driver.click("#start");
        let steps = driver.wait_for("#steps", |t| t.contains("straight"));
        assert!(steps.contains("Lihat lurus ke kamera."), "{steps}");
        let id = driver.find("#steps");
        let steps = driver.session("GET", &format!("/element/{id}/attribute/data-steps"), None);
        let steps: Vec<Value> = steps.as_str().unwrap_or_default().split(',').map(|s| json!(s)).collect();
        let Some(files) = upload_files(&steps) else { continue };
        let paths: Vec<String> = files.iter().map(|f| poses.join(f).display().to_string()).collect();
        driver.type_into("#frames", &paths.join("\n"));
        driver.click("#send");
        let shown = driver.wait_for("#result", |t| t.contains("LIVE") || t.ends_with(')'));
        assert_eq!(shown, "LIVE / MATCH");
        verified = true;
        break;
    }
    assert!(verified, "no challenge in 20 that the photos can answer");

    // The browser's camera filming one still photo: not live, told in Indonesian.
    open();
    driver.click("#camera");
    let shown = driver.wait_for("#result", |t| t.contains("LIVE") || t.ends_with(')'));
    assert_eq!(shown, "NOT LIVE");
    let reasons = driver.text("#reasons");
    assert!(
        reasons.contains("Gerakan kepala tidak sesuai petunjuk") && reasons.contains("(pose_not_reached)"),
        "{reasons}"
    );
    if let Ok(path) = std::env::var("WAJAH_LIVENESS_SCREENSHOT") {
        use base64::Engine as _;
        driver.session("POST", "/window/rect", Some(json!({ "width": 1000, "height": 1100 })));
        let png = driver.session("GET", "/screenshot", None);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("png");
        std::fs::write(path, bytes).expect("screenshot written");
    }
    drop(driver);
    drop(server);
}

/// ORL person 1's photos for the steps (None when a step is asked more often than there are photos).
fn upload_files(steps: &[Value]) -> Option<Vec<&'static str>> {
    let mut left = ["orl_s1_5.pgm", "orl_s1_10.pgm"].into_iter();
    let mut right = ["orl_s1_6.pgm", "orl_s1_4.pgm"].into_iter();
    let mut up = ["orl_s1_9.pgm"].into_iter();
    steps
        .iter()
        .map(|s| match s.as_str()? {
            "straight" => Some("orl_s1_1.pgm"),
            "turn_left" => left.next(),
            "turn_right" => right.next(),
            "look_up" => up.next(),
            _ => None,
        })
        .collect()
}
