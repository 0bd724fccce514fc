//! Message catalogs (Fluent): French first, English available. Machine interfaces (JSON
//! keys, wire codes, field paths) are never translated.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::{langid, LanguageIdentifier};

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// French (Québec): the default.
    Fr,
    /// English (Canada).
    En,
}

impl Lang {
    /// `fr` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The language a code or locale names: `fr*` is French, `en*` English, else `None`.
    pub fn from_code(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("fr") {
            Some(Lang::Fr)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language of the locale, as POSIX reads it: the first of `LC_ALL`, `LC_MESSAGES`,
    /// `LANG` that is set and not empty; `fr*` is French, anything else English, and French
    /// when none is set (a Québec deployment).
    pub fn from_locale(
        lc_all: Option<&str>,
        lc_messages: Option<&str>,
        lang: Option<&str>,
    ) -> Lang {
        match [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|v| !v.is_empty())
        {
            None => Lang::Fr,
            Some(v) if v.to_ascii_lowercase().starts_with("fr") => Lang::Fr,
            Some(_) => Lang::En,
        }
    }

    /// [`Lang::from_locale`] of this process's environment.
    pub fn from_env() -> Lang {
        let v = |k: &str| std::env::var(k).ok();
        Lang::from_locale(
            v("LC_ALL").as_deref(),
            v("LC_MESSAGES").as_deref(),
            v("LANG").as_deref(),
        )
    }

    /// The other language (for the toggle).
    pub fn other(self) -> Lang {
        match self {
            Lang::Fr => Lang::En,
            Lang::En => Lang::Fr,
        }
    }
}

/// The catalog files, embedded: (language, file name, text).
pub const CATALOGS: &[(Lang, &str, &str)] = &[
    (
        Lang::Fr,
        "console.ftl",
        include_str!("../i18n/fr/console.ftl"),
    ),
    (
        Lang::En,
        "console.ftl",
        include_str!("../i18n/en/console.ftl"),
    ),
];

struct Bundles {
    fr: FluentBundle<FluentResource>,
    en: FluentBundle<FluentResource>,
}

fn bundle(lang: Lang, id: LanguageIdentifier) -> FluentBundle<FluentResource> {
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // No bidirectional isolation marks around arguments: the console shows left-to-right
    // text only, and the marks would end up in copied text.
    b.set_use_isolating(false);
    for (l, name, text) in CATALOGS {
        if *l == lang {
            let res = FluentResource::try_new((*text).to_owned()).unwrap_or_else(|(r, errs)| {
                // A syntax error is caught by the catalogs' unit test; keep what parsed.
                let _ = (name, errs);
                r
            });
            let _ = b.add_resource(res);
        }
    }
    b
}

fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| Bundles {
        fr: bundle(Lang::Fr, langid!("fr-CA")),
        en: bundle(Lang::En, langid!("en-CA")),
    })
}

/// The message `id` in `lang` with `args`; a missing message shows its id (the catalogs'
/// test keeps that from happening).
pub fn tr(lang: Lang, id: &str, args: &[(&str, String)]) -> String {
    let b = match lang {
        Lang::Fr => &bundles().fr,
        Lang::En => &bundles().en,
    };
    let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
        return id.to_owned();
    };
    let mut fa = FluentArgs::new();
    for (k, v) in args {
        fa.set(*k, FluentValue::from(v.clone()));
    }
    let mut errors = Vec::new();
    b.format_pattern(pattern, Some(&fa), &mut errors)
        .into_owned()
}

/// The message `id` in `lang`, without arguments.
pub fn t(lang: Lang, id: &str) -> String {
    tr(lang, id, &[])
}

/// Message ids and, for each, the variables it uses (sorted), read from a catalog's text.
pub fn messages(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let starts_message = line.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if starts_message {
            if let Some((id, rest)) = line.split_once('=') {
                out.push((id.trim().to_owned(), vars(rest)));
                continue;
            }
        }
        if let Some((_, v)) = out.last_mut() {
            v.extend(vars(line));
        }
    }
    for (_, v) in &mut out {
        v.sort();
        v.dedup();
    }
    out
}

fn vars(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let name: String = rest[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        rest = &rest[i + 1 + name.len()..];
        if !name.is_empty() {
            v.push(name);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(lang: Lang) -> Vec<(String, Vec<String>)> {
        CATALOGS
            .iter()
            .filter(|(l, _, _)| *l == lang)
            .flat_map(|(_, _, text)| messages(text))
            .collect()
    }

    #[test]
    fn both_languages_have_the_same_message_ids_and_the_same_variables() {
        let fr = catalog(Lang::Fr);
        let en = catalog(Lang::En);
        assert!(
            fr.len() > 50,
            "the French catalog has {} messages",
            fr.len()
        );
        let fr_ids: Vec<&str> = fr.iter().map(|(i, _)| i.as_str()).collect();
        let en_ids: Vec<&str> = en.iter().map(|(i, _)| i.as_str()).collect();
        let mut sorted = fr_ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            fr_ids.len(),
            "a message id appears twice in French"
        );
        for (id, v) in &fr {
            let other = en.iter().find(|(i, _)| i == id);
            let Some((_, ev)) = other else {
                panic!("{id} is in French, not in English")
            };
            assert_eq!(v, ev, "{id}: French and English use different variables");
        }
        for id in &en_ids {
            assert!(fr_ids.contains(id), "{id} is in English, not in French");
        }
    }

    #[test]
    fn every_catalog_parses_without_error() {
        for (lang, name, text) in CATALOGS {
            if let Err((_, errs)) = FluentResource::try_new((*text).to_owned()) {
                panic!("{}/{name}: {errs:?}", lang.code());
            }
        }
    }

    #[test]
    fn french_puts_a_no_break_space_before_a_colon() {
        for (id, line) in CATALOGS
            .iter()
            .filter(|(l, _, _)| *l == Lang::Fr)
            .flat_map(|(_, _, t)| t.lines().map(move |l| (l, l)))
        {
            if id.starts_with('#') {
                continue;
            }
            let body = line.split_once('=').map(|(_, b)| b).unwrap_or(line);
            let chars: Vec<char> = body.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                // A colon as punctuation (followed by a space or the end), not `[::1]`.
                let punctuation = chars.get(i + 1).is_none_or(|n| *n == ' ');
                if *c == ':' && i > 0 && punctuation {
                    assert_eq!(
                        chars[i - 1],
                        '\u{a0}',
                        "French needs a no-break space before « : » in: {line}"
                    );
                }
            }
        }
    }

    /// Ids named literally in the console's code: `t(x, "id")`, `tr(x, "id", …)`.
    fn ids_in_code() -> Vec<String> {
        let code = [
            include_str!("pages.rs"),
            include_str!("server.rs"),
            include_str!("form.rs"),
            include_str!("../../client/src/console.rs"),
        ];
        let mut ids = Vec::new();
        for src in code {
            for call in ["t(", "tr("] {
                let mut rest = src;
                while let Some(i) = rest.find(call) {
                    let before = rest[..i].chars().next_back();
                    rest = &rest[i + call.len()..];
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    // The id is the first string literal of the call, after the language.
                    let args = rest.split(')').next().unwrap_or("");
                    if let Some(lit) = args.split('"').nth(1) {
                        if args.split('"').next().is_some_and(|a| a.contains(','))
                            && lit
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        {
                            ids.push(lit.to_owned());
                        }
                    }
                }
            }
        }
        ids
    }

    #[test]
    fn every_message_the_console_shows_is_in_both_catalogs() {
        use filet_proto::alert::{AlertState, Category, FieldPath, Kind, Language, Risk, Status};
        let mut ids = ids_in_code();
        assert!(ids.len() > 60, "found only {} ids in the code", ids.len());
        for p in [
            "category",
            "risk",
            "status",
            "kind",
            "state",
            "state-banner",
            "language",
        ] {
            let values: Vec<&str> = match p {
                "category" => Category::ALL.iter().map(|x| x.as_str()).collect(),
                "risk" => Risk::ALL.iter().map(|x| x.as_str()).collect(),
                "status" => Status::ALL.iter().map(|x| x.as_str()).collect(),
                "kind" => Kind::ALL.iter().map(|x| x.as_str()).collect(),
                "language" => Language::ALL.iter().map(|x| x.as_str()).collect(),
                _ => AlertState::ALL.iter().map(|x| x.as_str()).collect(),
            };
            ids.extend(values.iter().map(|v| format!("{p}-{v}")));
        }
        for f in FieldPath::ALL {
            ids.push(format!("field-{}", f.to_string().replace(['.', '_'], "-")));
        }
        for (name, _) in crate::form::FIELDS {
            ids.push(format!("label-{name}"));
        }
        for r in [
            "refused-host",
            "refused-session",
            "refused-origin",
            "refused-form-token",
            "refused-too-large",
            "refused-login",
            "signed-out",
        ] {
            ids.push(r.to_owned());
            ids.push(format!("{r}-text"));
        }
        for h in ["reference", "last_seen_at", "expires_at", "to"] {
            ids.push(format!("hint-{h}"));
        }
        for lang in [Lang::Fr, Lang::En] {
            let have: Vec<String> = catalog(lang).into_iter().map(|(i, _)| i).collect();
            for id in &ids {
                assert!(
                    have.contains(id),
                    "{id} is not in the {} catalog",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn the_locale_chooses_the_language_and_french_is_the_default() {
        assert_eq!(Lang::from_locale(None, None, None), Lang::Fr);
        assert_eq!(Lang::from_locale(Some(""), None, Some("")), Lang::Fr);
        assert_eq!(Lang::from_locale(None, None, Some("fr_CA.UTF-8")), Lang::Fr);
        assert_eq!(Lang::from_locale(None, None, Some("en_CA.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(None, None, Some("C.UTF-8")), Lang::En);
        assert_eq!(
            Lang::from_locale(Some("fr_CA.UTF-8"), Some("en_US"), Some("en_US")),
            Lang::Fr
        );
        assert_eq!(
            Lang::from_locale(None, Some("en_US.UTF-8"), Some("fr_CA.UTF-8")),
            Lang::En
        );
    }

    #[test]
    fn a_message_with_a_variable_is_formatted_in_each_language() {
        let a = [("count", "3".to_owned())];
        assert_eq!(
            tr(Lang::Fr, "acked-count", &a),
            "Réception accusée pour 3 alerte(s)."
        );
        assert_eq!(
            tr(Lang::En, "acked-count", &a),
            "Receipt acknowledged for 3 alert(s)."
        );
    }
}
