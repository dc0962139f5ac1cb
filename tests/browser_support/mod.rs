//! The browser-test harness: Debian's `chromedriver` on a free loopback port, driving a headless
//! `chromium` with a fresh profile, through WebDriver (`fantoccini`). [`with_browser`] runs a
//! test body with a [`Browser`] and, when the body panics, saves a screenshot and the page source
//! under `target/browser-screenshots/<name>.{png,html}` before the panic goes on; the session,
//! the driver and the profile are always torn down.
//!
//! Paths can be overridden with `COMPUTEGATE_TEST_CHROMEDRIVER` and
//! `COMPUTEGATE_TEST_CHROMIUM`. `scripts/test.sh` installs `chromium` and `chromium-driver`
//! when they are missing; the tests that use this are `#[ignore = "needs chromium"]`.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use serde_json::json;

/// How long chromedriver may take to answer its status endpoint.
const DRIVER_START: Duration = Duration::from_secs(30);
/// How long a page element may take to appear.
const ELEMENT_WAIT: Duration = Duration::from_secs(15);

/// Typed into free-text fields: every surface must show these characters, never markup.
pub(crate) const EVIL: &str = "<script>alert('pwned')</script><img src=x onerror=alert(1)>";

/// A WebDriver session in a headless Chromium.
pub(crate) struct Browser {
    /// The WebDriver client.
    pub(crate) client: Client,
}

/// The chromedriver process and the browser profile, removed on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

// === impl Driver ===

impl Driver {
    fn start() -> Driver {
        let binary = std::env::var("COMPUTEGATE_TEST_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (install chromium-driver): {e}"));
        let profile = std::env::temp_dir().join(format!(
            "computegate-chromium-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).expect("create the browser profile");
        Driver {
            child,
            port,
            profile,
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + DRIVER_START;
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "chromedriver did not answer on port {} within {DRIVER_START:?}",
            self.port
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

// === impl Browser ===

impl Browser {
    /// Goes to `url`.
    pub(crate) async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The element matching `css`, waiting for it to appear.
    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(ELEMENT_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Types `text` into the input matching `css` (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses `value` in the `select` matching `css`.
    pub(crate) async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The visible text of the page's `main` element.
    pub(crate) async fn main_text(&self) -> String {
        let deadline = std::time::Instant::now() + ELEMENT_WAIT;
        loop {
            // A page still replacing the previous one can make the `main` just found stale.
            match self.find("main").await.text().await {
                Ok(text) => return text,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("main text: {e}"),
            }
        }
    }

    /// The text of `main` once it contains `needle` (after a form answered on the same address,
    /// where no path change says the new page is there).
    pub(crate) async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + ELEMENT_WAIT;
        loop {
            // The old page's `main` may go stale under us while the new one loads.
            let text = match self.client.find(Locator::Css("main")).await {
                Ok(main) => main.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`{needle}` never appeared: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's HTML as the browser holds it.
    pub(crate) async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// The current URL's path and query.
    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the browser shows `path` (and query): a click returns before the next page
    /// has loaded, so reading the path right after one races the navigation.
    pub(crate) async fn wait_for_path(&self, path: &str) {
        let deadline = std::time::Instant::now() + ELEMENT_WAIT;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still at {now}, not {path}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs up a new customer of `kind` in the portal at `root`; returns its email.
    pub(crate) async fn sign_up(&self, root: &str, kind: &str, password: &str) -> String {
        let email = format!("browser-{}@portal.example", uuid::Uuid::now_v7().simple());
        self.goto(&format!("{root}/signup")).await;
        self.fill("#f-email", &email).await;
        self.fill("#f-password", password).await;
        self.choose("#f-kind", kind).await;
        self.click("main form button[type=submit]").await;
        self.wait_for_path("/computegate/account/application").await;
        email
    }

    /// Uploads the test PDF as a document of `doc_type` on the portal's application page.
    pub(crate) async fn upload_document(&self, doc_type: &str) {
        self.choose("#f-type", doc_type).await;
        let pdf =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kyc/passport.pdf");
        self.find("#f-file")
            .await
            .send_keys(&pdf.display().to_string())
            .await
            .expect("choose the file");
        self.click("form[enctype='multipart/form-data'] button[type=submit]")
            .await;
        self.wait_for_path("/computegate/account/application?done=uploaded")
            .await;
    }

    /// No script ran and no markup was made of [`EVIL`]: the page has no `script` or `img`
    /// element and no alert is open; its text appears `at_least` times in `main`.
    pub(crate) async fn assert_shown_as_text(&self, at_least: usize) {
        for tag in ["script", "img"] {
            let found = self
                .client
                .find_all(Locator::Css(tag))
                .await
                .expect("query");
            assert!(
                found.is_empty(),
                "a <{tag}> element was made from typed text"
            );
        }
        assert!(
            self.client.get_alert_text().await.is_err(),
            "an alert is open"
        );
        let text = self.main_text().await;
        assert!(
            text.matches("<script>alert('pwned')</script>").count() >= at_least,
            "{text}"
        );
    }

    /// Saves a screenshot and the page source as `target/browser-screenshots/<name>.*`.
    pub(crate) async fn save_evidence(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        let png = dir.join(format!("{name}.png"));
        match self.client.screenshot().await {
            Ok(bytes) => {
                let _ = std::fs::write(&png, bytes);
            }
            Err(e) => eprintln!("no screenshot for {name}: {e}"),
        }
        if let Ok(html) = self.client.source().await {
            let _ = std::fs::write(dir.join(format!("{name}.html")), html);
        }
        png
    }
}

/// Where failure screenshots go.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-screenshots")
}

/// Runs `body` with a fresh headless browser. On a panic in `body`, the page is saved as
/// `target/browser-screenshots/<name>.png` (and `.html`) and the panic resumes; the browser
/// and the driver are closed either way.
pub(crate) async fn with_browser<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = ()>,
{
    let driver = Driver::start();
    driver.wait_ready().await;
    let client = connect(&driver).await;
    let browser = Browser {
        client: client.clone(),
    };
    let outcome = AssertUnwindSafe(body(browser)).catch_unwind().await;
    if outcome.is_err() {
        let shot = Browser {
            client: client.clone(),
        }
        .save_evidence(name)
        .await;
        eprintln!("browser test {name} failed; screenshot: {}", shot.display());
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn connect(driver: &Driver) -> Client {
    let chromium =
        std::env::var("COMPUTEGATE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain(std::iter::once(format!(
        "--user-data-dir={}",
        driver.profile.display()
    )))
    .collect::<Vec<_>>();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("a JSON object literal")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("cannot open a chromium session: {e}"))
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
