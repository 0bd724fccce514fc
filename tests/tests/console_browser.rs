//! The web console (`filet console`), end to end: real relay, real nodes, real headless
//! Chromium driven over WebDriver. Without chromium and chromedriver these tests FAIL with
//! the command that installs them (`.ci/run` installs them first).
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use filet_client::console::NodeBackend;
use filet_console::{ConsoleConfig, Lang, Running};
use filet_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a condition in the browser may take to come true (a bound, not a delay).
const WAIT: Duration = Duration::from_secs(30);

/// One test with browsers at a time: each starts Chromium, and several at once on a small
/// machine make every bound tighter for nothing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn missing_browser() -> ! {
    panic!(
        "the console's browser tests need Chromium and its WebDriver: \
         `apt-get update && apt-get install -y chromium chromium-driver` (.ci/run installs them); \
         chromium or chromedriver was not found in PATH"
    )
}

/// A headless Chromium behind its own chromedriver, with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let driver_bin = find_program("chromedriver").unwrap_or_else(|| missing_browser());
        let chromium = find_program("chromium")
            .or_else(|| find_program("chromium-browser"))
            .unwrap_or_else(|| missing_browser());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let caps: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--window-size=1280,1024", "--lang=fr-CA",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }))
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            let mut b =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            b.capabilities(caps.clone());
            match b.connect(&url).await {
                Ok(c) => break c,
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver at {url} does not start a session: {e}"),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits (bounded) until `css` matches an element whose text contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if t.contains(needle) {
                        return t;
                    }
                }
            }
            assert!(
                start.elapsed() < WAIT,
                "no {css} with {needle:?} within {WAIT:?}; page: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, id: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    async fn set_value(&self, id: &str, value: &str) {
        self.client
            .execute(
                "document.getElementById(arguments[0]).value = arguments[1];",
                vec![id.into(), value.into()],
            )
            .await
            .unwrap();
    }

    async fn choose(&self, id: &str, value: &str) {
        self.client
            .find(Locator::Css(&format!("#{id} option[value='{value}']")))
            .await
            .unwrap_or_else(|e| panic!("no option {value} in #{id}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Presses Tab from the top of the page until focus comes back around; returns a
    /// description (`tag#id[name=value]` or the text) of each element focused, in order.
    async fn tab_order(&self) -> Vec<String> {
        self.client
            .execute(
                "document.activeElement && document.activeElement.blur(); window.scrollTo(0,0);",
                vec![],
            )
            .await
            .unwrap();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..120 {
            let tab = Key::Tab.chars().next().unwrap();
            self.client
                .perform_actions(
                    KeyActions::new("keyboard".into())
                        .then(KeyAction::Down { value: tab })
                        .then(KeyAction::Up { value: tab }),
                )
                .await
                .unwrap();
            let d = self
                .client
                .execute(
                    "const e = document.activeElement; return e.tagName.toLowerCase() + '#' + (e.id || '') + '[' + (e.name || '') + '=' + (e.value || '') + ']' + (e.tagName === 'A' ? e.getAttribute('href') : '');",
                    vec![],
                )
                .await
                .unwrap();
            let d = d.as_str().unwrap_or("").to_owned();
            if seen.first() == Some(&d) {
                break;
            }
            seen.push(d);
        }
        self.client
            .execute(
                "document.activeElement && document.activeElement.blur();",
                vec![],
            )
            .await
            .unwrap();
        seen
    }

    /// Every control a keyboard user must reach (links, buttons, fields) on the page.
    async fn controls(&self) -> Vec<String> {
        let v = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('a[href], button:not([hidden]), input:not([type=hidden]), select, textarea')).map(e => e.tagName.toLowerCase() + '#' + (e.id || '') + '[' + (e.name || '') + '=' + (e.value || '') + ']' + (e.tagName === 'A' ? e.getAttribute('href') : ''));",
                vec![],
            )
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    }

    async fn assert_keyboard_reaches_every_control(&self, page: &str) {
        let order = self.tab_order().await;
        for c in self.controls().await {
            assert!(
                order.contains(&c),
                "{page}: Tab never reaches {c}; the Tab order is {order:#?}"
            );
        }
    }

    async fn screenshot(&self, name: &str) {
        if std::env::var_os("FILET_CONSOLE_SCREENSHOTS").is_none() {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        // The whole page: a window as tall as the document, then the usual size again.
        let h = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(1024)
            .clamp(600, 4000);
        self.client
            .set_window_size(1280, u32::try_from(h).unwrap())
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client.set_window_size(1280, 1024).await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Stops chromedriver even when the test failed before [`Browser::close`].
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn console(net: &TestNet, unit: &str, relay: SocketAddr) -> Running {
    let cfg = net.node_config(unit, relay);
    let node = filet_client::Node::connect(&cfg).await.unwrap();
    let backend = Arc::new(NodeBackend::with_node(cfg, node));
    let mut c = ConsoleConfig::new("127.0.0.1:0".parse().unwrap(), Lang::Fr);
    c.legal_bases = filet_client::console::legal_bases(&net.agreement).unwrap();
    let running = filet_console::start(backend, c).await.unwrap();
    assert!(running.wait_live(WAIT).await, "{unit}'s console subscribes");
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_posted_through_the_form_appears_live_in_the_recipients_console_and_is_acknowledged(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = console(&net, "SPVQ/ESM", relay.addr).await;
    let dpj = console(&net, "DPJ/RTS", relay.addr).await;
    let sender = Browser::start().await;
    let intake = Browser::start().await;

    // The DPJ intake worker signs in: the one-time token leaves the address bar.
    intake.client.goto(&dpj.login_url()).await.unwrap();
    let url = intake.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/");
    assert_eq!(url.query(), None, "the token is gone from the address bar");
    assert_eq!(intake.text("h1").await, "Alertes reçues");
    intake.wait_text("#live", "En direct").await;
    intake.screenshot("reception-vide").await;
    let base_title = intake.client.title().await.unwrap();
    // The person allowed notifications: a stand-in for the browser's Notification records
    // what the page shows (headless Chromium shows none).
    intake
        .client
        .execute(
            "window.shown = []; window.Notification = function (t) { window.shown.push(t); }; window.Notification.permission = 'granted'; window.played = []; window.Audio = function (src) { return { play: function () { window.played.push(src); return Promise.resolve(); } }; };",
            vec![],
        )
        .await
        .unwrap();

    // The person asks for a sound (the choice is kept in the browser).
    intake
        .client
        .find(Locator::Id("sound"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The investigator fills the form with two mistakes.
    sender.client.goto(&esm.login_url()).await.unwrap();
    sender
        .client
        .goto(&format!("http://{}/new", esm.addr))
        .await
        .unwrap();
    sender
        .assert_keyboard_reaches_every_control("the new-alert form")
        .await;
    sender.choose("category", "runaway").await;
    sender.choose("risk", "severe").await;
    sender.choose("status", "exercise").await;
    sender.fill("reference", "SPVQ-2026-04417").await;
    sender.fill("given_name", "Maëlle").await;
    sender.fill("age", "15").await;
    sender.fill("description", &"x".repeat(281)).await;
    sender.set_value("last_seen_at", "2026-12-02T22:40").await;
    sender
        .fill("place", "Terminus Marie-de-l'Incarnation")
        .await;
    sender.fill("lat", "46,8123").await;
    sender.fill("lon", "-71,2345").await;
    sender.fill("instructions", "Ne pas intervenir seul.").await;
    sender
        .client
        .find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Each error beside its field, in French; the typed time echoed in local time.
    assert_eq!(
        sender.wait_text("#err-description", "281").await,
        "281 caractères, la limite est de 280."
    );
    assert_eq!(
        sender.text("#err-contact").await,
        "Ce champ est obligatoire."
    );
    let described = sender
        .client
        .find(Locator::Id("description"))
        .await
        .unwrap()
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(described.as_deref(), Some("err-description"));
    let beside = sender
        .client
        .execute(
            "return document.getElementById('err-description').previousElementSibling.id;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        beside.as_str(),
        Some("description"),
        "the error follows its field"
    );
    assert_eq!(
        sender.text("#echo-last_seen_at").await,
        "Lu comme : le 2 décembre 2026, 22 h 40 HNE"
    );
    sender.screenshot("formulaire-erreurs").await;

    sender
        .fill("description", "1,60 m, cheveux bruns longs, manteau noir")
        .await;
    sender.fill("contact", "Enquêtrice ESM, 418 555-0142").await;
    sender
        .client
        .find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The receipt names each recipient unit, its rule and legal basis.
    let receipt = sender.wait_text("main", "DPJ/RTS").await;
    assert!(receipt.contains("EXERCICE"), "{receipt}");
    assert!(receipt.contains("CJQ/PIVOT"), "{receipt}");
    assert!(
        receipt.contains("Règle : police-vers-protection"),
        "{receipt}"
    );
    assert!(
        receipt.contains("fondement légal : LPJ art. 35.4"),
        "{receipt}"
    );
    assert!(
        receipt.contains("le 2 décembre 2026, 22 h 40 HNE"),
        "the time as read: {receipt}"
    );
    sender.screenshot("recu").await;
    let id = sender
        .client
        .find(Locator::Css("main dl.envelope code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The DPJ console shows it live, without a reload, marked as an exercise.
    let row = intake
        .wait_text(&format!("#thread-{id}"), "SPVQ-2026-04417")
        .await;
    assert!(row.contains("EXERCICE"), "{row}");
    assert!(row.contains("Élevé"), "{row}");
    assert_eq!(
        intake.client.title().await.unwrap(),
        format!("(1) {base_title}"),
        "the title counts the new alert"
    );
    let played = intake
        .client
        .execute("return window.played;", vec![])
        .await
        .unwrap();
    assert_eq!(
        played,
        serde_json::json!(["/static/alert.wav"]),
        "the chime plays once, as the person asked"
    );
    let shown = intake
        .client
        .execute("return window.shown;", vec![])
        .await
        .unwrap();
    assert_eq!(
        shown,
        serde_json::json!(["EXERCICE Alerte\u{a0}: Fugue — SPVQ-2026-04417 (risque Élevé)"]),
        "one notification, marked as an exercise"
    );
    intake
        .assert_keyboard_reaches_every_control("the inbox")
        .await;
    intake.screenshot("reception-alerte").await;

    // Its page: what this unit may see, under which rule and legal basis, the banner.
    intake
        .client
        .goto(&format!("http://{}/alert/{id}", dpj.addr))
        .await
        .unwrap();
    let page = intake.text("main").await;
    assert!(
        page.contains("EXERCICE — CECI N'EST PAS UNE VRAIE ALERTE"),
        "{page}"
    );
    assert!(page.contains("Règle : police-vers-protection"), "{page}");
    assert!(page.contains("le 2 décembre 2026, 22 h 40 HNE"), "{page}");
    intake
        .assert_keyboard_reaches_every_control("the alert page")
        .await;
    intake.screenshot("alerte").await;

    // Acknowledged in one click, from the inbox.
    intake
        .client
        .goto(&format!("http://{}/", dpj.addr))
        .await
        .unwrap();
    intake
        .client
        .find(Locator::Css(&format!("button[name=one][value='{id}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    intake
        .wait_text("main", "Réception accusée pour 1 alerte(s).")
        .await;
    let row = intake.text(&format!("#thread-{id}")).await;
    assert!(row.contains("Réception accusée"), "{row}");
    let other = net.node("DPJ/RTS", relay.addr).await;
    assert!(
        inbox_ids(&other).await.is_empty(),
        "the relay has the acknowledgement: nothing waits in DPJ/RTS's mailbox"
    );
    other.close().await;

    // The sender updates the alert from its page; the DPJ's open inbox shows it live.
    sender
        .client
        .goto(&format!("http://{}/alert/{id}", esm.addr))
        .await
        .unwrap();
    // The delivery view: who acknowledged, and when; who has not.
    let delivery = sender.wait_text("#delivery", "Accusé par DPJ/RTS/").await;
    assert!(
        delivery.contains("Pas encore accusé"),
        "CJQ/PIVOT has not: {delivery}"
    );
    assert!(delivery.contains("LPJ art. 35.4"), "{delivery}");
    sender.screenshot("alerte-envoyee").await;
    sender
        .assert_keyboard_reaches_every_control("the sent alert's page")
        .await;
    sender
        .client
        .find(Locator::Css(&format!("a[href='/alert/{id}/update']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sender.wait_text("h1", "Mise à jour de l'alerte").await;
    let kept = sender
        .client
        .find(Locator::Id("reference"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("SPVQ-2026-04417"),
        "the form holds the alert's content"
    );
    sender.choose("risk", "extreme").await;
    sender.fill("place", "Gare du Palais").await;
    sender
        .client
        .find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sender.wait_text("h1", "Reçu — Mise à jour").await;
    let row = intake.wait_text(&format!("#thread-{id}"), "Extrême").await;
    assert!(row.contains("Mise à jour"), "{row}");
    assert_eq!(
        intake.client.title().await.unwrap(),
        format!("(1) {base_title}"),
        "the page loaded after the acknowledgement counts this one"
    );

    // Then located, from the alert's page: shown prominently on the DPJ's open page of the
    // alert, which follows its thread.
    intake
        .client
        .goto(&format!("http://{}/alert/{id}", dpj.addr))
        .await
        .unwrap();
    sender
        .client
        .goto(&format!("http://{}/alert/{id}", esm.addr))
        .await
        .unwrap();
    // A cancel without its reason is refused beside the field, in French; nothing is sent.
    sender
        .client
        .find(Locator::Css("form[action$='/cancel'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        sender.wait_text("#cancel-err", "obligatoire").await,
        "Ce champ est obligatoire."
    );
    sender.fill("located-note", "Retrouvée en sécurité").await;
    sender
        .client
        .find(Locator::Css("form[action$='/located'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sender.wait_text("main", "DPJ/RTS").await;
    let closed = intake.wait_text(".closed", "JEUNE RETROUVÉ").await;
    assert!(
        closed.contains("Retrouvée en sécurité"),
        "the note: {closed}"
    );
    let page = intake.text("main").await;
    assert!(
        page.contains("Extrême") && page.contains("Gare du Palais"),
        "the risk and content of the latest update: {page}"
    );
    intake.screenshot("alerte-retrouvee").await;
    intake
        .client
        .goto(&format!("http://{}/", dpj.addr))
        .await
        .unwrap();
    intake.wait_text(&format!("#thread-{id}"), "Retrouvé").await;

    sender.close().await;
    intake.close().await;
    drop((esm, dpj));
    relay.stop().await;
}

/// One raw HTTP/1.1 request; returns the status, the headers (lower-case names) and the body.
async fn http(addr: SocketAddr, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("the console answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_a_request_without_its_session_from_a_foreign_origin_or_host() {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dpj = console(&net, "DPJ/RTS", relay.addr).await;
    let a = dpj.addr;
    let host = format!("127.0.0.1:{}", a.port());

    // Loopback only.
    let far = ConsoleConfig::new("0.0.0.0:0".parse().unwrap(), Lang::Fr);
    let cfg = net.node_config("DPJ/RTS", relay.addr);
    match filet_console::start(Arc::new(NodeBackend::new(cfg)), far).await {
        Err(e) => assert!(e.contains("loopback"), "{e}"),
        Ok(_) => panic!("the console listened beyond loopback"),
    }

    // No session: refused, in French, with the strict headers.
    let (st, h, body) = http(
        a,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 401);
    assert!(body.contains("Session absente ou expirée"), "{body}");
    assert_eq!(
        header(&h, "content-security-policy"),
        Some("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    );
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    assert_eq!(header(&h, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));

    // The chime is a real WAV, served without a session like the other static files.
    let (st, h, body) = http(
        a,
        &format!("GET /static/alert.wav HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-type"), Some("audio/wav"));
    assert!(
        body.starts_with("RIFF") && body.contains("WAVEfmt"),
        "a WAV file"
    );

    // A foreign Host (DNS rebinding) is refused before anything else, even with a token.
    let token = dpj.login_url();
    let token = token.split("token=").nth(1).unwrap();
    let (st, _, _) = http(a, &format!("GET /login?token={token} HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n", a.port())).await;
    assert_eq!(st, 421);

    // The token becomes an HttpOnly, SameSite=Strict cookie and a redirect without it; once.
    let (st, h, _) = http(
        a,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 303);
    assert_eq!(header(&h, "location"), Some("/"));
    let cookie = header(&h, "set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let (st, _, _) = http(
        a,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 401, "a login token works once");

    let (st, _, body) = http(
        a,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 200);
    let form_token = body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    // The same session under a foreign Host: refused.
    let (st, _, _) = http(a, &format!("GET / HTTP/1.1\r\nHost: attacker.example:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n", a.port())).await;
    assert_eq!(st, 421);

    let post = |origin: Option<String>, body: String| {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /lang HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let good = format!("form_token={form_token}&lang=en&back=%2F");
    let (st, _, body) = http(a, &post(Some("http://evil.example".into()), good.clone())).await;
    assert_eq!(st, 403, "a foreign Origin: {body}");
    assert!(body.contains("Demande refusée"), "{body}");
    let (st, _, _) = http(a, &post(None, good.clone())).await;
    assert_eq!(st, 403, "no Origin");
    let (st, _, _) = http(a, &post(Some("null".into()), good.clone())).await;
    assert_eq!(
        st, 403,
        "Origin null without the browser's same-origin fetch metadata"
    );
    let (st, _, _) = http(
        a,
        &post(Some(format!("http://{host}")), "lang=en&back=%2F".into()),
    )
    .await;
    assert_eq!(st, 403, "no form token");
    let (st, _, _) = http(
        a,
        &post(
            Some(format!("http://{host}")),
            format!("form_token={}&lang=en", "0".repeat(64)),
        ),
    )
    .await;
    assert_eq!(st, 403, "another form token");
    let (st, h, _) = http(a, &post(Some(format!("http://{host}")), good)).await;
    assert_eq!(st, 303, "the console's own form is accepted");
    assert!(header(&h, "set-cookie")
        .unwrap()
        .starts_with("filet_lang=en"));

    // Signing out ends the session and its open live stream at once.
    let mut stream = tokio::net::TcpStream::connect(a).await.unwrap();
    stream
        .write_all(
            format!("GET /events HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    // An alert arrives on it: the stream is open and serving.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    esm.post(runaway()).await.unwrap();
    esm.close().await;
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("\nid: ") {
            let k = stream.read(&mut buf).await.unwrap();
            assert!(
                k > 0,
                "the stream ended: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..k]);
        }
    })
    .await
    .expect("the alert on the live stream");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    let body = format!("form_token={form_token}");
    let (st, _, _) = http(
        a,
        &format!(
            "POST /logout HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(st, 200, "signed out");
    let mut rest = Vec::new();
    // Well under the 15 s at which an open stream renews its session: the sign-out itself
    // ends it.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            let k = stream.read(&mut buf).await.unwrap_or(0);
            rest.extend_from_slice(&buf[..k]);
            // The end of a chunked body, or the connection closed.
            if k == 0 || rest.ends_with(b"0\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the live stream of a signed-out session ends"
    );
    let (st, _, _) = http(
        a,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 401, "the session is gone");

    drop(dpj);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_event_stream_resumes_after_its_last_event_with_nothing_lost_or_repeated() {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dpj = console(&net, "DPJ/RTS", relay.addr).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut posted = Vec::new();
    for i in 0..3 {
        posted.push(
            esm.post(alert(filet_proto::Category::Runaway, &format!("REF-{i}")))
                .await
                .unwrap()
                .alert,
        );
    }
    let a = dpj.addr;
    let host = format!("127.0.0.1:{}", a.port());
    let token = dpj.login_url();
    let token = token.split("token=").nth(1).unwrap().to_owned();
    let (_, h, _) = http(
        a,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let cookie = header(&h, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Reads events until `n` have arrived; returns their ids and roots.
    let events = |last: Option<u64>, n: usize| {
        let cookie = cookie.clone();
        let host = host.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
            let last = last
                .map(|l| format!("Last-Event-ID: {l}\r\n"))
                .unwrap_or_default();
            s.write_all(format!("GET /events HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n{last}\r\n").as_bytes()).await.unwrap();
            let mut text = String::new();
            let mut buf = [0u8; 4096];
            let start = Instant::now();
            loop {
                let ids: Vec<u64> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
                    .map(|v| v.trim().parse().unwrap())
                    .collect();
                if ids.len() >= n {
                    // Give a repeated event no chance to hide: read what is already there.
                    return (ids, text);
                }
                assert!(
                    start.elapsed() < WAIT,
                    "only {ids:?} within {WAIT:?}: {text}"
                );
                let k = tokio::time::timeout(WAIT, s.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(k > 0, "the stream ended: {text}");
                text.push_str(&String::from_utf8_lossy(&buf[..k]));
            }
        }
    };
    let (all, text) = events(None, 3).await;
    assert_eq!(all.len(), 3, "{text}");
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "in delivery order: {all:?}"
    );
    for id in &posted {
        assert!(text.contains(&id.to_string()), "{id} is in the stream");
    }
    // A reconnection after the first event gets the second and third, and then a new one.
    let resumed = tokio::spawn(events(Some(all[0]), 3));
    let fourth = esm
        .post(alert(filet_proto::Category::Runaway, "REF-3"))
        .await
        .unwrap()
        .alert;
    let (ids, text) = resumed.await.unwrap();
    assert_eq!(
        &ids[..2],
        &all[1..],
        "resumed after the last event, nothing repeated"
    );
    assert!(ids[2] > all[2], "then the new one: {ids:?}");
    assert!(text.contains(&fourth.to_string()));
    assert!(
        !text.contains(&posted[0].to_string()),
        "the first is not sent again"
    );
    esm.close().await;
    drop(dpj);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_alerts_are_acknowledged_at_once_and_the_console_speaks_english_on_request() {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut posted = Vec::new();
    for r in ["REF-A", "REF-B", "REF-C"] {
        posted.push(
            esm.post(alert(filet_proto::Category::Runaway, r))
                .await
                .unwrap()
                .alert,
        );
    }
    let dpj = console(&net, "DPJ/RTS", relay.addr).await;
    let b = Browser::start().await;
    b.client.goto(&dpj.login_url()).await.unwrap();
    for id in &posted {
        b.wait_text(&format!("#thread-{id}"), "Fugue").await;
    }
    // Two of three selected with the keyboard (focus, space), one button.
    for id in &posted[..2] {
        b.client
            .execute(
                "document.getElementById(arguments[0]).focus();",
                vec![format!("select-{id}").into()],
            )
            .await
            .unwrap();
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(" ")
            .await
            .unwrap();
    }
    b.client
        .find(Locator::Id("ack-selected"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("main", "Réception accusée pour 2 alerte(s).")
        .await;
    let other = net.node("DPJ/RTS", relay.addr).await;
    assert_eq!(
        inbox_ids(&other).await,
        [posted[2]],
        "the relay has both acknowledgements, and only those"
    );
    other.close().await;

    // At 200 % zoom (a 1280-pixel screen is 640 CSS pixels wide) nothing needs a
    // horizontal scroll: the inbox, the form, an alert's page.
    b.client.set_window_size(640, 1024).await.unwrap();
    for path in [
        "/".to_owned(),
        "/new".to_owned(),
        format!("/alert/{}", posted[2]),
    ] {
        b.client
            .goto(&format!("http://{}{path}", dpj.addr))
            .await
            .unwrap();
        let fits = b
            .client
            .execute(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (w, c) = (fits[0].as_u64().unwrap(), fits[1].as_u64().unwrap());
        assert!(
            w <= c,
            "{path} at 200 % zoom is {w} px wide in a {c} px window"
        );
    }
    b.client.set_window_size(1280, 1024).await.unwrap();
    b.client
        .goto(&format!("http://{}/", dpj.addr))
        .await
        .unwrap();

    // The language toggle: English, on the same page, and back.
    b.client
        .find(Locator::Css("form.lang button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("h1", "Received alerts").await;
    let row = b.text(&format!("#thread-{}", posted[2])).await;
    assert!(row.contains("Runaway") && row.contains("Severe"), "{row}");
    assert!(row.contains(" EST") || row.contains(" EDT"), "{row}");
    b.client
        .find(Locator::Css("form.lang button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("h1", "Alertes reçues").await;

    b.close().await;
    esm.close().await;
    drop(dpj);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_subscribes_again_when_the_relay_comes_back_and_its_open_page_gets_the_alert() {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let relay_addr = relay.addr;
    let dpj = console(&net, "DPJ/RTS", relay_addr).await;
    let b = Browser::start().await;
    b.client.goto(&dpj.login_url()).await.unwrap();
    b.wait_text("#live", "En direct").await;

    // The relay stops and comes back on the same address; the page stays open.
    relay.stop().await;
    let mut cfg = net.relay_config();
    cfg.listen = relay_addr;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm
        .post(alert(filet_proto::Category::Sighting, "REF-RETOUR"))
        .await
        .unwrap()
        .alert;
    let start = Instant::now();
    loop {
        if let Ok(e) = b.client.find(Locator::Id(&format!("thread-{id}"))).await {
            let t = e.text().await.unwrap();
            assert!(t.contains("REF-RETOUR"), "{t}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the alert posted after the relay came back never reached the open page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.close().await;
    esm.close().await;
    drop(dpj);
    relay.stop().await;
}

/// A console with the auditing pages' defaults: `audit_dir` for the pulls.
async fn audit_console(
    net: &TestNet,
    unit: &str,
    relay: SocketAddr,
    audit_dir: PathBuf,
) -> Running {
    let cfg = net.node_config(unit, relay);
    let node = filet_client::Node::connect(&cfg).await.unwrap();
    let backend = Arc::new(NodeBackend::with_node(cfg, node));
    let mut c = ConsoleConfig::new("127.0.0.1:0".parse().unwrap(), Lang::Fr);
    c.legal_bases = filet_client::console::legal_bases(&net.agreement).unwrap();
    c.audit_dir = Some(audit_dir);
    let running = filet_console::start(backend, c).await.unwrap();
    assert!(running.wait_live(WAIT).await, "{unit}'s console subscribes");
    running
}

impl Browser {
    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_pulls_and_verifies_reads_the_report_downloads_its_csv_and_asks_who_was_told_about_a_file(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let audit_dir = net.path().join("audit-conformite");
    let table = audit_console(&net, "TABLE/CONFORMITE", relay.addr, audit_dir.clone()).await;
    let dpj = console(&net, "DPJ/RTS", relay.addr).await;

    // The demo's alert about file SPVQ-2026-04417, and another file's to DPJ/RTS only.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let about = esm.post(runaway()).await.unwrap();
    let mut other = runaway();
    other.content.subject.reference = Some("SPVQ-2026-09999".into());
    other.to = vec![filet_proto::Selector::Unit(unit("DPJ/RTS"))];
    esm.post(other).await.unwrap();
    // DPJ/RTS acknowledges the first; a unit without the audit right asks for the log.
    let rts = net.node("DPJ/RTS", relay.addr).await;
    rts.ack(about.alert).await.unwrap();
    assert!(rts.audit_entries(0, 1, 1, false).await.is_err());
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let verifier = relay.verifier();
    wait_for_entry(&auditor, &verifier, "acknowledged", |e| {
        matches!(e.event, filet_proto::audit::Event::Acknowledged { .. })
    })
    .await;
    wait_for_entry(&auditor, &verifier, "refused", |e| {
        matches!(e.event, filet_proto::audit::Event::Refused { .. })
    })
    .await;
    let log = full_log(&auditor, &verifier).await;
    let rules: Vec<usize> = log
        .iter()
        .filter_map(|e| match &e.event {
            filet_proto::audit::Event::Disclosed { rules, .. } => Some(rules.len()),
            _ => None,
        })
        .collect();
    let disclosed = rules.len();
    assert_eq!(disclosed, about.recipients.len() + 1);
    // A disclosure permitted by two rules counts once under each.
    let counted: usize = rules.iter().sum();

    // A unit without the audit right is refused, in French, and has no Audit link.
    let intake = Browser::start().await;
    intake.client.goto(&dpj.login_url()).await.unwrap();
    assert!(intake
        .controls()
        .await
        .iter()
        .all(|c| !c.ends_with("/audit")));
    intake
        .client
        .goto(&format!("http://{}/audit/report", dpj.addr))
        .await
        .unwrap();
    assert_eq!(intake.text("h1").await, "Vous n'avez pas le droit d'audit");
    intake.screenshot("audit-refuse").await;
    intake.close().await;

    // The auditor pulls and verifies: the progress, then « Journal vérifié ».
    let b = Browser::start().await;
    b.client.goto(&table.login_url()).await.unwrap();
    b.click("nav a[href='/audit']").await;
    assert_eq!(b.text("h1").await, "Audit du journal");
    assert_eq!(
        b.client
            .find(Locator::Id("dir"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(audit_dir.to_str().unwrap()),
        "the configured audit directory is the default"
    );
    b.fill("verifier_key", &relay.verifier_key).await;
    b.assert_keyboard_reaches_every_control("the audit page")
        .await;
    b.click("#pull").await;
    let status = b.wait_text("#audit-status", "vérifié").await;
    assert!(status.starts_with("Journal vérifié — le "), "{status}");
    let result = b.text("#audit-result").await;
    let size = full_log(&auditor, &verifier).await.len();
    assert!(
        result.contains(&format!("Point de contrôle\n{size} entrées")),
        "{result}"
    );
    assert!(result.contains("Signé par\n"), "{result}");
    assert!(result.contains("Portée\ntout le journal"), "{result}");
    assert!(
        audit_dir.join("verifier.key").is_file(),
        "the key is pinned"
    );
    b.screenshot("audit-verifie").await;

    // A copy changed on this computer: the failure, in plain French, names the entry.
    let entries = audit_dir.join("entries.jsonl");
    let kept = std::fs::read(&entries).unwrap();
    let mut changed = kept.clone();
    let third = kept
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    let at = third + kept[third..].iter().position(|c| *c == b'R').unwrap();
    changed[at] = b'Q';
    let index = kept[..at].iter().filter(|c| **c == b'\n').count();
    std::fs::write(&entries, &changed).unwrap();
    b.click("#pull").await;
    let failed = b.wait_text("#audit-status", "échoué").await;
    assert!(
        failed.starts_with("La vérification a échoué — le "),
        "{failed}"
    );
    let why = b.text("#audit-failure").await;
    assert!(
        why.starts_with(&format!(
            "L'entrée n° {index} ne vérifie pas : elle a été modifiée, retirée ou ajoutée."
        )),
        "{why}"
    );
    b.screenshot("audit-echec").await;
    std::fs::write(&entries, &kept).unwrap();

    // The report: a chart of the disclosures, followed by its table; every bar's value is
    // in the table.
    b.click("#to-report").await;
    b.wait_text("h1", "Rapport de conformité").await;
    b.fill("unacked_after", "0").await;
    b.click("#show-report").await;
    b.wait_text("#h-late", "dans les 0 minutes").await;
    let chart = b
        .js("const s = document.getElementById('chart-disclosures'); return [s.getAttribute('role'), document.getElementById(s.getAttribute('aria-labelledby').split(' ')[0]).textContent, s.nextElementSibling.id, Array.from(s.querySelectorAll('rect[data-value]')).reduce((a, r) => a + Number(r.dataset.value), 0)];")
        .await;
    assert_eq!(
        chart,
        serde_json::json!([
            "img",
            "Divulgations par partie et par règle, par jour",
            "table-disclosures",
            counted
        ])
    );
    let rows = b.text("#table-disclosures").await;
    assert!(rows.contains("police-vers-protection"), "{rows}");
    assert!(rows.contains("LPJ art. 35.4"), "{rows}");
    let refusals = b.text("#table-refusals").await;
    assert!(refusals.contains("Audit non permis"), "{refusals}");
    // Not acknowledged within 0 minutes: every disclosure; DPJ/RTS acknowledged the
    // first one (later than at once), the others never.
    let late = b
        .js("const rows = Array.from(document.querySelectorAll('#table-late tbody tr')); return [rows.length, rows.filter(r => r.cells[4].textContent === 'jamais').length];")
        .await;
    assert_eq!(late, serde_json::json!([disclosed, disclosed - 1]));
    b.assert_keyboard_reaches_every_control("the report").await;
    b.screenshot("audit-rapport").await;

    // The CSV downloads with a byte-order mark, `;` between values, keys untranslated.
    let csv = b
        .js("return fetch(document.getElementById('csv-disclosures').href, {credentials: 'same-origin'}).then(r => Promise.all([r.headers.get('content-disposition'), r.arrayBuffer()])).then(([d, buf]) => { const b = new Uint8Array(buf); return [d, Array.from(b.slice(0, 3)), new TextDecoder().decode(b).split('\\r\\n')[0]]; });")
        .await;
    assert_eq!(
        csv,
        serde_json::json!([
            "attachment; filename=\"filet-disclosures.csv\"",
            [0xEF, 0xBB, 0xBF],
            "day;status;sender_party;recipient_party;rule;legal_basis;count"
        ])
    );

    // « Qui a été informé au sujet du dossier SPVQ-2026-04417 ? »
    b.client
        .goto(&format!("http://{}/audit/told", table.addr))
        .await
        .unwrap();
    b.fill("reference", "SPVQ-2026-04417").await;
    // Another file than the relay's key: named, and nobody is said to have been told.
    let wrong = net.path().join("not-the-key.key");
    std::fs::write(&wrong, b"0123456789abcdef0123456789abcdef\n").unwrap();
    b.fill("subject_ref_key", wrong.to_str().unwrap()).await;
    b.click("#ask").await;
    let refused = b.wait_text("#audit-failure", "n'est pas la clé").await;
    assert!(
        refused.starts_with(&format!(
            "Le fichier de clé {} n'est pas la clé des références du relais (32 octets, copiée telle quelle).",
            wrong.display()
        )),
        "{refused}"
    );
    assert!(b.client.find(Locator::Id("told-result")).await.is_err());
    let key = net.data_dir().join("keys").join("subject-ref.key");
    b.fill("subject_ref_key", key.to_str().unwrap()).await;
    b.click("#ask").await;
    let head = b.wait_text("#told-result", "SPVQ-2026-04417").await;
    assert_eq!(
        head,
        format!(
            "Dossier SPVQ-2026-04417 : {} divulgation(s)",
            about.recipients.len()
        )
    );
    let told = b.text("#table-told").await;
    for r in &about.recipients {
        assert!(told.contains(&r.unit.to_string()), "{} in {told}", r.unit);
    }
    assert!(told.contains("livrée à DPJ/RTS/"), "{told}");
    assert!(told.contains(" HNE") || told.contains(" HAE"), "{told}");
    assert!(!told.contains("SPVQ-2026-09999"));
    b.screenshot("audit-qui-informe").await;
    // Each disclosure links to its inclusion proof check.
    b.click("#table-told tbody tr a").await;
    let proof = b.wait_text("#proof-result", "Inclusion vérifiée").await;
    assert!(proof.contains("signé par"), "{proof}");

    // DPJ's own auditor keeps only its party's entries: told about the file, it sees the
    // disclosure to DPJ/RTS and no other party's.
    let party_dir = net.path().join("audit-dpj");
    let dpj_audit = audit_console(&net, "DPJ/CONFORMITE", relay.addr, party_dir).await;
    b.client.goto(&dpj_audit.login_url()).await.unwrap();
    b.client
        .goto(&format!("http://{}/audit", dpj_audit.addr))
        .await
        .unwrap();
    b.fill("verifier_key", &relay.verifier_key).await;
    b.click("#pull").await;
    b.wait_text("#audit-status", "Journal vérifié").await;
    let result = b.text("#audit-result").await;
    assert!(
        result.contains("Portée\nles entrées de votre partie"),
        "{result}"
    );
    b.client
        .goto(&format!("http://{}/audit/told", dpj_audit.addr))
        .await
        .unwrap();
    b.fill("reference", "SPVQ-2026-04417").await;
    b.fill("subject_ref_key", key.to_str().unwrap()).await;
    b.click("#ask").await;
    let head = b.wait_text("#told-result", "SPVQ-2026-04417").await;
    assert_eq!(head, "Dossier SPVQ-2026-04417 : 1 divulgation(s)");
    let told = b.text("#table-told").await;
    assert!(told.contains("DPJ/RTS"), "{told}");
    assert!(!told.contains("CJQ/PIVOT"), "{told}");
    b.close().await;
    drop(dpj_audit);
    auditor.close().await;
    rts.close().await;
    esm.close().await;
    drop(table);
    drop(dpj);
    relay.stop().await;
}

/// A node whose pull waits until the test lets it finish: the job's progress and the
/// refusal of a second pull are seen while it runs.
struct SlowAuditor {
    calls: std::sync::atomic::AtomicUsize,
    started: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

fn offline<T>() -> Result<T, filet_console::BackendError> {
    Err(filet_console::BackendError {
        relay: None,
        message: "offline".into(),
    })
}

impl filet_console::Backend for SlowAuditor {
    fn whoami(
        &self,
    ) -> filet_console::BoxFuture<'_, Result<filet_proto::wire::WhoAmI, filet_console::BackendError>>
    {
        Box::pin(async {
            Ok(filet_proto::wire::WhoAmI {
                principal: "TABLE/CONFORMITE/table-conformite-01".parse().unwrap(),
                agreement_id: "a".into(),
                agreement_version: 1,
                may_send_under: vec![],
                may_receive_under: vec![],
                audit_right: "full".into(),
            })
        })
    }
    fn post(
        &self,
        _: filet_proto::AlertDraft,
    ) -> filet_console::BoxFuture<'_, Result<filet_proto::wire::Receipt, filet_console::BackendError>>
    {
        Box::pin(async { offline() })
    }
    fn subscribe(
        &self,
    ) -> filet_console::BoxFuture<
        '_,
        Result<
            tokio::sync::mpsc::Receiver<filet_proto::alert::Disclosed>,
            filet_console::BackendError,
        >,
    > {
        Box::pin(async { offline() })
    }
    fn ack(
        &self,
        _: filet_proto::AlertId,
    ) -> filet_console::BoxFuture<'_, Result<u64, filet_console::BackendError>> {
        Box::pin(async { offline() })
    }
    fn get_alert(
        &self,
        _: filet_proto::AlertId,
    ) -> filet_console::BoxFuture<
        '_,
        Result<
            (filet_proto::alert::Disclosed, Vec<filet_proto::UnitRef>),
            filet_console::BackendError,
        >,
    > {
        Box::pin(async { offline() })
    }
    fn status(
        &self,
        _: filet_proto::AlertId,
    ) -> filet_console::BoxFuture<
        '_,
        Result<Vec<filet_proto::wire::RecipientStatus>, filet_console::BackendError>,
    > {
        Box::pin(async { offline() })
    }
    fn audit_pull(
        &self,
        _dir: PathBuf,
        _key: Option<String>,
        progress: filet_console::audit::ProgressFn,
    ) -> filet_console::BoxFuture<
        '_,
        Result<filet_console::audit::Verified, filet_console::audit::AuditFailure>,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            progress(filet_console::audit::Progress::Pulling { done: 3, total: 10 });
            self.started.notify_one();
            self.release.notified().await;
            Ok(filet_console::audit::Verified {
                size: 10,
                root: "ab".repeat(32),
                signed_by: "filet.relay/test".into(),
                new_entries: 10,
                entries: 10,
                checkpoints: 1,
                previous_size: 0,
                full: true,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_shows_its_progress_while_it_runs_and_a_second_one_is_refused_until_it_ends() {
    let _one = ONE_AT_A_TIME.lock().await;
    let slow = Arc::new(SlowAuditor {
        calls: std::sync::atomic::AtomicUsize::new(0),
        started: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let c = ConsoleConfig::new("127.0.0.1:0".parse().unwrap(), Lang::Fr);
    let console = filet_console::start(slow.clone(), c).await.unwrap();
    let a = console.addr;
    let host = format!("127.0.0.1:{}", a.port());
    let token = console.login_url();
    let token = token.split("token=").nth(1).unwrap().to_owned();
    let (_, h, _) = http(
        a,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let cookie = header(&h, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )
    };
    let (st, _, body) = http(a, &get("/audit")).await;
    assert_eq!(st, 200);
    assert!(
        body.contains("Aucune extraction depuis le démarrage"),
        "{body}"
    );
    let form_token = body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let pull = {
        let b = format!("form_token={form_token}&dir=%2Ftmp%2Faudit&verifier_key=");
        format!(
            "POST /audit/pull HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        )
    };
    let (st, h, _) = http(a, &pull).await;
    assert_eq!(st, 303);
    assert_eq!(header(&h, "location"), Some("/audit"));
    tokio::time::timeout(WAIT, slow.started.notified())
        .await
        .expect("the pull starts");

    // While it runs: the progress, for the page's script and in the page.
    let (st, h, body) = http(a, &get("/audit/progress")).await;
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"state": "running", "text": "Extraction\u{a0}: 3 entrées reçues sur 10", "done": 3, "total": 10})
    );
    let (_, _, body) = http(a, &get("/audit")).await;
    assert!(body.contains("data-state=\"running\""), "{body}");
    assert!(
        body.contains("<progress id=\"audit-progress\" value=\"3\" max=\"10\" aria-labelledby=\"audit-status\">"),
        "{body}"
    );
    assert!(body.contains("Extraction\u{a0}: 3 entrées reçues sur 10"));

    // A second click while it runs says so, and starts nothing.
    let (st, h, _) = http(a, &pull).await;
    assert_eq!(st, 303);
    assert_eq!(header(&h, "location"), Some("/audit?busy=1"));
    let (_, _, body) = http(a, &get("/audit?busy=1")).await;
    assert!(
        body.contains("Une extraction est déjà en cours\u{a0}: attendez qu'elle se termine"),
        "{body}"
    );

    // The report's bad input is named by its field, in the page's language.
    let (st, _, body) = http(a, &get("/audit/report?from=2026-13-45")).await;
    assert_eq!(st, 422);
    assert!(
        body.contains("Le champ « Du (inclus) » n'est pas une date\u{a0}: 2026-13-45."),
        "{body}"
    );
    let english = format!(
        "GET /audit?busy=1 HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}; filet_lang=en\r\nConnection: close\r\n\r\n"
    );
    let (_, _, body) = http(a, &english).await;
    assert!(body.contains("<h1>Audit log</h1>"), "{body}");
    assert!(
        body.contains("A pull is already running: wait until it ends"),
        "{body}"
    );
    assert!(body.contains("Pulling: 3 of 10 entries received"), "{body}");

    // In the browser, the page shows the progress; when the job ends, its script brings
    // the result without anyone reloading it.
    let b = Browser::start().await;
    b.client.goto(&console.login_url()).await.unwrap();
    b.client
        .goto(&format!("http://{host}/audit"))
        .await
        .unwrap();
    assert_eq!(
        b.text("#audit-status").await,
        "Extraction : 3 entrées reçues sur 10"
    );
    b.screenshot("audit-extraction").await;
    slow.release.notify_one();
    b.wait_text("#audit-status", "Journal vérifié").await;
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        "/audit",
        "the script came back to the audit page"
    );
    b.close().await;
    let (_, _, body) = http(a, &get("/audit")).await;
    assert!(body.contains("Journal vérifié"), "{body}");
    assert!(body.contains("filet.relay/test"), "{body}");
    assert_eq!(
        slow.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pull ran"
    );
}
