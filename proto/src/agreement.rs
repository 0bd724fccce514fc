//! The information-sharing agreement (requirements §4): parties and units, rules, audit rights.
//!
//! The format is TOML; `examples/agreement.toml` is the reference. Parsing validates
//! everything at once and every error names the file, the line and, where there is one, the
//! rule: unknown party or unit, unknown category or field path, duplicate rule id, a rule
//! whose `from` and `to` overlap, an empty legal basis, a malformed retention.
//!
//! This module holds the agreement as data; every decision taken under it (who receives
//! what, who may read the audit log) is in [`crate::policy`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use ring::digest;
use serde::Deserialize;
use toml::Spanned;

use crate::alert::{Category, FieldSet};
use crate::principal::{check_code, Selector, UnitRef};
use crate::time::{DAY_MS, HOUR_MS};

/// A parsed, validated agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Identifier, e.g. `table-regionale-quebec-esj`.
    pub id: String,
    /// Version number; each amendment increases it.
    pub version: u64,
    /// Title, for people.
    pub title: String,
    /// Date it takes effect (`YYYY-MM-DD`), if given.
    pub effective: Option<String>,
    /// Parties by code.
    pub parties: BTreeMap<String, Party>,
    /// Rules, in file order.
    pub rules: Vec<Rule>,
    /// Who may read the audit log.
    pub audit: AuditRights,
    /// SHA-256 of the file's bytes, logged when the agreement is loaded.
    pub sha256: [u8; 32],
}

/// A party of the agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct Party {
    /// Full name.
    pub name: String,
    /// Unit code → unit name.
    pub units: BTreeMap<String, String>,
}

/// One rule: `from` may send `categories` to `to`, disclosing `fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id, e.g. `police-vers-protection`.
    pub id: String,
    /// Senders.
    pub from: Vec<Selector>,
    /// Recipients.
    pub to: Vec<Selector>,
    /// Categories this rule covers.
    pub categories: Vec<Category>,
    /// Content fields disclosed.
    pub fields: FieldSet,
    /// The legal basis of the disclosure (never empty).
    pub legal_basis: String,
    /// Why the information is shared.
    pub purpose: String,
    /// How long content disclosed under this rule is kept after the alert ends, in
    /// milliseconds.
    pub retention_ms: i64,
    /// Line of the rule's `[[rules]]` header in the file (1-based).
    pub line: usize,
}

/// The `[audit]` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditRights {
    /// Units that see every entry.
    pub full: Vec<UnitRef>,
    /// Units that see the entries where their own party is sender or recipient.
    pub party: Vec<UnitRef>,
}

/// An agreement file that cannot be used, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AgreementError {
    /// The file, as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The rule id, when the error is inside a rule.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for AgreementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    id: Spanned<String>,
    version: Spanned<i64>,
    title: Option<String>,
    effective: Option<toml::value::Datetime>,
    #[serde(default)]
    parties: BTreeMap<Spanned<String>, Spanned<RawParty>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    audit: Option<Spanned<RawAudit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    name: String,
    units: BTreeMap<Spanned<String>, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    from: Spanned<Vec<Spanned<String>>>,
    to: Spanned<Vec<Spanned<String>>>,
    categories: Spanned<Vec<Spanned<String>>>,
    fields: Spanned<RawFields>,
    legal_basis: Spanned<String>,
    purpose: Spanned<String>,
    retention: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFields {
    One(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    full: Vec<Spanned<String>>,
    #[serde(default)]
    party: Vec<Spanned<String>>,
}

/// Reads a retention such as `90d`, `36h` or `30m` (days, hours, minutes), in
/// milliseconds.
///
/// # Errors
/// A message naming the text when it is not a positive whole number followed by `d`, `h`
/// or `m`, or is over 10 years.
pub fn parse_retention(s: &str) -> Result<i64, String> {
    let err = || {
        format!("retention {s:?} is not a number of days, hours or minutes such as \"90d\", \"36h\", \"30m\"")
    };
    let s2 = s.trim();
    // The unit is the last character, whatever its width: never cut inside one.
    let Some(unit) = s2.chars().next_back() else {
        return Err(err());
    };
    let num = &s2[..s2.len() - unit.len_utf8()];
    if !matches!(unit, 'd' | 'h' | 'm')
        || num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let too_long = || format!("retention {s:?} must be more than 0 and at most 10 years");
    // All digits: a failed parse can only be an overflow, far over 10 years.
    let n: i64 = num.parse().map_err(|_| too_long())?;
    let ms = match unit {
        'd' => n.checked_mul(DAY_MS),
        'h' => n.checked_mul(HOUR_MS),
        _ => n.checked_mul(60_000),
    }
    .ok_or_else(too_long)?;
    if n <= 0 || ms > 3660 * DAY_MS {
        return Err(format!(
            "retention {s:?} must be more than 0 and at most 10 years"
        ));
    }
    Ok(ms)
}

/// What each place of an agreement holds, in the product's words (for type errors).
fn agreement_expects(keys: &[&str]) -> Option<String> {
    let text = || "text in quotes".to_owned();
    let units = || "a list of PARTY or PARTY/UNIT in quotes, such as [\"DPJ/RTS\"]".to_owned();
    Some(match keys {
        ["id"] | ["title"] => text(),
        ["version"] => "a whole number above 0".into(),
        ["effective"] => "a date such as 2026-01-01".into(),
        ["parties"] => "tables [parties.CODE]".into(),
        ["parties", _] => "a table with name and units".into(),
        ["parties", _, "name"] | ["parties", _, "units", _] => text(),
        ["parties", _, "units"] => {
            "a table of unit codes and names, such as { RTS = \"…\" }".into()
        }
        ["rules"] => "[[rules]] blocks".into(),
        ["rules", "[]"] => "a [[rules]] block".into(),
        ["rules", "[]", "id" | "legal_basis" | "purpose"] => text(),
        ["rules", "[]", "from" | "to"] => units(),
        ["rules", "[]", "from" | "to", "[]"] => "PARTY or PARTY/UNIT in quotes".into(),
        ["rules", "[]", "categories"] => format!(
            "a list of categories in quotes ({})",
            Category::ALL
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ["rules", "[]", "categories", "[]"] => {
            crate::toml_words::one_of(&Category::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>())
        }
        ["rules", "[]", "fields"] => "\"all\" or a list of field paths in quotes".into(),
        ["rules", "[]", "fields", "[]"] => "a field path in quotes".into(),
        ["rules", "[]", "retention"] => {
            "a retention in quotes such as \"90d\", \"36h\" or \"30m\"".into()
        }
        ["audit"] => "a table [audit]".into(),
        ["audit", "full" | "party"] => "a list of PARTY/UNIT in quotes".into(),
        ["audit", "full" | "party", "[]"] => "PARTY/UNIT in quotes".into(),
        _ => return None,
    })
}

/// The id of the `[[rules]]` block that holds 1-based line `line`, read from the text (for
/// errors the TOML parser reports before the rules are known).
fn rule_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line.min(lines.len());
    let start = lines[..upto]
        .iter()
        .rposition(|l| l.trim_start().starts_with('['))?;
    if lines[start].trim() != "[[rules]]" {
        return None;
    }
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "id").then(|| v.trim().trim_matches('"').to_owned())
        })
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(
        &self,
        span: Range<usize>,
        rule: Option<&str>,
        message: impl Into<String>,
    ) -> AgreementError {
        AgreementError {
            file: self.file.to_owned(),
            line: Some(self.line(span)),
            rule: rule.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl Agreement {
    /// Parses and validates an agreement. `file` is used in error messages only.
    ///
    /// # Errors
    /// [`AgreementError`] naming the file, the line and, inside a rule, the rule id: TOML
    /// syntax, unknown keys, bad codes, unknown party/unit/category/field path, duplicate
    /// rule id, `from` and `to` overlapping, empty legal basis or purpose, bad retention,
    /// unknown audit unit.
    pub fn parse(text: &str, file: &str) -> Result<Agreement, AgreementError> {
        let cx = Ctx { file, text };
        let raw: RawAgreement = toml::from_str(text).map_err(|e| {
            if let Some(t) = crate::toml_words::type_error(text, &e, agreement_expects) {
                // The rule is named apart: its position in the list says nothing more.
                let path = match t.path.strip_prefix("rules[") {
                    Some(rest) => rest.split_once("].").map_or(t.path.as_str(), |(_, p)| p),
                    None => t.path.as_str(),
                };
                return AgreementError {
                    file: file.to_owned(),
                    line: Some(t.line),
                    rule: rule_at_line(text, t.line),
                    message: format!("{path}: {}", t.problem),
                };
            }
            let line = e.span().map(|s| cx.line(s));
            AgreementError {
                file: file.to_owned(),
                line,
                rule: line.and_then(|l| rule_at_line(text, l)),
                message: e.message().trim().to_owned(),
            }
        })?;

        let id = raw.id.get_ref().trim().to_owned();
        if id.is_empty() {
            return Err(cx.err(raw.id.span(), None, "id is empty"));
        }
        let version = u64::try_from(*raw.version.get_ref())
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                cx.err(
                    raw.version.span(),
                    None,
                    "version must be a whole number above 0",
                )
            })?;

        let mut parties = BTreeMap::new();
        for (code, party) in raw.parties {
            check_code("party", code.get_ref())
                .map_err(|e| cx.err(code.span(), None, e.to_string()))?;
            let span = party.span();
            let party = party.into_inner();
            if party.units.is_empty() {
                return Err(cx.err(span, None, format!("party {} has no units", code.get_ref())));
            }
            let mut units = BTreeMap::new();
            for (u, name) in party.units {
                check_code("unit", u.get_ref())
                    .map_err(|e| cx.err(u.span(), None, e.to_string()))?;
                units.insert(u.into_inner(), name);
            }
            parties.insert(
                code.into_inner(),
                Party {
                    name: party.name,
                    units,
                },
            );
        }

        let selector = |s: &Spanned<String>,
                        rule: Option<&str>|
         -> Result<Selector, AgreementError> {
            let sel: Selector = s
                .get_ref()
                .parse()
                .map_err(|e: crate::principal::NameError| cx.err(s.span(), rule, e.to_string()))?;
            let known = match &sel {
                Selector::Party(p) => parties.contains_key(p),
                Selector::Unit(u) => parties
                    .get(&u.party)
                    .is_some_and(|p| p.units.contains_key(&u.unit)),
            };
            if !known {
                let what = match &sel {
                    Selector::Party(_) => "party",
                    Selector::Unit(u) if parties.contains_key(&u.party) => "unit",
                    Selector::Unit(_) => "party",
                };
                return Err(cx.err(s.span(), rule, format!("unknown {what} in {sel}")));
            }
            Ok(sel)
        };

        let mut rules = Vec::new();
        let mut seen = BTreeSet::new();
        for r in raw.rules {
            let rspan = r.span();
            let r = r.into_inner();
            let rid = r.id.get_ref().trim().to_owned();
            let rule = Some(rid.as_str());
            if rid.is_empty() {
                return Err(cx.err(r.id.span(), None, "rule id is empty"));
            }
            if !seen.insert(rid.clone()) {
                return Err(cx.err(r.id.span(), rule, "duplicate rule id"));
            }
            let from = r
                .from
                .get_ref()
                .iter()
                .map(|s| selector(s, rule))
                .collect::<Result<Vec<_>, _>>()?;
            let to =
                r.to.get_ref()
                    .iter()
                    .map(|s| selector(s, rule))
                    .collect::<Result<Vec<_>, _>>()?;
            if from.is_empty() {
                return Err(cx.err(r.from.span(), rule, "from is empty"));
            }
            if to.is_empty() {
                return Err(cx.err(r.to.span(), rule, "to is empty"));
            }
            for (f, fs) in from.iter().zip(r.from.get_ref()) {
                for t in &to {
                    let overlap = match (f, t) {
                        (Selector::Party(a), Selector::Party(b)) => a == b,
                        (Selector::Party(a), Selector::Unit(u))
                        | (Selector::Unit(u), Selector::Party(a)) => *a == u.party,
                        (Selector::Unit(a), Selector::Unit(b)) => a == b,
                    };
                    if overlap {
                        return Err(cx.err(
                            fs.span(),
                            rule,
                            format!("from {f} and to {t} overlap"),
                        ));
                    }
                }
            }
            let mut categories = Vec::new();
            for c in r.categories.get_ref() {
                let cat: Category = c.get_ref().parse().map_err(|e: String| {
                    cx.err(c.span(), rule, format!("unknown category: {e}"))
                })?;
                if !categories.contains(&cat) {
                    categories.push(cat);
                }
            }
            if categories.is_empty() {
                return Err(cx.err(r.categories.span(), rule, "categories is empty"));
            }
            let fspan = r.fields.span();
            let fields = match r.fields.into_inner() {
                RawFields::One(p) if p == "all" => FieldSet::all(),
                RawFields::One(p) => {
                    return Err(cx.err(
                        fspan,
                        rule,
                        format!("fields must be \"all\" or a list of field paths, not {p:?}"),
                    ))
                }
                RawFields::List(ps) => {
                    let mut set = FieldSet::EMPTY;
                    for p in ps {
                        set = set.union(
                            FieldSet::parse_pattern(&p)
                                .map_err(|e| cx.err(fspan.clone(), rule, e))?,
                        );
                    }
                    set
                }
            };
            if fields.is_empty() {
                return Err(cx.err(
                    fspan,
                    rule,
                    "fields is empty: list the content fields this rule discloses, or \"all\" (a rule that discloses nothing is a mistake; remove it instead)",
                ));
            }
            if r.legal_basis.get_ref().trim().is_empty() {
                return Err(cx.err(r.legal_basis.span(), rule, "legal_basis is empty"));
            }
            if r.purpose.get_ref().trim().is_empty() {
                return Err(cx.err(r.purpose.span(), rule, "purpose is empty"));
            }
            let retention_ms = parse_retention(r.retention.get_ref())
                .map_err(|e| cx.err(r.retention.span(), rule, e))?;
            rules.push(Rule {
                id: rid,
                from,
                to,
                categories,
                fields,
                legal_basis: r.legal_basis.into_inner().trim().to_owned(),
                purpose: r.purpose.into_inner().trim().to_owned(),
                retention_ms,
                line: cx.line(rspan),
            });
        }

        let mut audit = AuditRights::default();
        if let Some(a) = raw.audit {
            let a = a.into_inner();
            for (list, out) in [(&a.full, &mut audit.full), (&a.party, &mut audit.party)] {
                for s in list {
                    match selector(s, None)? {
                        Selector::Unit(u) => out.push(u),
                        Selector::Party(p) => {
                            return Err(cx.err(
                                s.span(),
                                None,
                                format!("audit rights name units (PARTY/UNIT), not the party {p}"),
                            ))
                        }
                    }
                }
            }
        }

        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
        Ok(Agreement {
            id,
            version,
            title: raw.title.unwrap_or_default(),
            effective: raw.effective.map(|d| d.to_string()),
            parties,
            rules,
            audit,
            sha256,
        })
    }

    /// Whether the unit is a unit of a party of the agreement.
    pub fn has_unit(&self, u: &UnitRef) -> bool {
        self.parties
            .get(&u.party)
            .is_some_and(|p| p.units.contains_key(&u.unit))
    }

    /// Every unit of every party, in order.
    pub fn units(&self) -> impl Iterator<Item = UnitRef> + '_ {
        self.parties.iter().flat_map(|(p, party)| {
            party.units.keys().map(move |u| UnitRef {
                party: p.clone(),
                unit: u.clone(),
            })
        })
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The SHA-256 of the file, in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retentions_are_read_and_each_mistake_is_named() {
        use super::parse_retention;
        assert_eq!(parse_retention("90d"), Ok(90 * DAY_MS));
        assert_eq!(parse_retention(" 36h "), Ok(36 * HOUR_MS));
        assert_eq!(parse_retention("30m"), Ok(30 * 60_000));
        let not_a_number = "is not a number of days, hours or minutes";
        for bad in ["1 year", "d", "-5d", "5", "5w", "1.5d", ""] {
            let e = parse_retention(bad).unwrap_err();
            assert!(e.contains(not_a_number), "{bad:?}: {e}");
        }
        // Regression: a retention ending in a multi-byte character panicked (the unit was
        // cut as the last byte).
        for bad in [
            "14é",
            "é",
            "14d\u{301}",
            "1\u{FEFF}",
            "\u{10FFFF}",
            "٣d",
            "14ｄ",
        ] {
            let e = parse_retention(bad).unwrap_err();
            assert!(e.contains(not_a_number), "{bad:?}: {e}");
        }
        for too_long in ["0d", "3661d", "99999999999999d", "99999999999999999999999m"] {
            let e = parse_retention(too_long).unwrap_err();
            assert!(
                e.ends_with("must be more than 0 and at most 10 years"),
                "{too_long:?}: {e}"
            );
        }
    }

    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/agreement.toml");

    fn example() -> Agreement {
        Agreement::parse(EXAMPLE, "agreement.example.toml").unwrap()
    }

    fn u(s: &str) -> UnitRef {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_reference_agreement() {
        let a = example();
        assert_eq!(a.id, "table-regionale-quebec-esj");
        assert_eq!(a.version, 1);
        assert_eq!(a.parties.len(), 11);
        assert_eq!(a.units().count(), 19);
        assert_eq!(a.rules.len(), 6);
        assert_eq!(a.rules[0].id, "police-vers-protection");
        assert_eq!(a.rules[0].line, 57);
        assert_eq!(a.rules[2].retention_ms, 30 * DAY_MS);
        assert_eq!(a.audit.full, vec![u("TABLE/CONFORMITE")]);
    }

    fn err_of(text: &str) -> String {
        Agreement::parse(text, "a.toml").unwrap_err().to_string()
    }

    const HEAD: &str = "id = \"t\"\nversion = 1\n[parties.A]\nname = \"A\"\nunits = { X = \"x\", Y = \"y\" }\n[parties.B]\nname = \"B\"\nunits = { Z = \"z\" }\n";

    fn rule(body: &str) -> String {
        format!("{HEAD}[[rules]]\nid = \"r1\"\n{body}")
    }

    const OK_RULE: &str = "from = [\"A/X\"]\nto = [\"B\"]\ncategories = [\"runaway\"]\nfields = \"all\"\nlegal_basis = \"L\"\npurpose = \"P\"\nretention = \"1d\"\n";

    #[test]
    fn every_mistake_names_file_line_and_rule() {
        assert!(Agreement::parse(&rule(OK_RULE), "a.toml").is_ok());
        let cases = [
            (OK_RULE.replace("B\"]\n", "C\"]\n"), "a.toml:12: rule \"r1\": unknown party in C"),
            (OK_RULE.replace("A/X", "A/W"), "a.toml:11: rule \"r1\": unknown unit in A/W"),
            (OK_RULE.replace("runaway", "flood"), "a.toml:13: rule \"r1\": unknown category: \"flood\" is not one of runaway, sighting, exploitation-risk"),
            (OK_RULE.replace("\"all\"", "[\"subject.photo\"]"), "a.toml:14: rule \"r1\": unknown field path \"subject.photo\""),
            (OK_RULE.replace("\"B\"", "\"A\""), "a.toml:11: rule \"r1\": from A/X and to A overlap"),
            (OK_RULE.replace("\"L\"", "\"  \""), "a.toml:15: rule \"r1\": legal_basis is empty"),
            (OK_RULE.replace("1d", "1y"), "a.toml:17: rule \"r1\": retention \"1y\" is not"),
        ];
        for (body, want) in cases {
            let got = err_of(&rule(&body));
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
        let dup = format!("{}[[rules]]\nid = \"r1\"\n{OK_RULE}", rule(OK_RULE));
        assert_eq!(err_of(&dup), "a.toml:19: rule \"r1\": duplicate rule id");
        let typo = format!("{HEAD}[[rules]]\nid = \"r1\"\nfrom = [\"A/X\"]\nto = [\"B\"]\ncategories = [\"runaway\"]\nfield = \"all\"\n");
        assert!(
            err_of(&typo).starts_with("a.toml:14: rule \"r1\": unknown field `field`"),
            "{}",
            err_of(&typo)
        );
        assert!(err_of("id = \"t\"\nversion = 0\n").starts_with("a.toml:2: version must be"));
        assert!(
            err_of("id = \"t\"\nversion = 1\n[audit]\nfull = [\"Q/R\"]\n")
                .starts_with("a.toml:4: unknown party in Q/R")
        );
        assert!(err_of("id = \"t\"\nversion = = 1\n").starts_with("a.toml:2:"));
    }

    #[test]
    fn a_type_error_in_an_agreement_names_the_field_and_what_is_expected() {
        let cases = [
            (
                rule(&OK_RULE.replace("\"all\"", "3")),
                "a.toml:14: rule \"r1\": fields: expected \"all\" or a list of field paths in quotes, got 3",
            ),
            (
                rule(&OK_RULE.replace("\"1d\"", "14")),
                "a.toml:17: rule \"r1\": retention: expected a retention in quotes such as \"90d\", \"36h\" or \"30m\", got 14",
            ),
            (
                rule(&OK_RULE.replace("[\"B\"]", "[\"B\", 7]")),
                "a.toml:12: rule \"r1\": to[1]: expected PARTY or PARTY/UNIT in quotes, got 7",
            ),
            (
                rule(OK_RULE).replace("version = 1", "version = \"1\""),
                "a.toml:2: version: expected a whole number above 0, got \"1\"",
            ),
            (
                rule(OK_RULE).replace("name = \"B\"", "name = 2"),
                "a.toml:7: parties.B.name: expected text in quotes, got 2",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err_of(&text), want, "{text}");
        }
    }

    #[test]
    fn an_empty_list_in_a_rule_is_refused_naming_the_list_as_from_to_and_categories_are() {
        let cases = [
            (
                OK_RULE.replace("[\"A/X\"]", "[]"),
                "a.toml:11: rule \"r1\": from is empty",
            ),
            (
                OK_RULE.replace("[\"B\"]", "[]"),
                "a.toml:12: rule \"r1\": to is empty",
            ),
            (
                OK_RULE.replace("[\"runaway\"]", "[]"),
                "a.toml:13: rule \"r1\": categories is empty",
            ),
            (
                OK_RULE.replace("\"all\"", "[]"),
                "a.toml:14: rule \"r1\": fields is empty",
            ),
        ];
        for (body, want) in cases {
            let got = err_of(&rule(&body));
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_retention_ending_in_a_multibyte_character_is_an_error_naming_the_rule_and_retention() {
        for bad in ["14é", "é", "14d\u{301}"] {
            let quoted = toml::Value::String(bad.into()).to_string();
            let text = rule(&OK_RULE.replace("\"1d\"", &quoted));
            assert_eq!(
                err_of(&text),
                format!("a.toml:17: rule \"r1\": retention {bad:?} is not a number of days, hours or minutes such as \"90d\", \"36h\", \"30m\"")
            );
        }
    }

    proptest::proptest! {
        /// No text in any string of an agreement reaches a panic: each is read or refused.
        #[test]
        fn any_string_in_any_place_of_an_agreement_is_read_or_refused_never_a_panic(
            place in 0usize..10,
            v in "\\PC{0,6}|.{0,6}|[0-9]{0,3}[\\u{80}-\\u{10FFFF}]{1,2}",
        ) {
            let q = toml::Value::String(v.clone()).to_string();
            let places = [
                ("id = \"t\"", format!("id = {q}")),
                ("[parties.A]", format!("[parties.{q}]")),
                ("X = \"x\"", format!("{q} = \"x\"")),
                ("from = [\"A/X\"]", format!("from = [{q}]")),
                ("to = [\"B\"]", format!("to = [{q}]")),
                ("categories = [\"runaway\"]", format!("categories = [{q}]")),
                ("fields = \"all\"", format!("fields = [{q}]")),
                ("legal_basis = \"L\"", format!("legal_basis = {q}")),
                ("purpose = \"P\"", format!("purpose = {q}")),
                ("retention = \"1d\"", format!("retention = {q}")),
            ];
            let (from, to) = &places[place];
            let text = rule(OK_RULE).replacen(from, to, 1);
            let _ = Agreement::parse(&text, "a.toml");
        }
    }
}
