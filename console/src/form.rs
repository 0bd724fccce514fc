//! The alert form: its fields (named after the alert's field paths), the draft it makes,
//! and each problem placed beside its field, in the console's language. Validation is the
//! relay's own ([`AlertDraft::validate`]); the relay checks again when it receives the post.

use std::collections::BTreeMap;

use filet_proto::alert::{
    Category, Content, FieldError, Geo, Kind, Language, LastSeen, Risk, Status, Subject,
};
use filet_proto::{AlertDraft, AlertId, Selector, Timestamp};
use jiff::tz::TimeZone;

use crate::format;
use crate::i18n::{tr, Lang};

/// The form's fields as typed (field name → value).
pub type Values = BTreeMap<String, String>;

/// The form's text fields, in page order: (form name, field path).
pub const FIELDS: &[(&str, &str)] = &[
    ("category", "category"),
    ("risk", "risk"),
    ("status", "status"),
    ("language", "language"),
    ("reference", "subject.reference"),
    ("given_name", "subject.given_name"),
    ("age", "subject.age"),
    ("description", "subject.description"),
    ("last_seen_at", "last_seen.at"),
    ("place", "last_seen.place"),
    ("lat", "last_seen.geo"),
    ("lon", "last_seen.geo"),
    ("instructions", "instructions"),
    ("contact", "contact"),
    ("expires_at", "expires_at"),
    ("to", "to"),
    ("note", "note"),
];

/// The form field where the problem of `path` is shown.
pub fn field_of(path: &str) -> &'static str {
    match path {
        "last_seen.geo" => "lat",
        "references" | "kind" => "form",
        p => FIELDS
            .iter()
            .find(|(_, fp)| *fp == p)
            .map(|(n, _)| *n)
            .unwrap_or("form"),
    }
}

/// Problems by form field (a field may have several).
pub type Problems = BTreeMap<String, Vec<String>>;

fn add(p: &mut Problems, field: &str, msg: String) {
    p.entry(field.to_owned()).or_default().push(msg);
}

fn text(v: &Values, k: &str) -> Option<String> {
    v.get(k)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What the form makes: the draft (when every value could be read) and the times read in
/// the local zone, to echo back.
pub struct Parsed {
    /// The draft, not yet validated.
    pub draft: Option<AlertDraft>,
    /// Values that could not be read at all (not a number, not a time).
    pub problems: Problems,
}

/// Reads the form into a draft of `kind` (an update refers to `references`).
pub fn parse(
    lang: Lang,
    tz: &TimeZone,
    v: &Values,
    kind: Kind,
    references: Option<AlertId>,
) -> Parsed {
    let mut p = Problems::new();
    fn choice<T: std::str::FromStr>(
        lang: Lang,
        p: &mut Problems,
        v: &Values,
        k: &str,
        default: Option<T>,
    ) -> Option<T> {
        match text(v, k) {
            Some(s) => match s.parse() {
                Ok(x) => Some(x),
                Err(_) => {
                    add(p, k, tr(lang, "err-choice", &[("value", s)]));
                    None
                }
            },
            None => {
                if default.is_none() {
                    add(p, k, crate::i18n::t(lang, "err-required"));
                }
                default
            }
        }
    }
    let category: Option<Category> = choice(lang, &mut p, v, "category", None);
    let risk: Option<Risk> = choice(lang, &mut p, v, "risk", None);
    let status: Option<Status> = choice(lang, &mut p, v, "status", Some(Status::Actual));
    let language: Option<Language> = choice(lang, &mut p, v, "language", Some(Language::FrCa));
    let age = match text(v, "age") {
        None => None,
        Some(s) => match s.parse::<u8>() {
            Ok(a) => Some(a),
            Err(_) => {
                add(&mut p, "age", tr(lang, "err-age", &[("value", s)]));
                None
            }
        },
    };
    let mut time = |k: &str| match text(v, k) {
        None => None,
        Some(s) => match format::parse_local(tz, &s) {
            Ok(t) => Some(t),
            Err(_) => {
                add(&mut p, k, tr(lang, "err-time", &[("value", s)]));
                None
            }
        },
    };
    let at = time("last_seen_at");
    let expires_at = time("expires_at");
    let coord = |k: &str, p: &mut Problems| match text(v, k) {
        None => None,
        Some(s) => match s.replace(',', ".").parse::<f64>() {
            Ok(x) => Some(x),
            Err(_) => {
                add(p, "lat", tr(lang, "err-number", &[("value", s)]));
                None
            }
        },
    };
    let lat = coord("lat", &mut p);
    let lon = coord("lon", &mut p);
    let geo = match (
        lat,
        lon,
        text(v, "lat").is_some() || text(v, "lon").is_some(),
    ) {
        (Some(a), Some(b), _) => Some(Geo(a, b)),
        (_, _, true) if !p.contains_key("lat") => {
            add(&mut p, "lat", crate::i18n::t(lang, "err-geo-both"));
            None
        }
        _ => None,
    };
    let mut to = Vec::new();
    if let Some(s) = text(v, "to") {
        for part in s
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
        {
            match part.parse::<Selector>() {
                Ok(sel) => to.push(sel),
                Err(_) => add(
                    &mut p,
                    "to",
                    tr(lang, "err-selector", &[("value", part.to_owned())]),
                ),
            }
        }
    }
    let draft = match (category, risk, status, language) {
        (Some(category), Some(risk), Some(status), Some(language)) if p.is_empty() => {
            Some(AlertDraft {
                kind,
                references,
                category,
                status,
                risk,
                language,
                expires_at,
                content: Content {
                    subject: Subject {
                        reference: text(v, "reference"),
                        given_name: text(v, "given_name"),
                        age,
                        description: text(v, "description"),
                    },
                    last_seen: LastSeen {
                        at,
                        place: text(v, "place"),
                        geo,
                    },
                    instructions: text(v, "instructions"),
                    contact: text(v, "contact"),
                },
                note: text(v, "note"),
                to,
            })
        }
        _ => None,
    };
    Parsed { draft, problems: p }
}

/// The problems of the relay's validation, by form field, in `lang`.
pub fn problems_of(lang: Lang, errors: &[FieldError]) -> Problems {
    let mut p = Problems::new();
    for e in errors {
        add(&mut p, field_of(&e.path), problem_text(lang, e));
    }
    p
}

fn numbers(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One problem of the relay's validation in `lang`. The relay words its problems in
/// English for the command line; the console recognizes each kind and says it in the
/// catalog's words, with the numbers formatted for `lang`. A problem it does not recognize
/// is shown as the relay worded it.
pub fn problem_text(lang: Lang, e: &FieldError) -> String {
    let pr = e.problem.as_str();
    let n = numbers(pr);
    let num = |i: usize| -> String {
        n.get(i)
            .and_then(|x| x.parse::<i64>().ok())
            .map(|x| format::integer(lang, x))
            .unwrap_or_default()
    };
    if pr == "required" {
        return crate::i18n::t(lang, "err-required");
    }
    if pr.starts_with("required for kind") {
        return crate::i18n::t(lang, "err-required");
    }
    if pr.contains(" characters, the limit is ") {
        return tr(
            lang,
            "err-too-long",
            &[("count", num(0)), ("limit", num(1))],
        );
    }
    if pr.contains(" years, the limit is ") {
        return tr(lang, "err-age-limit", &[("age", num(0)), ("limit", num(1))]);
    }
    if pr.contains("control or bidirectional control character") {
        return tr(lang, "err-control-char", &[("position", num(0))]);
    }
    if pr.contains("is not allowed (only A-Z") {
        let ch = pr
            .strip_prefix("character ")
            .and_then(|r| r.split(" is not allowed").next())
            .unwrap_or("")
            .to_owned();
        return tr(lang, "err-reference-char", &[("char", ch)]);
    }
    if pr.contains("is in the future") {
        return crate::i18n::t(lang, "err-future");
    }
    if pr.starts_with("latitude") {
        return crate::i18n::t(lang, "err-latitude");
    }
    if pr.starts_with("longitude") {
        return crate::i18n::t(lang, "err-longitude");
    }
    if pr.contains("is not after the relay time") {
        return crate::i18n::t(lang, "err-expiry-past");
    }
    if pr.contains("more than 30 days after") {
        return crate::i18n::t(lang, "err-expiry-far");
    }
    if pr.contains(" recipients, the limit is ") {
        return tr(
            lang,
            "err-recipients",
            &[("count", num(0)), ("limit", num(1))],
        );
    }
    pr.to_owned()
}

/// The form's values for a draft (to fill the update form): times in the local zone.
pub fn values_of(tz: &TimeZone, d: &AlertDraft) -> Values {
    let mut v = Values::new();
    let mut put = |k: &str, s: Option<String>| {
        if let Some(s) = s {
            v.insert(k.to_owned(), s);
        }
    };
    put("category", Some(d.category.to_string()));
    put("risk", Some(d.risk.to_string()));
    put("status", Some(d.status.to_string()));
    put("language", Some(d.language.to_string()));
    let c = &d.content;
    put("reference", c.subject.reference.clone());
    put("given_name", c.subject.given_name.clone());
    put("age", c.subject.age.map(|a| a.to_string()));
    put("description", c.subject.description.clone());
    put(
        "last_seen_at",
        c.last_seen.at.map(|t| format::input_value(tz, t)),
    );
    put("place", c.last_seen.place.clone());
    put("lat", c.last_seen.geo.map(|g| g.0.to_string()));
    put("lon", c.last_seen.geo.map(|g| g.1.to_string()));
    put("instructions", c.instructions.clone());
    put("contact", c.contact.clone());
    v
}

/// The draft of a `located` or `cancel` of `alert`, as `filet located` / `filet cancel`
/// build it: the original's category, risk, status and language, no content, the note.
pub fn closing(
    kind: Kind,
    alert: AlertId,
    orig: &filet_proto::alert::Envelope,
    note: Option<String>,
) -> AlertDraft {
    let mut d = AlertDraft::new(orig.category, orig.risk, "", "");
    d.content = Content::default();
    d.kind = kind;
    d.references = Some(alert);
    d.status = orig.status;
    d.language = orig.language;
    d.note = note;
    d
}

/// The time now (for validation).
pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_relays_validation_errors_land_beside_their_fields_in_french() {
        let tz = format::zone(format::DEFAULT_ZONE).expect("zone");
        let long = "x".repeat(291);
        let v = values(&[
            ("category", "runaway"),
            ("risk", "severe"),
            ("description", &long),
            ("reference", "SPVQ 2026"),
        ]);
        let parsed = parse(Lang::Fr, &tz, &v, Kind::Alert, None);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let draft = parsed.draft.expect("a draft");
        let invalid = draft.validate(Timestamp::now()).expect_err("invalid");
        let p = problems_of(Lang::Fr, &invalid.errors);
        assert_eq!(
            p.get("description"),
            Some(&vec!["291 caractères, la limite est de 280.".to_owned()])
        );
        assert_eq!(
            p.get("contact"),
            Some(&vec!["Ce champ est obligatoire.".to_owned()])
        );
        assert_eq!(
            p.get("reference"),
            Some(&vec![
                "Le caractère ' ' n'est pas permis (seulement A-Z, a-z, 0-9, «\u{a0}.\u{a0}», «\u{a0}_\u{a0}», «\u{a0}/\u{a0}», «\u{a0}-\u{a0}»)."
                    .to_owned()
            ])
        );
    }

    #[test]
    fn values_that_cannot_be_read_are_named_beside_their_fields() {
        let tz = format::zone(format::DEFAULT_ZONE).expect("zone");
        let v = values(&[
            ("category", "runaway"),
            ("risk", "severe"),
            ("age", "quinze"),
            ("last_seen_at", "hier"),
            ("lat", "46,81"),
        ]);
        let parsed = parse(Lang::Fr, &tz, &v, Kind::Alert, None);
        assert!(parsed.draft.is_none());
        assert_eq!(parsed.problems.len(), 3, "{:?}", parsed.problems);
        assert!(parsed.problems["age"][0].contains("quinze"));
        assert!(parsed.problems["last_seen_at"][0].contains("hier"));
        assert!(parsed.problems.contains_key("lat"));
    }

    #[test]
    fn a_typed_local_time_and_a_comma_decimal_are_read_as_a_person_means_them() {
        let tz = format::zone(format::DEFAULT_ZONE).expect("zone");
        let v = values(&[
            ("category", "runaway"),
            ("risk", "severe"),
            ("last_seen_at", "2026-12-02T22:40"),
            ("lat", "46,8123"),
            ("lon", "-71,2345"),
            ("to", "DPJ/RTS, CJQ"),
        ]);
        let d = parse(Lang::Fr, &tz, &v, Kind::Alert, None)
            .draft
            .expect("a draft");
        assert_eq!(
            d.content.last_seen.at,
            Some("2026-12-03T03:40:00Z".parse().expect("time"))
        );
        assert_eq!(d.content.last_seen.geo, Some(Geo(46.8123, -71.2345)));
        assert_eq!(d.to.len(), 2);
    }
}
