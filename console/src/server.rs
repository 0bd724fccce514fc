//! The axum application: the frame (Host, session, Origin, form token, headers), the
//! subscription feeding the store, server-sent events, and the pages' handlers.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use filet_proto::alert::{Disclosed, Kind};
use filet_proto::wire::{Receipt, WhoAmI};
use filet_proto::{AlertDraft, AlertId};
use jiff::tz::TimeZone;
use tokio::sync::watch;

use crate::audit::{AuditFailure, Job, Jobs, ReportData, ReportQuery};
use crate::audit_pages::{self, ReportForm};
use crate::form::{self, Values};
use crate::i18n::{t, tr, Lang};
use crate::pages;
use crate::security::{self, Sessions, LANG_COOKIE};
use crate::store::Store;
use crate::{Backend, BackendError};

/// Largest form body accepted.
const MAX_FORM: usize = 64 * 1024;

/// How the console is set up.
pub struct ConsoleConfig {
    /// Where to listen (loopback only; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The language when the browser has not chosen one.
    pub lang: Lang,
    /// The zone times are shown in and typed times are read in.
    pub zone: TimeZone,
    /// Legal basis of each rule id (from the agreement file, when given).
    pub legal_bases: HashMap<String, String>,
    /// A session unused this long is gone.
    pub idle_timeout: Duration,
    /// The offline audit directory the auditing pages pull into (the form may name another).
    pub audit_dir: Option<PathBuf>,
    /// The relay's audit verifier key, for the first pull (then pinned in the directory).
    pub verifier_key: Option<String>,
    /// The relay's subject-reference key file, for « qui a été informé ».
    pub subject_ref_key: Option<PathBuf>,
}

impl ConsoleConfig {
    /// Loopback, `lang`, America/Toronto, no legal bases, 30 minutes idle.
    pub fn new(listen: SocketAddr, lang: Lang) -> ConsoleConfig {
        ConsoleConfig {
            listen,
            lang,
            zone: crate::format::zone(crate::format::DEFAULT_ZONE).unwrap_or(TimeZone::UTC),
            legal_bases: HashMap::new(),
            idle_timeout: security::IDLE_TIMEOUT,
            audit_dir: None,
            verifier_key: None,
            subject_ref_key: None,
        }
    }
}

/// A sent alert as this console posted it.
pub struct Sent {
    /// The relay's receipt.
    pub receipt: Receipt,
    /// What was posted (validated).
    pub draft: AlertDraft,
}

/// The console's state.
pub struct Console {
    backend: Arc<dyn Backend>,
    port: u16,
    default_lang: Lang,
    /// Zone of times.
    pub zone: TimeZone,
    /// Legal basis by rule id.
    pub legal_bases: Arc<HashMap<String, String>>,
    sessions: Sessions,
    /// Received alerts.
    pub store: Mutex<Store>,
    notify: watch::Sender<u64>,
    /// Counts sessions ended, so that their event streams end too.
    ended: watch::Sender<u64>,
    live: watch::Sender<bool>,
    me: Mutex<Option<WhoAmI>>,
    sent: Mutex<HashMap<AlertId, Sent>>,
    /// The pull job.
    jobs: Jobs,
    /// The audit directory, verifier key and subject-reference key file last used.
    audit: Mutex<AuditPaths>,
}

#[derive(Clone, Default)]
struct AuditPaths {
    dir: String,
    verifier_key: String,
    subject_ref_key: String,
}

/// What a page needs to know about the request.
#[derive(Clone)]
pub struct Ctx {
    /// The page's language.
    pub lang: Lang,
    /// The session's form token.
    pub form_token: String,
    /// This node's principal, as the relay knows it.
    pub me: Option<WhoAmI>,
    /// Zone of times.
    pub zone: TimeZone,
    /// Legal basis by rule id.
    pub legal_bases: Arc<HashMap<String, String>>,
    /// The path of the page (for the language toggle to come back to).
    pub path: String,
}

/// A running console.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    console: Arc<Console>,
    task: tokio::task::JoinHandle<()>,
    feed: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A new one-time address that signs a browser in.
    pub fn login_url(&self) -> String {
        format!(
            "http://{}/login?token={}",
            self.addr,
            self.console.sessions.issue_login_token()
        )
    }

    /// Waits until the subscription is live (or `limit` passes); true when live.
    pub async fn wait_live(&self, limit: Duration) -> bool {
        let mut rx = self.console.live.subscribe();
        let live = matches!(
            tokio::time::timeout(limit, rx.wait_for(|l| *l)).await,
            Ok(Ok(_))
        );
        live
    }

    /// Serves until the task ends.
    pub async fn wait(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
        self.feed.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the console (loopback only), starts feeding it from the node's subscription, and
/// serves it.
///
/// # Errors
/// A non-loopback address, or the address cannot be bound.
pub async fn start(backend: Arc<dyn Backend>, cfg: ConsoleConfig) -> Result<Running, String> {
    security::check_listen(cfg.listen)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", cfg.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--listen {}: {e}", cfg.listen))?;
    let me = backend.whoami().await.ok();
    let console = Arc::new(Console {
        backend,
        port: addr.port(),
        default_lang: cfg.lang,
        zone: cfg.zone,
        legal_bases: Arc::new(cfg.legal_bases),
        sessions: Sessions::new(cfg.idle_timeout),
        store: Mutex::default(),
        notify: watch::Sender::new(0),
        ended: watch::Sender::new(0),
        live: watch::Sender::new(false),
        me: Mutex::new(me),
        sent: Mutex::default(),
        jobs: Jobs::default(),
        audit: Mutex::new(AuditPaths {
            dir: path_text(cfg.audit_dir.as_deref()),
            verifier_key: cfg.verifier_key.unwrap_or_default(),
            subject_ref_key: path_text(cfg.subject_ref_key.as_deref()),
        }),
    });
    let feed = tokio::spawn(feed(console.clone()));
    let app = router(console.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Running {
        addr,
        console,
        task,
        feed,
    })
}

/// Keeps the store fed from the node's subscription, subscribing again when it ends.
async fn feed(c: Arc<Console>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        if let Ok(mut rx) = c.backend.subscribe().await {
            c.live.send_replace(true);
            backoff = Duration::from_millis(250);
            if c.me.lock().map(|m| m.is_none()).unwrap_or(false) {
                if let Ok(w) = c.backend.whoami().await {
                    if let Ok(mut m) = c.me.lock() {
                        *m = Some(w);
                    }
                }
            }
            while let Some(d) = rx.recv().await {
                c.receive(d);
            }
            c.live.send_replace(false);
        }
        // A retry delay, not synchronization: the relay is away.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

impl Console {
    fn receive(&self, d: Disclosed) {
        let seq = d.seq;
        let new = self.store.lock().map(|mut s| s.insert(d)).unwrap_or(false);
        if new {
            self.notify.send_modify(|v| *v = (*v).max(seq));
        }
    }

    fn ctx(&self, lang: Lang, form_token: String, path: String) -> Ctx {
        Ctx {
            lang,
            form_token,
            me: self.me.lock().ok().and_then(|m| m.clone()),
            zone: self.zone.clone(),
            legal_bases: self.legal_bases.clone(),
            path,
        }
    }
}

fn router(c: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(inbox))
        .route("/login", get(login))
        .route("/logout", post(logout))
        .route("/events", get(events))
        .route("/ack", post(ack))
        .route("/lang", post(set_lang))
        .route("/new", get(new_form).post(new_post))
        .route("/alert/{id}", get(alert_page))
        .route("/alert/{id}/located", post(located))
        .route("/alert/{id}/cancel", post(cancel))
        .route("/alert/{id}/update", get(update_form).post(update_post))
        .route("/sent/{id}", get(sent_page))
        .route("/audit", get(audit_home))
        .route("/audit/pull", post(audit_pull))
        .route("/audit/progress", get(audit_progress))
        .route("/audit/report", get(audit_report))
        .route("/audit/report.csv", get(audit_csv))
        .route("/audit/told", get(audit_told_form).post(audit_told))
        .route("/audit/proof/{index}", get(audit_proof))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/static/alert.wav", get(sound))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(c.clone(), guard))
        .with_state(c)
}

fn lang_of(headers: &HeaderMap, default: Lang) -> Lang {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    security::cookie(cookies, LANG_COOKIE)
        .and_then(Lang::from_code)
        .unwrap_or(default)
}

fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, "cache-control", "no-store");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
}

fn refusal(status: StatusCode, lang: Lang, id: &str) -> Response {
    (status, Html(pages::refusal(lang, id).into_string())).into_response()
}

/// Every request passes here: the Host must be a loopback name of this console; a page
/// needs a live session; a state change needs the same Origin and the session's form token.
async fn guard(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let mut r = guarded(c, req, next).await;
    secure_headers(&mut r);
    r
}

async fn guarded(c: Arc<Console>, req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let lang = lang_of(&headers, c.default_lang);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !security::host_allowed(host, c.port) {
        return refusal(StatusCode::MISDIRECTED_REQUEST, lang, "refused-host");
    }
    let path = req.uri().path().to_owned();
    if path.starts_with("/static/") || path == "/login" {
        return next.run(req).await;
    }
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let Some(session) = security::cookie(cookies, &security::session_cookie(c.port))
        .and_then(|id| c.sessions.touch(id, Instant::now()))
    else {
        return refusal(StatusCode::UNAUTHORIZED, lang, "refused-session");
    };
    let (mut parts, body) = req.into_parts();
    let mut body = body;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if !security::origin_allowed(origin, site, host, c.port) {
            return refusal(StatusCode::FORBIDDEN, lang, "refused-origin");
        }
        let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(b) => b,
            Err(_) => return refusal(StatusCode::PAYLOAD_TOO_LARGE, lang, "refused-too-large"),
        };
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&bytes).unwrap_or_default();
        let token = pairs
            .iter()
            .find(|(k, _)| k == "form_token")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !security::tokens_equal(token, &session.form_token) {
            return refusal(StatusCode::FORBIDDEN, lang, "refused-form-token");
        }
        body = Body::from(bytes);
    }
    let ctx = c.ctx(lang, session.form_token.clone(), path);
    parts.extensions.insert(ctx);
    parts.extensions.insert(session);
    next.run(Request::from_parts(parts, body)).await
}

fn serde_urlencoded_pairs(b: &Bytes) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(b).ok()
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, c.default_lang);
    let token = q.get("token").map(String::as_str).unwrap_or("");
    match c.sessions.redeem(token, Instant::now()) {
        Some(s) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict",
                security::session_cookie(c.port),
                s.id
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => refusal(StatusCode::UNAUTHORIZED, lang, "refused-login"),
    }
}

async fn logout(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<security::Session>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    c.sessions.end(&s.id);
    c.ended.send_modify(|n| *n += 1);
    let mut r = Html(pages::refusal(ctx.lang, "signed-out").into_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        security::session_cookie(c.port)
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn not_found(Extension(ctx): Extension<Ctx>) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::message(&ctx, "not-found", &t(ctx.lang, "not-found-text")).into_string()),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/console.js"),
    )
        .into_response()
}

async fn sound() -> Response {
    ([(header::CONTENT_TYPE, "audio/wav")], chime()).into_response()
}

/// A short two-note chime (WAV, 8 kHz, 16-bit mono), made here rather than shipped.
pub fn chime() -> Vec<u8> {
    const RATE: u32 = 8000;
    let mut samples: Vec<i16> = Vec::new();
    for (freq, ms) in [(880.0f64, 180u32), (660.0, 260)] {
        let n = RATE * ms / 1000;
        for i in 0..n {
            let t = f64::from(i) / f64::from(RATE);
            // A quick fade in and out, so that the notes do not click.
            let edge = f64::from(i.min(n - i)) / f64::from(RATE / 100);
            let amp = 9000.0 * edge.min(1.0);
            let v = amp * (2.0 * std::f64::consts::PI * freq * t).sin();
            samples.push(v as i16);
        }
    }
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(0);
    let mut w = Vec::with_capacity(44 + samples.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&RATE.to_le_bytes());
    w.extend_from_slice(&(RATE * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

async fn inbox(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let live = *c.live.borrow();
    let store = match c.store.lock() {
        Ok(s) => s,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let flash = q
        .get("acked")
        .map(|n| tr(ctx.lang, "acked-count", &[("count", n.clone())]));
    let failed = q.get("failed").cloned();
    Html(pages::inbox(&ctx, &store, live, flash, failed).into_string()).into_response()
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<u64>,
}

/// Server-sent events: each message after the browser's last one (`Last-Event-ID` on a
/// reconnection, else `?after=` from the page), in delivery order, then each new one; the
/// event id is the delivery sequence, so a reconnection loses and repeats nothing.
/// How often an open event stream counts as use of its session.
const STREAM_TOUCH: Duration = Duration::from_secs(15);

struct Stream {
    c: Arc<Console>,
    ctx: Ctx,
    session: security::Session,
    rx: watch::Receiver<u64>,
    ended: watch::Receiver<u64>,
    tick: tokio::time::Interval,
    last: u64,
    queue: VecDeque<Event>,
}

async fn events(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Extension(session): Extension<security::Session>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after)
        .unwrap_or(0);
    let s = Stream {
        rx: c.notify.subscribe(),
        ended: c.ended.subscribe(),
        tick: tokio::time::interval(STREAM_TOUCH),
        c,
        ctx,
        session,
        last,
        queue: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(ev) = s.queue.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), s));
            }
            // Mark the current value seen before reading the store: a message kept after
            // this point wakes `changed` below.
            s.rx.borrow_and_update();
            let evs = s.c.events_after(&s.ctx, s.last);
            if let Some((seq, _)) = evs.last() {
                s.last = *seq;
                s.queue.extend(evs.into_iter().map(|(_, e)| e));
                continue;
            }
            tokio::select! {
                r = s.rx.changed() => if r.is_err() { return None },
                // An open live page is a session in use; a session that ended (signed out,
                // or idle before the page opened) ends its stream.
                _ = s.tick.tick() => {
                    s.c.sessions.touch(&s.session.id, Instant::now())?;
                },
                _ = s.ended.changed() => if !s.c.sessions.alive(&s.session.id) {
                    return None;
                },
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

impl Console {
    fn events_after(&self, ctx: &Ctx, last: u64) -> Vec<(u64, Event)> {
        let Ok(store) = self.store.lock() else {
            return Vec::new();
        };
        store
            .after(last)
            .into_iter()
            .filter_map(|(seq, root)| {
                let th = store.thread(root)?;
                let d = th.messages.iter().find(|d| d.seq == seq)?;
                let data = serde_json::json!({
                    "seq": seq,
                    "root": root.to_string(),
                    "html": pages::thread_row(ctx, &th).into_string(),
                    "title": pages::notification_title(ctx, d),
                });
                Some((
                    seq,
                    Event::default()
                        .id(seq.to_string())
                        .event("alert")
                        .data(data.to_string()),
                ))
            })
            .collect()
    }
}

async fn ack(State(c): State<Arc<Console>>, Form(pairs): Form<Vec<(String, String)>>) -> Response {
    let one = pairs
        .iter()
        .find(|(k, _)| k == "one")
        .map(|(_, v)| v.clone());
    let roots: Vec<String> = match one {
        Some(r) => vec![r],
        None => pairs
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let mut acked = 0usize;
    let mut failed = 0usize;
    for r in roots {
        let Ok(root) = r.parse::<AlertId>() else {
            failed += 1;
            continue;
        };
        let ids: Vec<AlertId> = c
            .store
            .lock()
            .ok()
            .and_then(|s| s.thread(root).map(|t| t.unacked))
            .unwrap_or_default();
        let mut ok = true;
        for id in ids {
            match c.backend.ack(id).await {
                Ok(_) => {
                    if let Ok(mut s) = c.store.lock() {
                        s.mark_acked(id);
                    }
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            acked += 1;
        } else {
            failed += 1;
        }
    }
    let mut to = format!("/?acked={acked}");
    if failed > 0 {
        to.push_str(&format!("&failed={failed}"));
    }
    Redirect::to(&to).into_response()
}

async fn set_lang(Form(pairs): Form<Vec<(String, String)>>) -> Response {
    let lang = pairs
        .iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::from_code(v))
        .unwrap_or(Lang::Fr);
    let back = pairs
        .iter()
        .find(|(k, _)| k == "back")
        .map(|(_, v)| v.as_str())
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or("/");
    let mut r = Redirect::to(back).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
        lang.code()
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn values(pairs: Vec<(String, String)>) -> Values {
    pairs
        .into_iter()
        .filter(|(k, _)| k != "form_token")
        .collect()
}

async fn new_form(Extension(ctx): Extension<Ctx>) -> Response {
    let mut v = Values::new();
    v.insert("status".into(), "actual".into());
    v.insert("language".into(), "fr-CA".into());
    Html(pages::alert_form(&ctx, None, &v, &form::Problems::new(), None).into_string())
        .into_response()
}

async fn new_post(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let v = values(pairs);
    submit(&c, &ctx, v, Kind::Alert, None).await
}

/// Reads the form, validates it with the relay's own code, posts it; on a problem, the
/// form again with each problem beside its field.
async fn submit(
    c: &Console,
    ctx: &Ctx,
    v: Values,
    kind: Kind,
    references: Option<AlertId>,
) -> Response {
    let parsed = form::parse(ctx.lang, &ctx.zone, &v, kind, references);
    let again = |problems: &form::Problems, general: Option<String>| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(pages::alert_form(ctx, references, &v, problems, general).into_string()),
        )
            .into_response()
    };
    let Some(draft) = parsed.draft else {
        return again(&parsed.problems, None);
    };
    let draft = match draft.validate(form::now()) {
        Ok(d) => d,
        Err(invalid) => return again(&form::problems_of(ctx.lang, &invalid.errors), None),
    };
    match c.backend.post(draft.clone()).await {
        Ok(receipt) => {
            let id = receipt.alert;
            if let Ok(mut s) = c.sent.lock() {
                s.insert(id, Sent { receipt, draft });
            }
            Redirect::to(&format!("/sent/{id}")).into_response()
        }
        Err(BackendError {
            relay: Some(r),
            message,
        }) => match r.invalid {
            Some(inv) => again(&form::problems_of(ctx.lang, &inv.errors), None),
            None => again(
                &form::Problems::new(),
                Some(relay_text(ctx.lang, &r.code, &message)),
            ),
        },
        Err(e) => again(
            &form::Problems::new(),
            Some(relay_text_plain(ctx.lang, &e.message)),
        ),
    }
}

fn relay_text(lang: Lang, code: &filet_proto::wire::ErrorCode, message: &str) -> String {
    tr(
        lang,
        "relay-refused",
        &[
            ("code", format!("{code:?}")),
            ("message", message.to_owned()),
        ],
    )
}

fn relay_text_plain(lang: Lang, message: &str) -> String {
    tr(
        lang,
        "relay-unreachable",
        &[("message", message.to_owned())],
    )
}

async fn sent_page(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let sent = c.sent.lock();
    let found = id
        .parse::<AlertId>()
        .ok()
        .and_then(|id| sent.as_ref().ok().and_then(|s| s.get(&id)));
    match found {
        Some(s) => Html(pages::receipt(&ctx, s).into_string()).into_response(),
        None => Redirect::to(&format!("/alert/{id}")).into_response(),
    }
}

async fn alert_page(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<AlertId>() else {
        return not_found(Extension(ctx)).await;
    };
    {
        let store = match c.store.lock() {
            Ok(s) => s,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        if let Some(th) = store.thread(id) {
            return Html(pages::received(&ctx, &th).into_string()).into_response();
        }
    }
    match c.backend.get_alert(id).await {
        Ok((d, recipients)) => {
            let status = c.backend.status(id).await.ok();
            Html(pages::sent_alert(&ctx, &d, &recipients, status.as_deref(), None).into_string())
                .into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(pages::message(&ctx, "not-found", &e.message).into_string()),
        )
            .into_response(),
    }
}

async fn close(
    c: &Console,
    ctx: &Ctx,
    id: &str,
    kind: Kind,
    pairs: Vec<(String, String)>,
) -> Response {
    let Ok(id) = id.parse::<AlertId>() else {
        return not_found(Extension(ctx.clone())).await;
    };
    let note = pairs
        .iter()
        .find(|(k, _)| k == "note")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let (orig, recipients) = match c.backend.get_alert(id).await {
        Ok(x) => x,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                Html(pages::message(ctx, "not-found", &e.message).into_string()),
            )
                .into_response()
        }
    };
    let draft = form::closing(kind, id, &orig.envelope, note);
    let problem = match draft.validate(form::now()) {
        Err(inv) => Some(
            inv.errors
                .iter()
                .map(|e| form::problem_text(ctx.lang, e))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Ok(d) => match c.backend.post(d.clone()).await {
            Ok(receipt) => {
                let rid = receipt.alert;
                if let Ok(mut s) = c.sent.lock() {
                    s.insert(rid, Sent { receipt, draft: d });
                }
                return Redirect::to(&format!("/sent/{rid}")).into_response();
            }
            Err(e) => Some(match e.relay {
                Some(r) => relay_text(ctx.lang, &r.code, &r.message),
                None => relay_text_plain(ctx.lang, &e.message),
            }),
        },
    };
    let which = if kind == Kind::Cancel {
        "cancel"
    } else {
        "located"
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Html(
            pages::sent_alert(
                ctx,
                &orig,
                &recipients,
                None,
                Some((which, problem.unwrap_or_default())),
            )
            .into_string(),
        ),
    )
        .into_response()
}

async fn located(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    close(&c, &ctx, &id, Kind::Located, pairs).await
}

async fn cancel(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    close(&c, &ctx, &id, Kind::Cancel, pairs).await
}

/// The latest content of an alert of this party: its latest update, or itself.
async fn latest(c: &Console, id: AlertId) -> Result<Disclosed, BackendError> {
    let (d, _) = c.backend.get_alert(id).await?;
    let last_update = d
        .history
        .iter()
        .rev()
        .find(|h| h.kind == Some(Kind::Update))
        .map(|h| h.id);
    match last_update {
        Some(u) if u != id => Ok(c.backend.get_alert(u).await?.0),
        _ => Ok(d),
    }
}

async fn update_form(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<AlertId>() else {
        return not_found(Extension(ctx)).await;
    };
    match latest(&c, id).await {
        Ok(d) => {
            let mut draft = AlertDraft::new(d.envelope.category, d.envelope.risk, "", "");
            draft.content = d.content.clone();
            draft.status = d.envelope.status;
            draft.language = d.envelope.language;
            let v = form::values_of(&ctx.zone, &draft);
            Html(pages::alert_form(&ctx, Some(id), &v, &form::Problems::new(), None).into_string())
                .into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(pages::message(&ctx, "not-found", &e.message).into_string()),
        )
            .into_response(),
    }
}

async fn update_post(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let Ok(id) = id.parse::<AlertId>() else {
        return not_found(Extension(ctx)).await;
    };
    submit(&c, &ctx, values(pairs), Kind::Update, Some(id)).await
}

fn path_text(p: Option<&std::path::Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// Whether this unit may read the audit log (its right, per the relay).
async fn may_audit(c: &Console, ctx: &Ctx) -> bool {
    let me = match &ctx.me {
        Some(m) => Some(m.clone()),
        None => {
            let w = c.backend.whoami().await.ok();
            if let (Some(w), Ok(mut m)) = (&w, c.me.lock()) {
                *m = Some(w.clone());
            }
            w
        }
    };
    me.is_some_and(|m| m.audit_right != "none")
}

fn no_right(ctx: &Ctx) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(audit_pages::no_right(ctx).into_string()),
    )
        .into_response()
}

fn audit_paths(c: &Console) -> AuditPaths {
    c.audit.lock().map(|a| a.clone()).unwrap_or_default()
}

fn field<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

async fn audit_home(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let p = audit_paths(&c);
    let busy = q.contains_key("busy");
    Html(audit_pages::home(&ctx, &c.jobs.now(), &p.dir, &p.verifier_key, busy).into_string())
        .into_response()
}

/// Starts the pull job (one at a time) and comes back to the audit page, which shows its
/// progress.
async fn audit_pull(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let dir = field(&pairs, "dir").to_owned();
    let key = field(&pairs, "verifier_key").to_owned();
    if let Ok(mut a) = c.audit.lock() {
        a.dir = dir.clone();
        a.verifier_key = key.clone();
    }
    if !c.jobs.try_start() {
        return Redirect::to("/audit?busy=1").into_response();
    }
    let job = c.clone();
    tokio::spawn(async move {
        let r = if dir.is_empty() {
            Err(AuditFailure::new("no-dir", &[], ""))
        } else {
            let key = (!key.is_empty()).then_some(key);
            job.backend
                .audit_pull(PathBuf::from(dir), key, job.jobs.progress())
                .await
        };
        job.jobs.finish(filet_proto::Timestamp::now(), r);
    });
    Redirect::to("/audit").into_response()
}

/// The job's state for the page's polling script: `{"state", "text", "done", "total"}`.
async fn audit_progress(State(c): State<Arc<Console>>, Extension(ctx): Extension<Ctx>) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let (state, text, done, total) = match c.jobs.now() {
        Job::Idle => ("idle", String::new(), 0, 0),
        Job::Running(p) => {
            let (d, t) = match p {
                crate::audit::Progress::Pulling { done, total } => (done, total),
                crate::audit::Progress::Verifying => (0, 0),
            };
            ("running", audit_pages::progress_text(ctx.lang, &p), d, t)
        }
        Job::Done(..) => ("done", String::new(), 0, 0),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"state": state, "text": text, "done": done, "total": total}).to_string(),
    )
        .into_response()
}

fn report_form(q: &HashMap<String, String>) -> ReportForm {
    let v = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    ReportForm {
        from: v("from"),
        to: v("to"),
        party: v("party").to_ascii_uppercase(),
        unacked_after: v("unacked_after"),
    }
}

/// The report's query from its form; a bad value is named.
fn report_query(zone: &TimeZone, f: &ReportForm) -> Result<ReportQuery, AuditFailure> {
    let day = |name: &str, v: &str| {
        if v.is_empty() {
            return Ok(None);
        }
        crate::format::parse_day(zone, v).map(Some).map_err(|_| {
            AuditFailure::new(
                "bad-date",
                &[("field", name.to_owned()), ("value", v.to_owned())],
                "",
            )
        })
    };
    // The field is named by its label's message id (the page words it in its language).
    let from = day("audit-from", &f.from)?;
    let to = day("audit-to", &f.to)?;
    if let (Some(a), Some(b)) = (from, to) {
        if a >= b {
            return Err(AuditFailure::new("empty-range", &[], ""));
        }
    }
    let unacked_after_min = if f.unacked_after.is_empty() {
        60
    } else {
        match f.unacked_after.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                return Err(AuditFailure::new(
                    "bad-minutes",
                    &[("value", f.unacked_after.clone())],
                    "",
                ))
            }
        }
    };
    Ok(ReportQuery {
        from,
        to,
        party: (!f.party.is_empty()).then(|| f.party.clone()),
        unacked_after_min,
        subject: None,
    })
}

async fn run_report(c: &Console, q: ReportQuery) -> Result<ReportData, AuditFailure> {
    let dir = audit_paths(c).dir;
    if dir.is_empty() {
        return Err(AuditFailure::new("no-dir", &[], ""));
    }
    c.backend
        .audit_report(PathBuf::from(dir), q, c.zone.clone())
        .await
}

async fn audit_report(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let f = report_form(&q);
    let r = match report_query(&c.zone, &f) {
        Ok(query) => run_report(&c, query).await,
        Err(e) => Err(e),
    };
    let status = if r.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Html(audit_pages::report(&ctx, &f, r.as_ref()).into_string()),
    )
        .into_response()
}

/// The report's tables as CSV (see [`crate::csv`]): `table=disclosures|refusals|late`.
async fn audit_csv(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let f = report_form(&q);
    let table = q.get("table").map(String::as_str).unwrap_or("");
    let r = match report_query(&c.zone, &f) {
        Ok(query) => run_report(&c, query).await,
        Err(e) => Err(e),
    };
    let d = match r {
        Ok(d) => d,
        Err(e) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(audit_pages::report(&ctx, &f, Err(&e)).into_string()),
            )
                .into_response()
        }
    };
    let Some(body) = report_csv(&d, table) else {
        return not_found(Extension(ctx)).await;
    };
    let disposition = format!("attachment; filename=\"filet-{table}.csv\"");
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// One table of the report as CSV; `None` for an unknown table. Times are the log's (UTC,
/// RFC 3339); days are local days; keys are not translated.
pub fn report_csv(d: &ReportData, table: &str) -> Option<String> {
    Some(match table {
        "disclosures" => crate::csv::table(
            &[
                "day",
                "status",
                "sender_party",
                "recipient_party",
                "rule",
                "legal_basis",
                "count",
            ],
            &d.by_day
                .iter()
                .map(|c| {
                    vec![
                        c.day.clone(),
                        c.status.clone(),
                        c.sender_party.clone(),
                        c.recipient_party.clone(),
                        c.rule.clone(),
                        c.legal_basis.clone(),
                        c.count.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        "refusals" => crate::csv::table(
            &["reason", "count"],
            &d.refusals
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect::<Vec<_>>(),
        ),
        "late" => crate::csv::table(
            &[
                "alert",
                "status",
                "recipient",
                "disclosed_at",
                "acknowledged_at",
                "delay_minutes",
            ],
            &d.late
                .iter()
                .map(|x| {
                    vec![
                        x.alert.clone(),
                        x.status.clone(),
                        x.recipient.clone(),
                        x.disclosed_at.to_string(),
                        x.acknowledged_at.map(|a| a.to_string()).unwrap_or_default(),
                        x.delay_minutes.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        _ => return None,
    })
}

async fn audit_told_form(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let p = audit_paths(&c);
    Html(audit_pages::told(&ctx, "", &p.subject_ref_key, None).into_string()).into_response()
}

/// « Qui a été informé au sujet du dossier X ? » (a POST: the file number stays out of
/// addresses and history).
async fn audit_told(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let reference = field(&pairs, "reference").to_owned();
    let key = field(&pairs, "subject_ref_key").to_owned();
    if let Ok(mut a) = c.audit.lock() {
        a.subject_ref_key = key.clone();
    }
    let r = if reference.is_empty() {
        Err(AuditFailure::new("no-reference", &[], ""))
    } else if key.is_empty() {
        Err(AuditFailure::new("no-subject-key", &[], ""))
    } else {
        let q = ReportQuery {
            unacked_after_min: 60,
            subject: Some((PathBuf::from(&key), reference.clone())),
            ..ReportQuery::default()
        };
        run_report(&c, q).await
    };
    let list = r.as_ref().map(|d| d.disclosures.as_slice());
    let status = if r.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Html(audit_pages::told(&ctx, &reference, &key, Some(list)).into_string()),
    )
        .into_response()
}

async fn audit_proof(
    State(c): State<Arc<Console>>,
    Extension(ctx): Extension<Ctx>,
    Path(index): Path<String>,
) -> Response {
    if !may_audit(&c, &ctx).await {
        return no_right(&ctx);
    }
    let Ok(index) = index.parse::<u64>() else {
        return not_found(Extension(ctx)).await;
    };
    let dir = audit_paths(&c).dir;
    let r = if dir.is_empty() {
        Err(AuditFailure::new("no-dir", &[], ""))
    } else {
        c.backend.audit_prove(PathBuf::from(dir), index).await
    };
    Html(audit_pages::proof(&ctx, index, r.as_ref()).into_string()).into_response()
}
