//! Every decision as properties over random valid agreements (random parties, units,
//! rules, categories, field lists and audit rights), random principals, categories and
//! recipients, checked against a direct reading of the rules (requirements §4, §7, issue 5):
//!
//! - routing a new alert: no unit outside the rules ever appears among the recipients, and
//!   the sender's own unit never does; each recipient gets exactly the union of the fields
//!   of its matching rules, and the rules listed are exactly those, in file order;
//!   explicit recipients must each be permitted, otherwise the whole post is refused,
//!   naming the first one at fault;
//! - [`Content::redact`] never leaves a field outside the kept set, keeps every kept one
//!   as it was;
//! - a follow-up never reaches a unit that never received the original, nor the poster's
//!   own unit; it carries today's rules and fields, or (closing) the envelope only;
//!   only the sender's party may post one, and its other units only if they may send;
//! - a delivery never carries a field its rule does not allow now, nor more than was
//!   disclosed at posting time; an expired one is never delivered;
//! - an alert and its status are visible as the rules of visibility say, and a refusal
//!   always names the unit (and the agreement and rule's sender where there is one);
//! - the audit scope never includes another party's entries unless the right is full;
//! - a decision is the same after re-serializing the agreement.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::alert::{Content, FieldPath, Geo, LastSeen, Status, Subject};

/// A rule as generated: indices into the generated parties and units.
#[derive(Debug, Clone)]
struct GenRule {
    from: Vec<Sel>,
    to: Vec<Sel>,
    categories: Vec<Category>,
    /// `None`: `"all"`; otherwise the listed paths (at least one).
    fields: Option<Vec<FieldPath>>,
}

/// A selector by index: a party, or a unit of a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sel {
    Party(usize),
    Unit(usize, usize),
}

/// A generated agreement: `units[p]` units for party `p`, and the rules.
#[derive(Debug, Clone)]
struct GenAgreement {
    units: Vec<usize>,
    rules: Vec<GenRule>,
}

fn party_code(p: usize) -> String {
    format!("P{p}")
}

fn unit_code(u: usize) -> String {
    format!("U{u}")
}

fn selector(s: Sel) -> Selector {
    match s {
        Sel::Party(p) => Selector::Party(party_code(p)),
        Sel::Unit(p, u) => Selector::Unit(UnitRef {
            party: party_code(p),
            unit: unit_code(u),
        }),
    }
}

fn overlap(a: Sel, b: Sel) -> bool {
    match (a, b) {
        (Sel::Party(x), Sel::Party(y)) => x == y,
        (Sel::Party(x), Sel::Unit(y, _)) | (Sel::Unit(y, _), Sel::Party(x)) => x == y,
        (Sel::Unit(x, u), Sel::Unit(y, v)) => (x, u) == (y, v),
    }
}

fn matches(s: Sel, unit: (usize, usize)) -> bool {
    match s {
        Sel::Party(p) => p == unit.0,
        Sel::Unit(p, u) => (p, u) == unit,
    }
}

fn sel_strategy(units: Vec<usize>) -> impl Strategy<Value = Sel> {
    let n = units.len();
    (0..n, any::<bool>(), 0..4usize).prop_map(move |(p, party, u)| {
        if party {
            Sel::Party(p)
        } else {
            Sel::Unit(p, u % units[p])
        }
    })
}

/// The rules of an agreement over these parties (`units[p]` units for party `p`).
fn rules_strategy(units: Vec<usize>) -> impl Strategy<Value = Vec<GenRule>> {
    let rule = (
        prop::collection::vec(sel_strategy(units.clone()), 1..4),
        prop::collection::vec(sel_strategy(units), 1..4),
        prop::sample::subsequence(Category::ALL.to_vec(), 1..=3),
        prop::option::weighted(
            0.8,
            // A rule discloses at least one field (`fields = []` is refused).
            prop::sample::subsequence(FieldPath::ALL.to_vec(), 1..=FieldPath::ALL.len()),
        ),
    )
        .prop_map(|(from, to, categories, fields)| {
            // Keep the recipients that do not overlap a sender; a rule needs one (a
            // rule left without any is dropped, not retried: one party with one unit
            // can have no rule at all).
            let to: Vec<Sel> = to
                .into_iter()
                .filter(|t| from.iter().all(|f| !overlap(*f, *t)))
                .collect();
            (!to.is_empty()).then_some(GenRule {
                from,
                to,
                categories,
                fields,
            })
        });
    prop::collection::vec(rule, 0..7).prop_map(|rules| rules.into_iter().flatten().collect())
}

fn agreement_strategy() -> impl Strategy<Value = GenAgreement> {
    prop::collection::vec(1..4usize, 1..5).prop_flat_map(|units| {
        (Just(units.clone()), rules_strategy(units))
            .prop_map(|(units, rules)| GenAgreement { units, rules })
    })
}

fn quoted(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", v.join(", "))
}

impl GenAgreement {
    fn to_toml(&self) -> String {
        let mut t = String::from("id = \"prop\"\nversion = 1\n");
        for (p, n) in self.units.iter().enumerate() {
            let units: Vec<String> = (0..*n)
                .map(|u| format!("{} = \"u\"", unit_code(u)))
                .collect();
            t.push_str(&format!(
                "[parties.{}]\nname = \"p\"\nunits = {{ {} }}\n",
                party_code(p),
                units.join(", ")
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let fields = match &r.fields {
                None => "\"all\"".to_owned(),
                Some(f) => quoted(f.iter().map(|f| f.as_str().to_owned())),
            };
            t.push_str(&format!(
                "[[rules]]\nid = \"r{i}\"\nfrom = {}\nto = {}\ncategories = {}\nfields = {fields}\nlegal_basis = \"L{i}\"\npurpose = \"P\"\nretention = \"{}d\"\n",
                quoted(r.from.iter().map(|s| selector(*s).to_string())),
                quoted(r.to.iter().map(|s| selector(*s).to_string())),
                quoted(r.categories.iter().map(|c| c.as_str().to_owned())),
                i + 1,
            ));
        }
        t
    }

    fn all_units(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for (p, n) in self.units.iter().enumerate() {
            for u in 0..*n {
                v.push((p, u));
            }
        }
        v
    }

    fn field_set(r: &GenRule) -> FieldSet {
        match &r.fields {
            None => FieldSet::all(),
            Some(f) => f.iter().fold(FieldSet::EMPTY, |s, f| s.with(*f)),
        }
    }

    /// The oracle: for each unit other than `sender`, the ids of the rules that permit
    /// `sender` to send `category` to it and the union of their fields.
    fn permitted(
        &self,
        sender: (usize, usize),
        category: Category,
    ) -> BTreeMap<(usize, usize), (Vec<String>, FieldSet)> {
        let mut out: BTreeMap<(usize, usize), (Vec<String>, FieldSet)> = BTreeMap::new();
        for unit in self.all_units() {
            if unit == sender {
                continue;
            }
            for (i, r) in self.rules.iter().enumerate() {
                if r.categories.contains(&category)
                    && r.from.iter().any(|s| matches(*s, sender))
                    && r.to.iter().any(|s| matches(*s, unit))
                {
                    let e = out.entry(unit).or_insert((Vec::new(), FieldSet::EMPTY));
                    e.0.push(format!("r{i}"));
                    e.1 = e.1.union(Self::field_set(r));
                }
            }
        }
        out
    }
}

fn unit_ref((p, u): (usize, usize)) -> UnitRef {
    UnitRef {
        party: party_code(p),
        unit: unit_code(u),
    }
}

/// A named recipient, possibly one the agreement does not know (party 9, unit 7).
fn named_strategy() -> impl Strategy<Value = Sel> {
    (0..10usize, any::<bool>(), 0..8usize).prop_map(|(p, party, u)| {
        if party {
            Sel::Party(p)
        } else {
            Sel::Unit(p, u)
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn routing_discloses_only_what_the_rules_permit(
        g in agreement_strategy(),
        sender_pick in any::<prop::sample::Index>(),
        category in prop::sample::select(Category::ALL.to_vec()),
        to in prop::collection::vec(named_strategy(), 0..4),
    ) {
        let text = g.to_toml();
        let a = Agreement::parse(&text, "prop.toml")
            .unwrap_or_else(|e| panic!("a valid agreement is refused: {e}\n{text}"));
        let units = g.all_units();
        let sender = units[sender_pick.index(units.len())];
        let permitted = g.permitted(sender, category);
        let named: Vec<Selector> = to.iter().map(|s| selector(*s)).collect();

        let routed = route_alert(&a, &unit_ref(sender), category, &named);

        let known = |s: Sel| match s {
            Sel::Party(p) => p < g.units.len(),
            Sel::Unit(p, u) => p < g.units.len() && u < g.units[p],
        };
        // What a direct reading of the rules expects.
        let mut expected: BTreeMap<(usize, usize), (Vec<String>, FieldSet)> = BTreeMap::new();
        let mut first_fault: Option<RouteRefusal> = None;
        if to.is_empty() {
            expected = permitted.clone();
            if expected.is_empty() {
                first_fault = Some(RouteRefusal::NoRecipient {
                    agreement: "prop".into(),
                    sender: unit_ref(sender),
                    category,
                });
            }
        } else {
            for s in &to {
                if !known(*s) {
                    first_fault = Some(RouteRefusal::UnknownRecipient {
                        agreement: "prop".into(),
                        recipient: selector(*s).to_string(),
                    });
                    break;
                }
                let hits: Vec<_> = permitted.iter().filter(|(u, _)| matches(*s, **u)).collect();
                if hits.is_empty() {
                    first_fault = Some(RouteRefusal::NotPermitted {
                        agreement: "prop".into(),
                        sender: unit_ref(sender),
                        category,
                        recipient: selector(*s).to_string(),
                    });
                    break;
                }
                for (u, v) in hits {
                    expected.insert(*u, v.clone());
                }
            }
        }
        match (routed, first_fault) {
            (Err(got), Some(want)) => prop_assert_eq!(got, want, "refused whole, naming the first at fault"),
            (Err(got), None) => prop_assert!(false, "refused ({got}) but the rules permit every named recipient\n{text}"),
            (Ok(got), Some(want)) => prop_assert!(false, "routed to {:?} but should be refused: {want}\n{text}",
                got.iter().map(|d| d.recipient.to_string()).collect::<Vec<_>>()),
            (Ok(got), None) => {
                prop_assert!(!got.is_empty());
                let got_units: Vec<UnitRef> = got.iter().map(|d| d.recipient.clone()).collect();
                let want_units: Vec<UnitRef> = expected.keys().map(|u| unit_ref(*u)).collect();
                prop_assert_eq!(&got_units, &want_units, "exactly the permitted (and named) units, in order\n{}", text);
                prop_assert!(!got_units.contains(&unit_ref(sender)), "never the sender's own unit");
                for d in &got {
                    let key = units.iter().copied().find(|u| unit_ref(*u) == d.recipient).unwrap();
                    let (rules, fields) = &expected[&key];
                    prop_assert_eq!(&d.rules, rules, "the matching rules, in file order");
                    prop_assert_eq!(d.fields, *fields, "the union of the matching rules' fields");
                    prop_assert_eq!(d.legal_bases.len(), d.rules.len());
                    // Every rule listed really names this sender, unit and category.
                    for id in &d.rules {
                        let r = a.rule(id).unwrap();
                        prop_assert!(r.categories.contains(&category));
                        prop_assert!(r.from.iter().any(|s| s.matches(&unit_ref(sender))));
                        prop_assert!(r.to.iter().any(|s| s.matches(&d.recipient)));
                    }
                    // permits() agrees with route_alert().
                    let p = permits(&a, &unit_ref(sender), &d.recipient, category).unwrap();
                    prop_assert_eq!(p.fields, d.fields);
                }
            }
        }
        // A unit no rule permits is never permitted, whatever is named.
        for u in &units {
            if !permitted.contains_key(u) {
                prop_assert!(permits(&a, &unit_ref(sender), &unit_ref(*u), category).is_none());
            }
        }
    }

    #[test]
    fn redaction_keeps_exactly_the_kept_fields(
        mask in 0u16..(1 << 9),
        keep_bits in prop::sample::subsequence(FieldPath::ALL.to_vec(), 0..=FieldPath::ALL.len()),
        text in "[a-zA-Zé ]{1,20}",
        age in 0u8..=20,
    ) {
        let full = Content {
            subject: Subject {
                reference: Some("R-1".into()),
                given_name: Some(text.clone()),
                age: Some(age),
                description: Some(format!("d {text}")),
            },
            last_seen: LastSeen {
                at: Some(Timestamp(1_700_000_000_000)),
                place: Some(format!("p {text}")),
                geo: Some(Geo(46.8, -71.2)),
            },
            instructions: Some(format!("i {text}")),
            contact: Some(format!("c {text}")),
        };
        // Some fields absent to start with.
        let present = FieldPath::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .fold(FieldSet::EMPTY, |s, (_, f)| s.with(*f));
        let c = full.redact(present);
        prop_assert_eq!(c.present(), present);
        let keep = keep_bits.iter().fold(FieldSet::EMPTY, |s, f| s.with(*f));

        let r = c.redact(keep);

        prop_assert_eq!(r.present(), present.intersection(keep), "nothing outside the kept set");
        prop_assert!(r.present().iter().all(|f| keep.contains(f)));
        // What is kept is unchanged: redacting again, or redacting the original with the
        // kept set, gives the same content.
        prop_assert_eq!(&r.redact(keep), &r);
        prop_assert_eq!(&full.redact(present.intersection(keep)), &r);
        prop_assert_eq!(&c.redact(FieldSet::all()), &c);
        prop_assert_eq!(c.redact(FieldSet::EMPTY), Content::default());
    }
}

/// The generator is not vacuous: over 1000 samples, routes succeed with several
/// recipients, with partial field sets, and are refused for each reason.
#[test]
fn the_generated_cases_cover_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (
        agreement_strategy(),
        any::<prop::sample::Index>(),
        prop::sample::select(Category::ALL.to_vec()),
        prop::collection::vec(named_strategy(), 0..4),
    );
    let (mut several, mut partial, mut no_recipient, mut not_permitted, mut unknown) =
        (0, 0, 0, 0, 0);
    for _ in 0..1000 {
        let (g, pick, category, to) = strategy.new_tree(&mut runner).unwrap().current();
        let a = Agreement::parse(&g.to_toml(), "prop.toml").unwrap();
        let units = g.all_units();
        let sender = unit_ref(units[pick.index(units.len())]);
        let named: Vec<Selector> = to.iter().map(|s| selector(*s)).collect();
        match route_alert(&a, &sender, category, &named) {
            Ok(ds) => {
                several += usize::from(ds.len() > 1);
                partial += usize::from(ds.iter().any(|d| !d.fields.is_all()));
            }
            Err(RouteRefusal::NoRecipient { .. }) => no_recipient += 1,
            Err(RouteRefusal::NotPermitted { .. }) => not_permitted += 1,
            Err(RouteRefusal::UnknownRecipient { .. }) => unknown += 1,
        }
    }
    for (what, n) in [
        ("routed to several units", several),
        ("routed with partial fields", partial),
        ("refused: no recipient", no_recipient),
        ("refused: not permitted", not_permitted),
        ("refused: unknown recipient", unknown),
    ] {
        assert!(n >= 30, "only {n} of 1000 cases {what}");
    }
}

// ---- the other decisions -------------------------------------------------------------

/// An agreement and its amendment (version 2): the same parties, other rules, or the same
/// rules one time in four.
fn amended_strategy() -> impl Strategy<Value = (GenAgreement, GenAgreement)> {
    prop::collection::vec(1..4usize, 1..5).prop_flat_map(|units| {
        (
            Just(units.clone()),
            rules_strategy(units.clone()),
            rules_strategy(units),
            prop::bool::weighted(0.25),
        )
            .prop_map(|(units, rules, other, same)| {
                let v1 = GenAgreement {
                    units: units.clone(),
                    rules,
                };
                let v2 = GenAgreement {
                    units,
                    rules: if same { v1.rules.clone() } else { other },
                };
                (v1, v2)
            })
    })
}

/// An agreement with audit rights: the units with `full`, the units with `party`.
type Audited = (GenAgreement, Vec<(usize, usize)>, Vec<(usize, usize)>);

fn audited_strategy() -> impl Strategy<Value = Audited> {
    agreement_strategy().prop_flat_map(|g| {
        let units = g.all_units();
        let n = units.len();
        (
            Just(g),
            prop::sample::subsequence(units.clone(), 0..=n.min(2)),
            prop::sample::subsequence(units, 0..=n),
        )
    })
}

fn audited_toml((g, full, party): &Audited) -> String {
    format!(
        "{}[audit]\nfull = {}\nparty = {}\n",
        g.to_toml(),
        quoted(full.iter().map(|u| unit_ref(*u).to_string())),
        quoted(party.iter().map(|u| unit_ref(*u).to_string())),
    )
}

impl GenAgreement {
    fn parse_as(&self, version: u64) -> Agreement {
        let text = self
            .to_toml()
            .replacen("version = 1", &format!("version = {version}"), 1);
        Agreement::parse(&text, "prop.toml")
            .unwrap_or_else(|e| panic!("a valid agreement is refused: {e}\n{text}"))
    }

    /// The oracle of `may_send`.
    fn may_send(&self, sender: (usize, usize), category: Category) -> bool {
        self.rules
            .iter()
            .any(|r| r.categories.contains(&category) && r.from.iter().any(|s| matches(*s, sender)))
    }
}

fn principal(u: (usize, usize)) -> Principal {
    Principal {
        unit: unit_ref(u),
        node: "n1".into(),
    }
}

fn alert_id(n: u64) -> AlertId {
    AlertId::from_parts(1_700_000_000_000 + n, [7; 10])
}

fn follow_up_kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(vec![Kind::Update, Kind::Located, Kind::Cancel])
}

fn field_set(fields: &[FieldPath]) -> FieldSet {
    fields.iter().fold(FieldSet::EMPTY, |s, f| s.with(*f))
}

/// The agreement written again, differently: rules before parties, selectors, fields and
/// retentions as parsed (retentions in minutes), audit rights last.
fn reserialize(a: &Agreement) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let list = |v: Vec<String>| {
        format!(
            "[{}]",
            v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        )
    };
    let mut t = format!(
        "version = {}\nid = {}\ntitle = {}\n",
        a.version,
        q(&a.id),
        q(&a.title)
    );
    for r in &a.rules {
        let fields = if r.fields.is_all() {
            q("all")
        } else {
            list(r.fields.paths().into_iter().map(str::to_owned).collect())
        };
        t.push_str(&format!(
            "\n[[rules]]\nlegal_basis = {}\npurpose = {}\nretention = \"{}m\"\nid = {}\nto = {}\nfrom = {}\ncategories = {}\nfields = {fields}\n",
            q(&r.legal_basis),
            q(&r.purpose),
            r.retention_ms / 60_000,
            q(&r.id),
            list(r.to.iter().map(|s| s.to_string()).collect()),
            list(r.from.iter().map(|s| s.to_string()).collect()),
            list(r.categories.iter().map(|c| c.as_str().to_owned()).collect()),
        ));
    }
    for (code, p) in a.parties.iter().rev() {
        t.push_str(&format!(
            "\n[parties.{code}]\nname = {}\n[parties.{code}.units]\n",
            q(&p.name)
        ));
        for (u, name) in &p.units {
            t.push_str(&format!("{u} = {}\n", q(name)));
        }
    }
    t.push_str(&format!(
        "\n[audit]\nparty = {}\nfull = {}\n",
        list(a.audit.party.iter().map(|u| u.to_string()).collect()),
        list(a.audit.full.iter().map(|u| u.to_string()).collect()),
    ));
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_follow_up_reaches_only_units_told_of_the_original_under_the_rules_in_force(
        (v1, v2) in amended_strategy(),
        sender_pick in any::<prop::sample::Index>(),
        poster_pick in any::<prop::sample::Index>(),
        category in prop::sample::select(Category::ALL.to_vec()),
        kind in follow_up_kind(),
    ) {
        let (a, now) = (v1.parse_as(1), v2.parse_as(2));
        let units = v1.all_units();
        let sender_i = units[sender_pick.index(units.len())];
        let poster_i = units[poster_pick.index(units.len())];
        let (sender, poster) = (unit_ref(sender_i), principal(poster_i));
        let Ok(original) = route_alert(&a, &sender, category, &[]) else {
            return Ok(());
        };
        let recipients: Vec<UnitRef> = original.iter().map(|d| d.recipient.clone()).collect();
        let told: Vec<Told> = original
            .iter()
            .map(|d| Told { unit: &d.recipient, rules: &d.rules, retention_ms: d.retention_ms })
            .collect();
        let thread = Thread { alert: alert_id(1), sender_unit: &sender, category, recipients: &recipients };

        // Who may post it: the sender's party; its other units only if they may send.
        let may = may_follow_up(&now, &poster, kind, &thread);
        let want = poster.unit.party == sender.party
            && (poster.unit == sender || v2.may_send(poster_i, category));
        prop_assert_eq!(may.is_ok(), want, "{:?}", may);
        if let Err(e) = &may {
            let text = e.to_string();
            prop_assert!(text.starts_with(&format!("{poster}: ")), "names the principal: {text}");
            prop_assert!(text.contains(&alert_id(1).to_string()), "names the alert: {text}");
            prop_assert!(text.ends_with("; nothing was posted"));
            match &**e {
                FollowUpRefusal::NotOwner { owner, .. } => prop_assert_eq!(owner, &sender.party),
                FollowUpRefusal::MayNotSend { .. } => {
                    let lets = format!("lets {} send {category} alerts", poster.unit);
                    prop_assert!(text.contains(&lets), "{}", text);
                }
            }
        }

        // Who hears it.
        let route = route_follow_up(&now, &poster.unit, kind, &thread, &told);
        let closing = kind != Kind::Update;
        let permitted = v2.permitted(sender_i, category);
        let key = |u: &UnitRef| units.iter().copied().find(|x| unit_ref(*x) == *u).unwrap();
        for d in &route.disclosures {
            prop_assert!(recipients.contains(&d.recipient), "never a unit that never received the original");
            prop_assert!(d.recipient != poster.unit, "never the poster's own unit");
            match permitted.get(&key(&d.recipient)) {
                Some((rules, fields)) => {
                    prop_assert_eq!(&d.rules, rules, "the rules in force");
                    prop_assert_eq!(d.fields, *fields, "the fields in force");
                    prop_assert!(!d.legal_bases.iter().any(|b| b == CLOSING_NOTICE));
                }
                None => {
                    prop_assert!(closing, "only a closing message goes beyond the rules in force");
                    let o = original.iter().find(|o| o.recipient == d.recipient).unwrap();
                    prop_assert_eq!(d.fields, FieldSet::EMPTY, "a closing notice carries no field");
                    prop_assert_eq!(&d.legal_bases, &vec![CLOSING_NOTICE.to_owned()]);
                    prop_assert_eq!(&d.rules, &o.rules, "under the original disclosure's rules");
                }
            }
        }
        for w in &route.withheld {
            prop_assert!(!closing, "a closing message is never withheld");
            prop_assert!(recipients.contains(&w.why.recipient));
            prop_assert!(!permitted.contains_key(&key(&w.why.recipient)));
            let text = w.to_string();
            prop_assert!(text.contains(&format!("permits {sender} to send {category} alerts to {} any more", w.why.recipient)), "{}", text);
            prop_assert!(text.contains("agreement prop v2"));
        }
        // Everyone told of the original but the poster is either sent it or withheld, in order.
        let mut all: Vec<&UnitRef> = route.disclosures.iter().map(|d| &d.recipient).collect();
        all.extend(route.withheld.iter().map(|w| &w.why.recipient));
        all.sort();
        let mut want: Vec<&UnitRef> = recipients.iter().filter(|u| **u != poster.unit).collect();
        want.sort();
        prop_assert_eq!(all, want);
    }

    #[test]
    fn a_delivery_never_carries_more_than_its_rules_allow_now_nor_than_was_disclosed(
        (v1, v2) in amended_strategy(),
        sender_pick in any::<prop::sample::Index>(),
        recipient_pick in any::<prop::sample::Index>(),
        category in prop::sample::select(Category::ALL.to_vec()),
        kind in prop::sample::select(Kind::ALL.to_vec()),
        at_post in prop::sample::subsequence(FieldPath::ALL.to_vec(), 0..=FieldPath::ALL.len()),
        notice in any::<bool>(),
        expires in 0i64..100,
        at in 0i64..100,
    ) {
        let _ = v1;
        let now = v2.parse_as(2);
        let units = v2.all_units();
        let sender_i = units[sender_pick.index(units.len())];
        let recipient_i = units[recipient_pick.index(units.len())];
        let (sender, recipient) = (unit_ref(sender_i), unit_ref(recipient_i));
        let basis = [if notice { CLOSING_NOTICE.to_owned() } else { "L0".to_owned() }];
        let at_post = field_set(&at_post);
        let m = Waiting {
            kind, category, sender_unit: &sender, recipient: &recipient,
            legal_bases: &basis, fields: at_post, expires_at: Timestamp(expires),
        };
        let permitted = v2.permitted(sender_i, category);
        match recheck_delivery(&now, &m, Timestamp(at)) {
            Err(NotDelivered::Expired) => prop_assert!(at >= expires),
            _ if at >= expires => prop_assert!(false, "an expired message is never delivered"),
            Ok(Delivery::ClosingNotice) => {
                prop_assert!(notice && matches!(kind, Kind::Located | Kind::Cancel));
            }
            Ok(Delivery::Content { fields, rules }) => {
                prop_assert!(!(notice && matches!(kind, Kind::Located | Kind::Cancel)));
                let (want_rules, allowed) = &permitted[&recipient_i];
                prop_assert_eq!(&rules, want_rules);
                prop_assert_eq!(fields, at_post.intersection(*allowed));
                prop_assert!(fields.iter().all(|f| allowed.contains(f) && at_post.contains(f)),
                    "never a field its rules do not allow now, nor one not disclosed at posting");
            }
            Err(NotDelivered::NoLongerPermitted(why)) => {
                prop_assert!(!permitted.contains_key(&recipient_i));
                prop_assert_eq!(&why.recipient, &recipient);
                let text = why.to_string();
                prop_assert_eq!(text, format!("no rule of agreement prop v2 permits {sender} to send {category} alerts to {recipient} any more"));
            }
        }
    }

    #[test]
    fn a_closing_notice_carries_no_content_no_note_and_two_steps_of_the_history(
        steps in prop::collection::vec((prop::sample::select(Kind::ALL.to_vec()), 2u64..6), 0..6),
        this in 2u64..6,
        kind in prop::sample::select(vec![Kind::Located, Kind::Cancel]),
    ) {
        let original = alert_id(1);
        let mut history = vec![HistoryItem { kind: Some(Kind::Alert), id: original, at: Timestamp(0), note: Some("n".into()) }];
        history.extend(steps.iter().map(|(k, n)| HistoryItem {
            kind: Some(*k), id: alert_id(*n), at: Timestamp(*n as i64), note: Some(format!("note {n}")),
        }));
        let envelope = super::tests::envelope(kind, alert_id(this), original);
        let d = closing_notice(envelope.clone(), vec!["r0".into()], 3, AlertState::Cancelled, history.clone());
        prop_assert_eq!(&d.envelope, &envelope);
        prop_assert_eq!(&d.content, &Content::default());
        prop_assert_eq!(d.fields, FieldSet::EMPTY);
        prop_assert!(d.note.is_none());
        prop_assert!(d.history.iter().all(|h| h.note.is_none()));
        let want: Vec<(Option<Kind>, AlertId)> = history
            .iter()
            .filter(|h| h.kind == Some(Kind::Alert) || h.id == alert_id(this))
            .map(|h| (h.kind, h.id))
            .collect();
        prop_assert_eq!(d.history.iter().map(|h| (h.kind, h.id)).collect::<Vec<_>>(), want);
    }

    #[test]
    fn an_alert_and_its_status_are_seen_by_its_sender_recipients_and_party_only(
        g in agreement_strategy(),
        sender_pick in any::<prop::sample::Index>(),
        viewer_pick in any::<prop::sample::Index>(),
        category in prop::sample::select(Category::ALL.to_vec()),
    ) {
        let a = g.parse_as(1);
        let units = g.all_units();
        let sender = unit_ref(units[sender_pick.index(units.len())]);
        let viewer = unit_ref(units[viewer_pick.index(units.len())]);
        let recipients: Vec<UnitRef> = route_alert(&a, &sender, category, &[])
            .map(|ds| ds.into_iter().map(|d| d.recipient).collect())
            .unwrap_or_default();
        let id = alert_id(2);
        let view = alert_view(&viewer, id, &sender, recipients.iter());
        let want = if viewer == sender {
            Ok(AlertView::Sender)
        } else if recipients.contains(&viewer) {
            Ok(AlertView::Recipient)
        } else if viewer.party == sender.party {
            Ok(AlertView::OwnerParty)
        } else {
            Err(NotVisible { alert: id, unit: viewer.clone() })
        };
        prop_assert_eq!(&view, &want);
        if let Err(e) = view {
            prop_assert_eq!(e.to_string(), format!("alert {id} is not visible to {viewer}"));
        }
        let status = status_access(&viewer, id, &sender);
        prop_assert_eq!(status.is_ok(), viewer.party == sender.party, "status for the sender's party only");
        if let Err(e) = status {
            prop_assert_eq!(e.to_string(), format!("alert {id} is not an alert of {viewer}'s party"));
        }
    }

    #[test]
    fn the_audit_scope_holds_another_partys_entries_only_under_a_full_right(
        audited in audited_strategy(),
        asker_pick in any::<prop::sample::Index>(),
        from_pick in any::<prop::sample::Index>(),
        to_pick in any::<prop::sample::Index>(),
        request in prop::sample::select(vec![AuditRequest::Entries, AuditRequest::InclusionProof, AuditRequest::ConsistencyProof]),
    ) {
        let text = audited_toml(&audited);
        let a = Agreement::parse(&text, "prop.toml").unwrap();
        let (g, full, party) = &audited;
        let units = g.all_units();
        let pick = |i: prop::sample::Index| units[i.index(units.len())];
        let asker = pick(asker_pick);
        let scope = audit_scope(&a, &principal(asker), request);
        let want = if full.contains(&asker) {
            Ok(AuditScope::Full)
        } else if party.contains(&asker) {
            Ok(AuditScope::Party(party_code(asker.0)))
        } else {
            Err(AuditDenied { principal: principal(asker), request })
        };
        prop_assert_eq!(&scope, &want);
        prop_assert_eq!(audit_right(&a, &unit_ref(asker)), want.clone().ok());
        let Ok(scope) = scope else {
            let text = scope.unwrap_err().to_string();
            prop_assert_eq!(text, format!("{} asked for {request} but {} has no audit right in the agreement", principal(asker), unit_ref(asker)));
            return Ok(());
        };
        let (from, to) = (pick(from_pick), pick(to_pick));
        let event = Event::Disclosed {
            alert: alert_id(3),
            sender: principal(from),
            recipient: unit_ref(to),
            category: Category::Runaway,
            status: Status::Actual,
            rules: vec!["r0".into()],
            legal_bases: vec!["L0".into()],
            fields: FieldSet::all(),
        };
        let own = asker.0 == from.0 || asker.0 == to.0;
        prop_assert_eq!(scope.admits(&event), scope == AuditScope::Full || own,
            "another party's entry only under a full right");
        prop_assert_eq!(inclusion_access(&scope, 9, Some(&event)).is_ok(), scope.admits(&event));
        prop_assert_eq!(scope.proofs_required(), scope != AuditScope::Full);
    }

    #[test]
    fn every_decision_is_the_same_after_reserializing_the_agreement(
        audited in audited_strategy(),
        to in prop::collection::vec(named_strategy(), 0..3),
    ) {
        let a = Agreement::parse(&audited_toml(&audited), "prop.toml").unwrap();
        let text = reserialize(&a);
        let b = Agreement::parse(&text, "again.toml")
            .unwrap_or_else(|e| panic!("the agreement written again is refused: {e}\n{text}"));
        // The same agreement, but for the file's hash and the rules' lines.
        let mut same = b.clone();
        same.sha256 = a.sha256;
        for (r, was) in same.rules.iter_mut().zip(&a.rules) {
            r.line = was.line;
        }
        prop_assert_eq!(&same, &a, "{}", text);
        let named: Vec<Selector> = to.iter().map(|s| selector(*s)).collect();
        for sender in a.units() {
            prop_assert_eq!(audit_right(&a, &sender), audit_right(&b, &sender));
            prop_assert_eq!(rules_sending_from(&a, &sender), rules_sending_from(&b, &sender));
            prop_assert_eq!(rules_received_by(&a, &sender), rules_received_by(&b, &sender));
            for category in Category::ALL {
                prop_assert_eq!(may_send(&a, &sender, *category), may_send(&b, &sender, *category));
                prop_assert_eq!(
                    route_alert(&a, &sender, *category, &named),
                    route_alert(&b, &sender, *category, &named)
                );
                for recipient in a.units() {
                    prop_assert_eq!(
                        permits(&a, &sender, &recipient, *category),
                        permits(&b, &sender, &recipient, *category)
                    );
                }
            }
        }
    }
}

/// The generators of the other decisions are not vacuous: over 1000 samples, follow-ups
/// are sent, withheld and sent as closing notices, and refused for each reason;
/// deliveries end each way; audit rights of each kind are met.
#[test]
fn the_generated_cases_cover_every_outcome_of_every_decision() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (
        amended_strategy(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(Category::ALL.to_vec()),
        follow_up_kind(),
    );
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..1000 {
        let ((v1, v2), pick, other, category, kind) =
            strategy.new_tree(&mut runner).unwrap().current();
        let (a, now) = (v1.parse_as(1), v2.parse_as(2));
        let units = v1.all_units();
        let sender = unit_ref(units[pick.index(units.len())]);
        let poster = principal(units[other.index(units.len())]);
        let Ok(original) = route_alert(&a, &sender, category, &[]) else {
            continue;
        };
        let recipients: Vec<UnitRef> = original.iter().map(|d| d.recipient.clone()).collect();
        let told: Vec<Told> = original
            .iter()
            .map(|d| Told {
                unit: &d.recipient,
                rules: &d.rules,
                retention_ms: d.retention_ms,
            })
            .collect();
        let thread = Thread {
            alert: alert_id(1),
            sender_unit: &sender,
            category,
            recipients: &recipients,
        };
        *seen
            .entry(
                match may_follow_up(&now, &poster, kind, &thread).map_err(|e| *e) {
                    Ok(()) => "follow-up permitted",
                    Err(FollowUpRefusal::NotOwner { .. }) => "follow-up refused: not owner",
                    Err(FollowUpRefusal::MayNotSend { .. }) => "follow-up refused: may not send",
                },
            )
            .or_default() += 1;
        let route = route_follow_up(&now, &sender, kind, &thread, &told);
        for d in &route.disclosures {
            let notice = d.legal_bases.iter().any(|b| b == CLOSING_NOTICE);
            *seen
                .entry(if notice {
                    "closing notice"
                } else {
                    "follow-up sent"
                })
                .or_default() += 1;
            let m = Waiting {
                kind: Kind::Alert,
                category,
                sender_unit: &sender,
                recipient: &d.recipient,
                legal_bases: &[],
                fields: FieldSet::all(),
                expires_at: Timestamp(10),
            };
            *seen
                .entry(match recheck_delivery(&now, &m, Timestamp(5)) {
                    Ok(Delivery::Content { fields, .. }) if fields.is_all() => "delivered whole",
                    Ok(_) => "delivered narrowed",
                    Err(_) => "delivery withheld",
                })
                .or_default() += 1;
        }
        *seen.entry("follow-up withheld").or_default() += usize::from(!route.withheld.is_empty());
    }
    let mut runner = TestRunner::deterministic();
    for _ in 0..1000 {
        let audited = audited_strategy().new_tree(&mut runner).unwrap().current();
        let a = Agreement::parse(&audited_toml(&audited), "prop.toml").unwrap();
        for u in a.units() {
            *seen
                .entry(match audit_right(&a, &u) {
                    Some(AuditScope::Full) => "audit: full",
                    Some(AuditScope::Party(_)) => "audit: party",
                    None => "audit: none",
                })
                .or_default() += 1;
        }
    }
    for what in [
        "follow-up permitted",
        "follow-up refused: not owner",
        "follow-up refused: may not send",
        "closing notice",
        "follow-up sent",
        "follow-up withheld",
        "delivered whole",
        "delivered narrowed",
        "delivery withheld",
        "audit: full",
        "audit: party",
        "audit: none",
    ] {
        let n = seen.get(what).copied().unwrap_or(0);
        assert!(n >= 30, "only {n} cases: {what} ({seen:?})");
    }
}
