//! The auditing pages: pull and verify (with the job's progress), the compliance report
//! (SVG charts, each followed by its table, and CSV links), « qui a été informé » about one
//! file, and an entry's inclusion proof.

use std::collections::BTreeMap;

use maud::{html, Markup};

use crate::audit::{AuditFailure, Disclosure, Included, Job, Progress, ReportData};
use crate::chart::{self, Stack};
use crate::format;
use crate::i18n::{t, tr, Lang};
use crate::pages::layout;
use crate::server::Ctx;

/// The report form's values (as typed; empty when not given).
#[derive(Debug, Clone, Default)]
pub struct ReportForm {
    /// `2026-12-01`.
    pub from: String,
    /// `2026-12-31`.
    pub to: String,
    /// A party code, or empty for all.
    pub party: String,
    /// Minutes.
    pub unacked_after: String,
}

impl ReportForm {
    /// The query string that gives these values back (for the CSV links).
    pub fn query(&self) -> String {
        serde_urlencoded::to_string([
            ("from", &self.from),
            ("to", &self.to),
            ("party", &self.party),
            ("unacked_after", &self.unacked_after),
        ])
        .unwrap_or_default()
    }
}

fn int(l: Lang, n: u64) -> String {
    format::integer(l, i64::try_from(n).unwrap_or(i64::MAX))
}

/// The sentence for a failure, in `l`.
pub fn failure_text(l: Lang, f: &AuditFailure) -> String {
    // A `field` argument is a label's message id: worded in the page's language.
    let args: Vec<(&str, String)> = f
        .args
        .iter()
        .map(|(k, v)| match k.as_str() {
            "field" => (k.as_str(), t(l, v)),
            _ => (k.as_str(), v.clone()),
        })
        .collect();
    tr(l, &format!("audit-failure-{}", f.kind), &args)
}

fn failure(l: Lang, f: &AuditFailure) -> Markup {
    html! {
        div.error-summary id="audit-failure" role="alert" {
            p.error { (failure_text(l, f)) }
            @if !f.detail.is_empty() {
                p { (t(l, "audit-detail")) " " code { (f.detail) } }
            }
        }
    }
}

/// « Vous n'avez pas le droit d'audit ».
pub fn no_right(ctx: &Ctx) -> Markup {
    let l = ctx.lang;
    layout(
        ctx,
        &t(l, "audit-no-right"),
        html! {
            h1 { (t(l, "audit-no-right")) }
            p id="no-right" { (t(l, "audit-no-right-text")) }
        },
    )
}

fn job_status(ctx: &Ctx, job: &Job) -> Markup {
    let l = ctx.lang;
    let state = match job {
        Job::Idle => "idle",
        Job::Running(_) => "running",
        Job::Done(..) => "done",
    };
    html! {
        section id="audit-job" data-state=(state) aria-live="polite" aria-labelledby="job-title" {
            h2 id="job-title" { (t(l, "audit-job-title")) }
            @match job {
                Job::Idle => p id="audit-status" { (t(l, "audit-job-idle")) },
                Job::Running(p) => {
                    p id="audit-status" { (progress_text(l, p)) }
                    @match p {
                        Progress::Pulling { done, total } if *total > 0 => {
                            progress id="audit-progress" value=(done) max=(total) aria-labelledby="audit-status" { (progress_text(l, p)) }
                        }
                        _ => progress id="audit-progress" aria-labelledby="audit-status" {},
                    }
                }
                Job::Done(at, Ok(v)) => {
                    p.flash id="audit-status" { strong { (t(l, "audit-verified")) } " — " (format::datetime(l, &ctx.zone, *at)) }
                    dl id="audit-result" {
                        dt { (t(l, "audit-checkpoint")) }
                        dd { (tr(l, "audit-entries-count", &[("count", int(l, v.size))])) }
                        dt { (t(l, "audit-root")) }
                        dd { code { (v.root) } }
                        dt { (t(l, "audit-signed-by")) }
                        dd { (v.signed_by) }
                        dt { (t(l, "audit-kept")) }
                        dd { (tr(l, "audit-kept-text", &[
                            ("entries", int(l, v.entries)),
                            ("new", int(l, v.new_entries)),
                            ("checkpoints", int(l, v.checkpoints as u64)),
                        ])) }
                        dt { (t(l, "audit-scope")) }
                        dd { (t(l, if v.full { "audit-scope-full" } else { "audit-scope-party" })) }
                    }
                }
                Job::Done(at, Err(f)) => {
                    p id="audit-status" { strong { (t(l, "audit-not-verified")) } " — " (format::datetime(l, &ctx.zone, *at)) }
                    (failure(l, f))
                }
            }
        }
    }
}

/// The progress for people (also what `/audit/progress` returns).
pub fn progress_text(l: Lang, p: &Progress) -> String {
    match p {
        Progress::Pulling { total: 0, .. } => t(l, "audit-job-starting"),
        Progress::Pulling { done, total } => tr(
            l,
            "audit-job-pulling",
            &[("done", int(l, *done)), ("total", int(l, *total))],
        ),
        Progress::Verifying => t(l, "audit-job-verifying"),
    }
}

/// The audit home: the pull form, the job, links to the report and to « qui a été
/// informé ».
pub fn home(ctx: &Ctx, job: &Job, dir: &str, key: &str, busy: bool) -> Markup {
    let l = ctx.lang;
    let running = matches!(job, Job::Running(_));
    layout(
        ctx,
        &t(l, "audit-title"),
        html! {
            h1 { (t(l, "audit-title")) }
            p { (t(l, "audit-intro")) }
            @if busy {
                p.error-summary id="audit-busy" role="alert" { (t(l, "audit-busy")) }
            }
            form method="post" action="/audit/pull" id="pull-form" {
                input type="hidden" name="form_token" value=(ctx.form_token);
                div.field {
                    label for="dir" { (t(l, "audit-dir")) }
                    p.hint id="dir-hint" { (t(l, "audit-dir-hint")) }
                    input id="dir" name="dir" type="text" required value=(dir) aria-describedby="dir-hint";
                }
                div.field {
                    label for="verifier_key" { (t(l, "audit-verifier-key")) }
                    p.hint id="key-hint" { (t(l, "audit-verifier-key-hint")) }
                    input id="verifier_key" name="verifier_key" type="text" value=(key) aria-describedby="key-hint";
                }
                button type="submit" id="pull" aria-disabled=[running.then_some("true")] { (t(l, "audit-pull")) }
            }
            (job_status(ctx, job))
            h2 { (t(l, "audit-more")) }
            ul {
                li { a href="/audit/report" id="to-report" { (t(l, "audit-report-title")) } }
                li { a href="/audit/told" id="to-told" { (t(l, "audit-told-title")) } }
            }
        },
    )
}

fn status_suffix(l: Lang, status: &str) -> String {
    if status == "actual" {
        String::new()
    } else {
        format!(" ({})", t(l, &format!("badge-{status}")))
    }
}

fn reason_text(l: Lang, code: &str) -> String {
    let id = format!("refusal-reason-{}", code.replace('_', "-"));
    let s = t(l, &id);
    if s == id {
        code.to_owned()
    } else {
        s
    }
}

/// The report page: the filters, then each chart followed by its data table and its CSV.
pub fn report(ctx: &Ctx, f: &ReportForm, r: Result<&ReportData, &AuditFailure>) -> Markup {
    let l = ctx.lang;
    let fmt = |n: u64| int(l, n);
    let q = f.query();
    let parties: &[String] = match r {
        Ok(d) => &d.parties,
        Err(_) => &[],
    };
    layout(
        ctx,
        &t(l, "audit-report-title"),
        html! {
            h1 { (t(l, "audit-report-title")) }
            form method="get" action="/audit/report" id="report-form" {
                div.field {
                    label for="from" { (t(l, "audit-from")) }
                    input id="from" name="from" type="date" value=(f.from);
                }
                div.field {
                    label for="to" { (t(l, "audit-to")) }
                    input id="to" name="to" type="date" value=(f.to);
                }
                div.field {
                    label for="party" { (t(l, "audit-party")) }
                    select id="party" name="party" {
                        option value="" selected[f.party.is_empty()] { (t(l, "audit-all-parties")) }
                        @for p in parties {
                            option value=(p) selected[&f.party == p] { (p) }
                        }
                    }
                }
                div.field {
                    label for="unacked_after" { (t(l, "audit-unacked-after")) }
                    input id="unacked_after" name="unacked_after" type="number" min="0" value=(f.unacked_after);
                }
                button type="submit" id="show-report" { (t(l, "audit-show")) }
            }
            @match r {
                Err(e) => (failure(l, e)),
                Ok(d) => {
                    p id="report-summary" { (tr(l, "audit-considered", &[("count", int(l, d.entries))])) " " (t(l, "audit-times-local")) }
                    (disclosures_section(ctx, d, &q, &fmt))
                    (refusals_section(l, d, &q, &fmt))
                    (late_section(ctx, d, f, &q, &fmt))
                }
            }
        },
    )
}

fn csv_link(l: Lang, table: &str, q: &str) -> Markup {
    html! {
        p { a.csv href=(format!("/audit/report.csv?table={table}&{q}")) download=(format!("filet-{table}.csv")) id=(format!("csv-{table}")) {
            (t(l, &format!("audit-csv-{table}")))
        } }
    }
}

/// The series of the disclosures chart: one per (status, sender, recipient, rule).
pub fn series_of(l: Lang, d: &ReportData) -> (Vec<String>, Vec<Stack>) {
    let mut series: Vec<(String, String, String, String)> = Vec::new();
    for c in &d.by_day {
        let k = (
            c.status.clone(),
            c.sender_party.clone(),
            c.recipient_party.clone(),
            c.rule.clone(),
        );
        if !series.contains(&k) {
            series.push(k);
        }
    }
    let mut days: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for c in &d.by_day {
        let i = series
            .iter()
            .position(|s| {
                s.0 == c.status
                    && s.1 == c.sender_party
                    && s.2 == c.recipient_party
                    && s.3 == c.rule
            })
            .unwrap_or(0);
        let v = days
            .entry(c.day.as_str())
            .or_insert_with(|| vec![0; series.len()]);
        v[i] += c.count;
    }
    let names = series
        .iter()
        .map(|(st, s, r, rule)| format!("{s} → {r} · {rule}{}", status_suffix(l, st)))
        .collect();
    let stacks = days
        .into_iter()
        .map(|(day, values)| Stack {
            label: format::day_label(l, day),
            values,
        })
        .collect();
    (names, stacks)
}

fn disclosures_section(ctx: &Ctx, d: &ReportData, q: &str, fmt: &dyn Fn(u64) -> String) -> Markup {
    let l = ctx.lang;
    let (series, stacks) = series_of(l, d);
    html! {
        section aria-labelledby="h-disclosures" {
            h2 id="h-disclosures" { (t(l, "audit-disclosures")) }
            @if d.by_day.is_empty() {
                p { (t(l, "audit-none")) }
            } @else {
                (chart::stacked("chart-disclosures", &t(l, "audit-disclosures"), &t(l, "audit-disclosures-desc"), &series, &stacks, fmt))
                table id="table-disclosures" {
                    caption { (t(l, "audit-disclosures-table")) }
                    thead { tr {
                        th scope="col" { (t(l, "audit-col-day")) }
                        th scope="col" { (t(l, "audit-col-status")) }
                        th scope="col" { (t(l, "audit-col-sender-party")) }
                        th scope="col" { (t(l, "audit-col-recipient-party")) }
                        th scope="col" { (t(l, "audit-col-rule")) }
                        th scope="col" { (t(l, "audit-col-legal-basis")) }
                        th scope="col" { (t(l, "audit-col-count")) }
                    } }
                    tbody {
                        @for c in &d.by_day {
                            tr class=(c.status) {
                                td { (format::day_label(l, &c.day)) }
                                td { (t(l, &format!("status-{}", c.status))) }
                                td { (c.sender_party) }
                                td { (c.recipient_party) }
                                td { (c.rule) }
                                td { (c.legal_basis) }
                                td { (fmt(c.count)) }
                            }
                        }
                    }
                }
            }
            (csv_link(l, "disclosures", q))
        }
    }
}

fn refusals_section(l: Lang, d: &ReportData, q: &str, fmt: &dyn Fn(u64) -> String) -> Markup {
    let rows: Vec<(String, u64)> = d
        .refusals
        .iter()
        .map(|(k, v)| (reason_text(l, k), *v))
        .collect();
    html! {
        section aria-labelledby="h-refusals" {
            h2 id="h-refusals" { (t(l, "audit-refusals")) }
            @if rows.is_empty() {
                p { (t(l, "audit-none")) }
            } @else {
                (chart::bars("chart-refusals", &t(l, "audit-refusals"), &t(l, "audit-refusals-desc"), &rows, fmt))
                table id="table-refusals" {
                    caption { (t(l, "audit-refusals-table")) }
                    thead { tr { th scope="col" { (t(l, "audit-col-reason")) } th scope="col" { (t(l, "audit-col-count")) } } }
                    tbody {
                        @for (k, v) in &rows {
                            tr { td { (k) } td { (fmt(*v)) } }
                        }
                    }
                }
            }
            (csv_link(l, "refusals", q))
        }
    }
}

fn late_section(
    ctx: &Ctx,
    d: &ReportData,
    f: &ReportForm,
    q: &str,
    fmt: &dyn Fn(u64) -> String,
) -> Markup {
    let l = ctx.lang;
    let mut by_unit: BTreeMap<String, u64> = BTreeMap::new();
    for x in &d.late {
        *by_unit
            .entry(format!("{}{}", x.recipient, status_suffix(l, &x.status)))
            .or_default() += 1;
    }
    let rows: Vec<(String, u64)> = by_unit.into_iter().collect();
    let minutes = if f.unacked_after.is_empty() {
        "60".to_owned()
    } else {
        f.unacked_after.clone()
    };
    let title = tr(l, "audit-late", &[("minutes", minutes)]);
    html! {
        section aria-labelledby="h-late" {
            h2 id="h-late" { (title) }
            @if rows.is_empty() {
                p { (t(l, "audit-none")) }
            } @else {
                (chart::bars("chart-late", &title, &t(l, "audit-late-desc"), &rows, fmt))
                table id="table-late" {
                    caption { (t(l, "audit-late-table")) }
                    thead { tr {
                        th scope="col" { (t(l, "audit-col-alert")) }
                        th scope="col" { (t(l, "audit-col-status")) }
                        th scope="col" { (t(l, "audit-col-recipient")) }
                        th scope="col" { (t(l, "audit-col-disclosed-at")) }
                        th scope="col" { (t(l, "audit-col-acknowledged-at")) }
                        th scope="col" { (t(l, "audit-col-delay")) }
                    } }
                    tbody {
                        @for x in &d.late {
                            tr class=(x.status) {
                                td { code { (x.alert) } }
                                td { (t(l, &format!("status-{}", x.status))) }
                                td { (x.recipient) }
                                td { (format::datetime(l, &ctx.zone, x.disclosed_at)) }
                                td { @match x.acknowledged_at {
                                    Some(a) => (format::datetime(l, &ctx.zone, a)),
                                    None => (t(l, "audit-never")),
                                } }
                                td { (format::integer(l, x.delay_minutes)) }
                            }
                        }
                    }
                }
            }
            (csv_link(l, "late", q))
        }
    }
}

fn fields_text(l: Lang, fields: &str) -> String {
    match fields {
        "all" => t(l, "fields-all"),
        "none" | "" => t(l, "fields-none"),
        f => f
            .split(", ")
            .map(|p| {
                let id = format!("field-{}", p.replace(['.', '_'], "-"));
                let s = t(l, &id);
                if s == id {
                    p.to_owned()
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// « Qui a été informé au sujet du dossier X ? »: the form, then each disclosure about it.
pub fn told(
    ctx: &Ctx,
    reference: &str,
    key: &str,
    r: Option<Result<&[Disclosure], &AuditFailure>>,
) -> Markup {
    let l = ctx.lang;
    layout(
        ctx,
        &t(l, "audit-told-title"),
        html! {
            h1 { (t(l, "audit-told-title")) }
            p { (t(l, "audit-told-intro")) }
            form method="post" action="/audit/told" id="told-form" {
                input type="hidden" name="form_token" value=(ctx.form_token);
                div.field {
                    label for="reference" { (t(l, "audit-reference")) }
                    input id="reference" name="reference" type="text" required value=(reference) autocomplete="off";
                }
                div.field {
                    label for="subject_ref_key" { (t(l, "audit-subject-key")) }
                    p.hint id="subject-key-hint" { (t(l, "audit-subject-key-hint")) }
                    input id="subject_ref_key" name="subject_ref_key" type="text" required value=(key) aria-describedby="subject-key-hint";
                }
                button type="submit" id="ask" { (t(l, "audit-ask")) }
            }
            @match r {
                None => {},
                Some(Err(e)) => (failure(l, e)),
                Some(Ok(list)) => {
                    h2 id="told-result" { (tr(l, "audit-told-count", &[("reference", reference.to_owned()), ("count", int(l, list.len() as u64))])) }
                    @if list.is_empty() {
                        p id="told-none" { (t(l, "audit-told-none")) }
                    } @else {
                        table id="table-told" {
                            caption { (t(l, "audit-told-table")) " " (t(l, "audit-times-local")) }
                            thead { tr {
                                th scope="col" { (t(l, "audit-col-when")) }
                                th scope="col" { (t(l, "audit-col-to-whom")) }
                                th scope="col" { (t(l, "audit-col-fields")) }
                                th scope="col" { (t(l, "audit-col-rule-basis")) }
                                th scope="col" { (t(l, "audit-col-message")) }
                                th scope="col" { (t(l, "audit-col-index")) }
                            } }
                            tbody {
                                @for d in list {
                                    tr class=(d.status) {
                                        td { (format::datetime(l, &ctx.zone, d.time)) }
                                        td {
                                            (d.recipient)
                                            @if d.delivered.is_empty() {
                                                br; (t(l, "audit-not-delivered"))
                                            }
                                            @for (node, at) in &d.delivered {
                                                br; (tr(l, "audit-delivered-to", &[("node", node.clone()), ("time", format::datetime(l, &ctx.zone, *at))]))
                                            }
                                        }
                                        td { (fields_text(l, &d.fields)) }
                                        td {
                                            @for (rule, basis) in &d.rules {
                                                (tr(l, "audit-rule-basis", &[("rule", rule.clone()), ("basis", basis.clone())])) br;
                                            }
                                        }
                                        td {
                                            (t(l, &format!("kind-{}", if d.kind.is_empty() { "alert" } else { &d.kind })))
                                            (status_suffix(l, &d.status))
                                            br; code { (d.alert) }
                                        }
                                        td { a href=(format!("/audit/proof/{}", d.index)) { (tr(l, "audit-entry-link", &[("index", d.index.to_string())])) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// An entry's inclusion proof, checked.
pub fn proof(ctx: &Ctx, index: u64, r: Result<&Included, &AuditFailure>) -> Markup {
    let l = ctx.lang;
    let title = tr(l, "audit-proof-title", &[("index", index.to_string())]);
    layout(
        ctx,
        &title,
        html! {
            h1 { (title) }
            @match r {
                Err(e) => (failure(l, e)),
                Ok(p) => {
                    p.flash id="proof-result" { strong { (t(l, "audit-included")) } " " (tr(l, "audit-included-text", &[
                        ("hashes", int(l, p.proof_len as u64)),
                        ("size", int(l, p.size)),
                        ("signed_by", p.signed_by.clone()),
                    ])) }
                    dl {
                        dt { (t(l, "audit-root")) } dd { code { (p.root) } }
                        dt { (t(l, "audit-entry")) } dd { code { (p.entry) } }
                    }
                }
            }
            p { a href="/audit/told" { (t(l, "audit-told-title")) } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every failure the node library or the forms can give has its sentence in both
    /// languages, with its variables filled.
    #[test]
    fn every_failure_kind_is_worded_in_both_languages() {
        let kinds = [
            "relay",
            "no-dir",
            "no-directory",
            "file",
            "key",
            "checkpoint",
            "fork",
            "rollback",
            "inconsistent",
            "entry",
            "subject-key",
            "no-reference",
            "no-subject-key",
            "bad-date",
            "empty-range",
            "bad-minutes",
            "bad-party",
        ];
        let args = [
            ("path", "/d".to_owned()),
            ("file", "checkpoints/1.note".to_owned()),
            ("size", "7".to_owned()),
            ("got", "3".to_owned()),
            ("kept", "4".to_owned()),
            ("old", "1".to_owned()),
            ("new", "2".to_owned()),
            ("index", "5".to_owned()),
            ("field", "audit-from".to_owned()),
            ("value", "x".to_owned()),
            ("party", "CJQ".to_owned()),
            ("parties", "DPJ, SPVQ".to_owned()),
        ];
        for kind in kinds {
            let f = AuditFailure::new(
                kind,
                &args
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect::<Vec<_>>(),
                "",
            );
            for l in [Lang::Fr, Lang::En] {
                let text = failure_text(l, &f);
                assert!(!text.starts_with("audit-failure-"), "{kind} in {l:?}");
                assert!(
                    !text.contains('{') && !text.contains("$"),
                    "{kind} in {l:?}: {text}"
                );
            }
        }
        let f = AuditFailure::new("bad-date", &args, "");
        assert_eq!(
            failure_text(Lang::Fr, &f),
            "Le champ « Du (inclus) » n'est pas une date\u{a0}: x."
        );
        assert_eq!(
            failure_text(Lang::En, &f),
            "The field \"From (inclusive)\" is not a date: x."
        );
    }
}
