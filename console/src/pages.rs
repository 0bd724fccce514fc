//! The pages, rendered on the server (maud: compiled in, every value escaped). No inline
//! script or style: one stylesheet and one small script, both under `/static/`.

use filet_proto::alert::{AlertState, Disclosed, FieldPath, FieldSet, Kind, Status};
use filet_proto::wire::RecipientStatus;
use filet_proto::{AlertId, UnitRef};
use maud::{html, Markup, DOCTYPE};

use crate::form::{Problems, Values};
use crate::format;
use crate::i18n::{t, tr, Lang};
use crate::server::{Ctx, Sent};
use crate::store::{Store, Thread};

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — " (t(lang, "app-name")) }
            link rel="stylesheet" href="/static/console.css";
            script src="/static/console.js" defer {}
        }
    }
}

fn html_lang(lang: Lang) -> &'static str {
    match lang {
        Lang::Fr => "fr-CA",
        Lang::En => "en-CA",
    }
}

/// A page for a refused or signed-out browser (no session: no navigation).
pub fn refusal(lang: Lang, id: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(html_lang(lang)) {
            (head(lang, &t(lang, id)))
            body {
                main id="main" {
                    h1 { (t(lang, id)) }
                    p { (t(lang, &format!("{id}-text"))) }
                }
            }
        }
    }
}

pub(crate) fn layout(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let l = ctx.lang;
    html! {
        (DOCTYPE)
        html lang=(html_lang(l)) {
            (head(l, title))
            body {
                a.skip href="#main" { (t(l, "skip-to-content")) }
                header.top {
                    p.brand { (t(l, "app-name")) }
                    @if let Some(me) = &ctx.me {
                        p.who { (tr(l, "signed-in-as", &[("principal", me.principal.to_string())])) }
                    }
                    nav aria-label=(t(l, "nav-label")) {
                        ul {
                            li { a href="/" { (t(l, "nav-inbox")) } }
                            li { a href="/new" { (t(l, "nav-new")) } }
                            @if ctx.me.as_ref().is_some_and(|m| m.audit_right != "none") {
                                li { a href="/audit" { (t(l, "nav-audit")) } }
                            }
                        }
                    }
                    form.lang method="post" action="/lang" {
                        input type="hidden" name="form_token" value=(ctx.form_token);
                        input type="hidden" name="lang" value=(l.other().code());
                        input type="hidden" name="back" value=(ctx.path);
                        button type="submit" lang=(html_lang(l.other())) { (t(l, "switch-language")) }
                    }
                    form.logout method="post" action="/logout" {
                        input type="hidden" name="form_token" value=(ctx.form_token);
                        button type="submit" { (t(l, "sign-out")) }
                    }
                }
                main id="main" tabindex="-1" {
                    (body)
                }
            }
        }
    }
}

/// A page with a title and one paragraph.
pub fn message(ctx: &Ctx, id: &str, text: &str) -> Markup {
    layout(
        ctx,
        &t(ctx.lang, id),
        html! { h1 { (t(ctx.lang, id)) } p { (text) } },
    )
}

fn status_banner(l: Lang, s: Status) -> Markup {
    html! {
        @match s {
            Status::Actual => {},
            Status::Exercise => { p.banner.exercise role="note" { (t(l, "banner-exercise")) } },
            Status::Test => { p.banner.test role="note" { (t(l, "banner-test")) } },
        }
    }
}

fn status_badge(l: Lang, s: Status) -> Markup {
    html! {
        @match s {
            Status::Actual => {},
            Status::Exercise => { " " strong.badge.exercise { (t(l, "badge-exercise")) } },
            Status::Test => { " " strong.badge.test { (t(l, "badge-test")) } },
        }
    }
}

fn enum_text(l: Lang, prefix: &str, v: &str) -> String {
    t(l, &format!("{prefix}-{v}"))
}

fn field_label(l: Lang, f: FieldPath) -> String {
    t(
        l,
        &format!("field-{}", f.to_string().replace(['.', '_'], "-")),
    )
}

fn fields_text(l: Lang, f: FieldSet) -> String {
    if f.is_all() {
        t(l, "fields-all")
    } else if f.is_empty() {
        t(l, "fields-none")
    } else {
        f.iter()
            .map(|p| field_label(l, p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn rules_text(ctx: &Ctx, rules: &[String]) -> Markup {
    let l = ctx.lang;
    html! {
        ul.rules {
            @for r in rules {
                li {
                    (tr(l, "rule-name", &[("rule", r.clone())]))
                    @if let Some(b) = ctx.legal_bases.get(r) {
                        " — " (tr(l, "legal-basis", &[("basis", b.clone())]))
                    }
                }
            }
        }
    }
}

fn when(ctx: &Ctx, t: filet_proto::Timestamp) -> String {
    format::datetime(ctx.lang, &ctx.zone, t)
}

fn subject_line(l: Lang, d: &Disclosed) -> String {
    let cat = enum_text(l, "category", d.envelope.category.as_str());
    match &d.content.subject.reference {
        Some(r) => format!("{cat} — {r}"),
        None => cat,
    }
}

/// The title of a browser notification for a new message.
pub fn notification_title(ctx: &Ctx, d: &Disclosed) -> String {
    let l = ctx.lang;
    let mut s = String::new();
    match d.envelope.status {
        Status::Exercise => s.push_str(&format!("{} ", t(l, "badge-exercise"))),
        Status::Test => s.push_str(&format!("{} ", t(l, "badge-test"))),
        Status::Actual => {}
    }
    s.push_str(&tr(
        l,
        "notification",
        &[
            ("kind", enum_text(l, "kind", d.envelope.kind.as_str())),
            ("subject", subject_line(l, d)),
            ("risk", enum_text(l, "risk", d.envelope.risk.as_str())),
        ],
    ));
    s
}

fn state_class(s: AlertState) -> &'static str {
    match s {
        AlertState::Located => "state located",
        AlertState::Cancelled => "state cancelled",
        AlertState::Expired => "state expired",
        _ => "state",
    }
}

/// One row of the inbox: a thread's current state (also sent live to the page).
pub fn thread_row(ctx: &Ctx, th: &Thread<'_>) -> Markup {
    let l = ctx.lang;
    let d = th.latest();
    let content = th.content();
    let root = th.root.to_string();
    let status = d.envelope.status;
    let row_class = match status {
        Status::Actual => "thread",
        Status::Exercise => "thread exercise",
        Status::Test => "thread test",
    };
    html! {
        tr id=(format!("thread-{root}")) class=(row_class) data-seq=(th.seq()) {
            td {
                @if !th.unacked.is_empty() {
                    input type="checkbox" name="id" value=(root) id=(format!("select-{root}"));
                    label.visually-hidden for=(format!("select-{root}")) {
                        (tr(l, "select-alert", &[("subject", subject_line(l, content))]))
                    }
                }
            }
            td {
                a href=(format!("/alert/{root}")) { (subject_line(l, content)) }
                (status_badge(l, status))
                @if d.envelope.kind != Kind::Alert {
                    br; small { (enum_text(l, "kind", d.envelope.kind.as_str())) }
                }
            }
            td { (enum_text(l, "risk", content.envelope.risk.as_str())) }
            td class=(state_class(d.state)) { (enum_text(l, "state", d.state.as_str())) }
            td { (when(ctx, d.envelope.received_at)) }
            td { (d.envelope.sender.unit.to_string()) }
            td {
                @if th.unacked.is_empty() {
                    (t(l, "acked"))
                } @else {
                    button type="submit" name="one" value=(root) {
                        (t(l, "ack-one"))
                        span.visually-hidden { " " (subject_line(l, content)) }
                    }
                }
            }
        }
    }
}

/// The inbox: every thread received, newest first, live.
pub fn inbox(
    ctx: &Ctx,
    store: &Store,
    live: bool,
    flash: Option<String>,
    failed: Option<String>,
) -> Markup {
    let l = ctx.lang;
    let threads = store.threads();
    layout(
        ctx,
        &t(l, "inbox-title"),
        html! {
            h1 { (t(l, "inbox-title")) }
            p id="live" role="status" data-on=(t(l, "live-on")) data-off=(t(l, "live-off")) {
                @if live { (t(l, "live-on")) } @else { (t(l, "live-off")) }
            }
            p { button type="button" id="notify" hidden { (t(l, "enable-notifications")) } }
            p.sound {
                input type="checkbox" id="sound";
                " "
                label for="sound" { (t(l, "sound-label")) }
            }
            @if let Some(f) = flash { p.flash role="status" { (f) } }
            @if let Some(n) = failed { p.error role="alert" { (tr(l, "ack-failed", &[("count", n)])) } }
            form method="post" action="/ack" {
                input type="hidden" name="form_token" value=(ctx.form_token);
                table {
                    caption { (t(l, "inbox-caption")) }
                    thead {
                        tr {
                            th scope="col" { span.visually-hidden { (t(l, "col-select")) } }
                            th scope="col" { (t(l, "col-alert")) }
                            th scope="col" { (t(l, "col-risk")) }
                            th scope="col" { (t(l, "col-state")) }
                            th scope="col" { (t(l, "col-received")) }
                            th scope="col" { (t(l, "col-sender")) }
                            th scope="col" { (t(l, "col-action")) }
                        }
                    }
                    tbody id="threads" data-after=(store.max_seq()) {
                        @for th in &threads { (thread_row(ctx, th)) }
                    }
                }
                @if threads.is_empty() { p id="empty" { (t(l, "inbox-empty")) } }
                p { button type="submit" id="ack-selected" { (t(l, "ack-selected")) } }
            }
        },
    )
}

fn content_list(ctx: &Ctx, d: &Disclosed) -> Markup {
    let l = ctx.lang;
    let c = &d.content;
    let mut rows: Vec<(FieldPath, String)> = Vec::new();
    let mut put = |f: FieldPath, v: Option<String>| {
        if let Some(v) = v {
            rows.push((f, v));
        }
    };
    put(FieldPath::SubjectReference, c.subject.reference.clone());
    put(FieldPath::SubjectGivenName, c.subject.given_name.clone());
    put(
        FieldPath::SubjectAge,
        c.subject
            .age
            .map(|a| tr(l, "age-years", &[("age", a.to_string())])),
    );
    put(FieldPath::SubjectDescription, c.subject.description.clone());
    put(FieldPath::LastSeenAt, c.last_seen.at.map(|t| when(ctx, t)));
    put(FieldPath::LastSeenPlace, c.last_seen.place.clone());
    put(
        FieldPath::LastSeenGeo,
        c.last_seen.geo.map(|g| {
            format!(
                "{} ; {}",
                format::decimal(l, g.0, 6),
                format::decimal(l, g.1, 6)
            )
        }),
    );
    put(FieldPath::Instructions, c.instructions.clone());
    put(FieldPath::Contact, c.contact.clone());
    html! {
        dl.fields {
            @for (f, v) in rows {
                dt { (field_label(l, f)) }
                dd { (v) }
            }
        }
    }
}

fn envelope_list(ctx: &Ctx, d: &Disclosed) -> Markup {
    let l = ctx.lang;
    let e = &d.envelope;
    html! {
        dl.envelope {
            dt { (t(l, "col-risk")) } dd { (enum_text(l, "risk", e.risk.as_str())) }
            dt { (t(l, "label-category")) } dd { (enum_text(l, "category", e.category.as_str())) }
            dt { (t(l, "label-status")) } dd { (enum_text(l, "status", e.status.as_str())) }
            dt { (t(l, "col-sender")) } dd { (e.sender.to_string()) }
            dt { (t(l, "col-received")) } dd { (when(ctx, e.received_at)) }
            dt { (t(l, "label-expires")) } dd { (when(ctx, e.expires_at)) }
            dt { (t(l, "label-id")) } dd { code { (e.id.to_string()) } }
        }
    }
}

fn state_banner(ctx: &Ctx, d: &Disclosed) -> Markup {
    let l = ctx.lang;
    let note = d
        .history
        .iter()
        .rev()
        .find_map(|h| h.note.clone())
        .or_else(|| d.note.clone());
    html! {
        @match d.state {
            AlertState::Located | AlertState::Cancelled | AlertState::Expired => {
                div class=(format!("closed {}", d.state.as_str())) role="status" {
                    p.big { (enum_text(l, "state-banner", d.state.as_str())) }
                    @if let Some(n) = note { p { (tr(l, "note-is", &[("note", n)])) } }
                }
            },
            _ => {},
        }
    }
}

fn history(ctx: &Ctx, d: &Disclosed) -> Markup {
    let l = ctx.lang;
    html! {
        h2 { (t(l, "thread-title")) }
        ol.history {
            @for h in &d.history {
                li {
                    strong {
                        @match h.kind {
                            Some(k) => { (enum_text(l, "kind", k.as_str())) },
                            None => { (t(l, "kind-expired")) },
                        }
                    }
                    " — " (when(ctx, h.at))
                    @if let Some(n) = &h.note { " — " (n) }
                }
            }
        }
    }
}

/// A received alert: what this unit may see, under which rule, its thread.
pub fn received(ctx: &Ctx, th: &Thread<'_>) -> Markup {
    let l = ctx.lang;
    let d = th.latest();
    let c = th.content();
    let root = th.root.to_string();
    layout(
        ctx,
        &subject_line(l, c),
        html! {
            // The script reloads this page when a follow-up of this alert arrives.
            div #thread-page data-root=(root) data-after=(th.seq()) {}
            (status_banner(l, d.envelope.status))
            h1 { (subject_line(l, c)) }
            (state_banner(ctx, d))
            // Risk, category and status as the latest alert or update says them.
            (envelope_list(ctx, c))
            h2 { (t(l, "what-you-see")) }
            p { (tr(l, "you-may-see", &[("fields", fields_text(l, c.fields))])) }
            (rules_text(ctx, &c.rules))
            (content_list(ctx, c))
            (history(ctx, d))
            @if !th.unacked.is_empty() {
                form method="post" action="/ack" {
                    input type="hidden" name="form_token" value=(ctx.form_token);
                    button type="submit" name="one" value=(root) { (t(l, "ack-one")) }
                }
            } @else {
                p { (t(l, "acked")) }
            }
        },
    )
}

/// The delivery view: for each recipient unit, its rule and legal basis, the fields
/// disclosed, and who acknowledged and when.
fn delivery(ctx: &Ctx, st: &[RecipientStatus]) -> Markup {
    let l = ctx.lang;
    html! {
        table #delivery {
            caption { (t(l, "delivery-title")) }
            thead { tr {
                th scope="col" { (t(l, "col-unit")) }
                th scope="col" { (t(l, "col-rule")) }
                th scope="col" { (t(l, "col-fields")) }
                th scope="col" { (t(l, "col-acked")) }
            } }
            tbody {
                @for r in st {
                    tr {
                        td { (r.unit.to_string()) }
                        td {
                            ul.rules {
                                @for (i, rule) in r.rules.iter().enumerate() {
                                    li {
                                        (tr(l, "rule-name", &[("rule", rule.clone())]))
                                        @if let Some(b) = r.legal_bases.get(i) {
                                            " — " (tr(l, "legal-basis", &[("basis", b.clone())]))
                                        }
                                    }
                                }
                            }
                        }
                        td { (fields_text(l, r.fields)) }
                        td {
                            @match &r.acked {
                                Some((node, at, _)) => {
                                    (tr(l, "acked-by", &[("node", node.to_string()), ("when", when(ctx, *at))]))
                                },
                                None => { strong { (t(l, "not-acked")) } },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An alert of this party (from the relay): the whole alert, its recipients, and the
/// follow-ups (update, located, cancel).
pub fn sent_alert(
    ctx: &Ctx,
    d: &Disclosed,
    recipients: &[UnitRef],
    status: Option<&[RecipientStatus]>,
    problem: Option<(&str, String)>,
) -> Markup {
    let l = ctx.lang;
    let id = d.envelope.id.to_string();
    let closed = d.state.is_closed();
    let err = |which: &str| {
        problem
            .as_ref()
            .filter(|(w, _)| *w == which)
            .map(|(_, p)| p.clone())
    };
    layout(
        ctx,
        &subject_line(l, d),
        html! {
            (status_banner(l, d.envelope.status))
            h1 { (subject_line(l, d)) }
            (state_banner(ctx, d))
            (envelope_list(ctx, d))
            (content_list(ctx, d))
            @if let Some(st) = status {
                (delivery(ctx, st))
            } @else {
                h2 { (t(l, "recipients-title")) }
                ul { @for u in recipients { li { (u.to_string()) } } }
            }
            (history(ctx, d))
            @if !closed {
                h2 { (t(l, "follow-ups")) }
                p { a href=(format!("/alert/{id}/update")) { (t(l, "update-link")) } }
                form.closing method="post" action=(format!("/alert/{id}/located")) {
                    input type="hidden" name="form_token" value=(ctx.form_token);
                    label for="located-note" { (t(l, "located-note")) }
                    textarea id="located-note" name="note" rows="2" aria-describedby="located-err" {}
                    @if let Some(p) = err("located") { p.error id="located-err" { (p) } }
                    button type="submit" { (t(l, "located-button")) }
                }
                form.closing method="post" action=(format!("/alert/{id}/cancel")) {
                    input type="hidden" name="form_token" value=(ctx.form_token);
                    label for="cancel-note" { (t(l, "cancel-reason")) }
                    textarea id="cancel-note" name="note" rows="2" aria-describedby="cancel-err" {}
                    @if let Some(p) = err("cancel") { p.error id="cancel-err" { (p) } }
                    button type="submit" { (t(l, "cancel-button")) }
                }
            }
        },
    )
}

fn value<'a>(v: &'a Values, k: &str) -> &'a str {
    v.get(k).map(String::as_str).unwrap_or("")
}

fn errors(p: &Problems, k: &str) -> Markup {
    html! {
        @if let Some(list) = p.get(k) {
            p.error id=(format!("err-{k}")) {
                @for (i, e) in list.iter().enumerate() {
                    @if i > 0 { br; }
                    (e)
                }
            }
        }
    }
}

fn described(p: &Problems, k: &str, hint: bool) -> Option<String> {
    let mut ids = Vec::new();
    if p.contains_key(k) {
        ids.push(format!("err-{k}"));
    }
    if hint {
        ids.push(format!("hint-{k}"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn select(l: Lang, v: &Values, p: &Problems, k: &str, prefix: &str, options: &[&str]) -> Markup {
    let current = value(v, k);
    html! {
        div.field {
            label for=(k) { (t(l, &format!("label-{k}"))) }
            select id=(k) name=(k) aria-invalid=[p.contains_key(k).then_some("true")] aria-describedby=[described(p, k, false)] {
                @if current.is_empty() { option value="" { (t(l, "choose")) } }
                @for o in options {
                    option value=(o) selected[current == *o] { (enum_text(l, prefix, o)) }
                }
            }
            (errors(p, k))
        }
    }
}

fn input(l: Lang, v: &Values, p: &Problems, k: &str, kind: &str, hint: bool) -> Markup {
    html! {
        div.field {
            label for=(k) { (t(l, &format!("label-{k}"))) }
            @if hint { p.hint id=(format!("hint-{k}")) { (t(l, &format!("hint-{k}"))) } }
            input id=(k) name=(k) type=(kind) value=(value(v, k)) aria-invalid=[p.contains_key(k).then_some("true")] aria-describedby=[described(p, k, hint)];
            (errors(p, k))
        }
    }
}

fn textarea(l: Lang, v: &Values, p: &Problems, k: &str) -> Markup {
    html! {
        div.field {
            label for=(k) { (t(l, &format!("label-{k}"))) }
            textarea id=(k) name=(k) rows="3" aria-invalid=[p.contains_key(k).then_some("true")] aria-describedby=[described(p, k, false)] { (value(v, k)) }
            (errors(p, k))
        }
    }
}

/// The problems of the form's fields in the order the fields appear on the page.
fn in_page_order(p: &Problems) -> Vec<(&'static str, &Vec<String>)> {
    let mut seen: Vec<&str> = Vec::new();
    crate::form::FIELDS
        .iter()
        .filter_map(|(name, _)| {
            if seen.contains(name) {
                return None;
            }
            seen.push(name);
            p.get(*name).map(|list| (*name, list))
        })
        .collect()
}

/// The form of a new alert, or of an update of `references`.
pub fn alert_form(
    ctx: &Ctx,
    references: Option<AlertId>,
    v: &Values,
    p: &Problems,
    general: Option<String>,
) -> Markup {
    let l = ctx.lang;
    let (title, action) = match references {
        None => (t(l, "new-title"), "/new".to_owned()),
        Some(id) => (
            tr(l, "update-title", &[("id", id.to_string())]),
            format!("/alert/{id}/update"),
        ),
    };
    let echo = value(v, "last_seen_at");
    let echo = (!echo.is_empty())
        .then(|| format::parse_local(&ctx.zone, echo).ok())
        .flatten();
    html! {
        (layout(ctx, &title, html! {
            h1 { (title) }
            @if !p.is_empty() || general.is_some() {
                div.error-summary role="alert" {
                    p { (t(l, "form-has-errors")) }
                    @if let Some(g) = &general { p { (g) } }
                    @if let Some(list) = p.get("form") { @for e in list { p { (e) } } }
                    ul {
                        @for (field, list) in in_page_order(p) {
                            @for e in list {
                                li { a href=(format!("#{field}")) { (t(l, &format!("label-{field}"))) } " — " (e) }
                            }
                        }
                    }
                }
            }
            form.alert method="post" action=(action) novalidate {
                input type="hidden" name="form_token" value=(ctx.form_token);
                fieldset {
                    legend { (t(l, "legend-envelope")) }
                    @if references.is_none() {
                        (select(l, v, p, "category", "category", &["runaway", "sighting", "exploitation-risk"]))
                    } @else {
                        input type="hidden" name="category" value=(value(v, "category"));
                    }
                    (select(l, v, p, "risk", "risk", &["extreme", "severe", "moderate", "minor"]))
                    (select(l, v, p, "status", "status", &["actual", "exercise", "test"]))
                    (select(l, v, p, "language", "language", &["fr-CA", "en-CA"]))
                }
                fieldset {
                    legend { (t(l, "legend-subject")) }
                    (input(l, v, p, "reference", "text", true))
                    (input(l, v, p, "given_name", "text", false))
                    (input(l, v, p, "age", "text", false))
                    (textarea(l, v, p, "description"))
                }
                fieldset {
                    legend { (t(l, "legend-last-seen")) }
                    (input(l, v, p, "last_seen_at", "datetime-local", true))
                    @if let Some(t0) = echo {
                        p.echo id="echo-last_seen_at" { (tr(l, "read-as", &[("when", when(ctx, t0))])) }
                    }
                    (input(l, v, p, "place", "text", false))
                    (input(l, v, p, "lat", "text", false))
                    (input(l, v, p, "lon", "text", false))
                }
                fieldset {
                    legend { (t(l, "legend-what-to-do")) }
                    (textarea(l, v, p, "instructions"))
                    (input(l, v, p, "contact", "text", false))
                    (input(l, v, p, "expires_at", "datetime-local", true))
                    @if references.is_none() { (input(l, v, p, "to", "text", true)) }
                }
                p { button type="submit" id="submit" { (t(l, if references.is_none() { "post-button" } else { "update-button" })) } }
            }
        }))
    }
}

/// The receipt of a post: each recipient unit, its rule and legal basis, the fields it gets.
pub fn receipt(ctx: &Ctx, s: &Sent) -> Markup {
    let l = ctx.lang;
    let r = &s.receipt;
    let d = &s.draft;
    let title = tr(
        l,
        "receipt-title",
        &[("kind", enum_text(l, "kind", d.kind.as_str()))],
    );
    layout(
        ctx,
        &title,
        html! {
            (status_banner(l, d.status))
            h1 { (title) }
            p.flash role="status" {
                (tr(l, "receipt-text", &[
                    ("count", format::integer(l, i64::try_from(r.recipients.len()).unwrap_or(0))),
                    ("when", when(ctx, r.received_at)),
                ]))
            }
            dl.envelope {
                dt { (t(l, "label-id")) } dd { a href=(format!("/alert/{}", d.references.unwrap_or(r.alert))) { code { (r.alert.to_string()) } } }
                dt { (t(l, "label-expires")) } dd { (when(ctx, r.expires_at)) }
                @if let Some(at) = d.content.last_seen.at {
                    dt { (t(l, "label-last_seen_at")) } dd { (when(ctx, at)) }
                }
                dt { (t(l, "label-audit")) } dd { (format::integer(l, i64::try_from(r.posted_index).unwrap_or(0))) }
            }
            table {
                caption { (t(l, "recipients-title")) }
                thead { tr {
                    th scope="col" { (t(l, "col-unit")) }
                    th scope="col" { (t(l, "col-rule")) }
                    th scope="col" { (t(l, "col-fields")) }
                    th scope="col" { (t(l, "label-audit")) }
                } }
                tbody {
                    @for x in &r.recipients {
                        tr {
                            td { (x.unit.to_string()) }
                            td { (rules_text(ctx, &x.rules)) }
                            td { (fields_text(l, x.fields)) }
                            td { (format::integer(l, i64::try_from(x.audit_index).unwrap_or(0))) }
                        }
                    }
                }
            }
            @if r.recipients.is_empty() { p { (t(l, "no-recipient")) } }
        },
    )
}
