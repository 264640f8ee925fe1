//! A real browser for the console's journeys: Debian's chromium, headless, driven over
//! WebDriver (W3C) by chromedriver, which the test starts itself on a free loopback port. No
//! chromium or no chromedriver is a loud failure (ops/setup.sh installs both), never a skip.
//!
//! Screenshots (PNG) go to `target/console-screenshots/` (or `$CARGO_TARGET_DIR/...`), named by
//! journey and step; each path is printed.

#![allow(dead_code)]

use crate::ports::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switch::sim::demo::operators::{demo_operators, DemoOperator};
use switch::sim::operator_kit::totp_now;
use switch::sim::world::DemoWorld;

/// How long a page may take to show what a step waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// chromedriver, killed on drop: the browser session it opened is ended first (a journey that
/// fails stops before its `close()`, and chromium would outlive a killed chromedriver).
pub struct Driver {
    child: Child,
    /// Its WebDriver address.
    pub url: String,
    addr: SocketAddr,
    session: std::sync::Mutex<Option<String>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let session = self.session.lock().ok().and_then(|mut s| s.take());
        if let (Some(id), Ok(mut s)) = (session, TcpStream::connect(self.addr)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{id} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.addr
            );
            let _ = s.write_all(request.as_bytes());
            // The answer's first bytes say chromedriver has handled it.
            let _ = s.read(&mut [0u8; 512]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port and waits until it accepts connections.
pub fn chromedriver() -> Driver {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is missing: the console's browser tests need Debian's chromium and \
             chromium-driver (ops/setup.sh installs them)"
        );
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://{addr}"),
        addr,
        session: std::sync::Mutex::new(None),
    }
}

/// A headless chromium session at 1366x768 (the counter screen the console is made for).
pub async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=zh-CN"],
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");
    if let (Ok(Some(id)), Ok(mut kept)) = (client.session_id().await, driver.session.lock()) {
        *kept = Some(id);
    }
    client
}

/// Where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Saves a screenshot of the page as `<journey>-<step>.png` and prints its path.
pub async fn shot(c: &Client, journey: &str, step: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{journey}-{step}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
    path
}

/// The demo operator `username` of `world`.
pub fn operator(world: &DemoWorld, username: &str) -> DemoOperator {
    demo_operators(world)
        .into_iter()
        .find(|o| o.username == username)
        .expect("a demo operator")
}

/// Logs `username` in through the console's login page (password and the current TOTP code,
/// computed from the demo's secret).
pub async fn log_in(c: &Client, base: &str, world: &DemoWorld, username: &str) {
    let op = operator(world, username);
    c.goto(&format!("{base}/console/login"))
        .await
        .expect("login page");
    fill(c, "#username", username).await;
    fill(c, "#password", &op.password()).await;
    fill(c, "#totp", &totp_now(&op.totp())).await;
    click(c, "#login-submit").await;
    let who = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#whoami"))
        .await
        .expect("logged in");
    assert_eq!(who.text().await.expect("name"), username);
}

/// Logs out with the header's button.
pub async fn log_out(c: &Client) {
    click(c, "#logout").await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#login-submit"))
        .await
        .expect("back at the login page");
}

/// Types `text` into the input `css` (cleared first).
pub async fn fill(c: &Client, css: &str, text: &str) {
    let e = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear()
        .await
        .unwrap_or_else(|e| panic!("clear {css}: {e}"));
    e.send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// Clicks `css`.
pub async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The text of `css` (waiting for it to exist; read again when the page replaced it between
/// finding and reading, as the dashboard's live panel does every second).
pub async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let read = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(t) => return t,
            Err(e) => assert!(Instant::now() < deadline, "{css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most [`WAIT`]) until the text of `css` satisfies `ok`; returns it.
pub async fn wait_text(c: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_text_saying(c, css, what, None, ok).await
}

/// [`wait_text`], whose failure also shows the text of `around` (the panel holding `css`, so
/// a timeout says what the page showed instead: a note, a problem, nothing).
pub async fn wait_text_saying(
    c: &Client,
    css: &str,
    what: &str,
    around: Option<&str>,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&t) {
            return t;
        }
        if Instant::now() >= deadline {
            let shown = match around {
                Some(a) => match c.find(Locator::Css(a)).await {
                    Ok(e) => e.text().await.unwrap_or_default(),
                    Err(e) => format!("({a} not found: {e})"),
                },
                None => String::new(),
            };
            panic!("{css} never became {what}; last: {t:?}; around it: {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The page's HTML.
pub async fn source(c: &Client) -> String {
    c.source().await.expect("page source")
}
