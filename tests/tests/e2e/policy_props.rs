//! Routing and redaction as properties (SPEC §4, issue 5): for random valid agreements
//! (random parties, units, rules, categories, field lists), random senders, categories and
//! explicit `to` lists, [`Agreement::route`] agrees with a direct reading of the rules:
//!
//! - no unit outside the rules ever appears among the recipients, and the sender's own unit
//!   never does;
//! - each recipient gets exactly the union of the fields of its matching rules, and the
//!   rules listed are exactly those, in file order;
//! - explicit recipients: each named one must be permitted, otherwise the whole post is
//!   refused (no recipient at all), naming the first one at fault;
//!
//! and [`Content::redact`] never leaves a field outside the kept set, keeps every kept one
//! as it was. No network: the library is called directly, on many cases.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeMap;

use filet_proto::agreement::{Agreement, Refusal};
use filet_proto::alert::{Geo, LastSeen, Subject};
use filet_proto::{Category, Content, FieldPath, FieldSet, Selector, Timestamp, UnitRef};
use proptest::prelude::*;

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

fn agreement_strategy() -> impl Strategy<Value = GenAgreement> {
    prop::collection::vec(1..4usize, 1..5).prop_flat_map(|units| {
        let rule = (
            prop::collection::vec(sel_strategy(units.clone()), 1..4),
            prop::collection::vec(sel_strategy(units.clone()), 1..4),
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
        (Just(units), prop::collection::vec(rule, 0..7)).prop_map(|(units, rules)| GenAgreement {
            units,
            rules: rules.into_iter().flatten().collect(),
        })
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

        let routed = a.route(&unit_ref(sender), category, &named);

        let known = |s: Sel| match s {
            Sel::Party(p) => p < g.units.len(),
            Sel::Unit(p, u) => p < g.units.len() && u < g.units[p],
        };
        // What a direct reading of the rules expects.
        let mut expected: BTreeMap<(usize, usize), (Vec<String>, FieldSet)> = BTreeMap::new();
        let mut first_fault: Option<Refusal> = None;
        if to.is_empty() {
            expected = permitted.clone();
            if expected.is_empty() {
                first_fault = Some(Refusal::NoRecipient {
                    agreement: "prop".into(),
                    sender: unit_ref(sender),
                    category,
                });
            }
        } else {
            for s in &to {
                if !known(*s) {
                    first_fault = Some(Refusal::UnknownRecipient {
                        agreement: "prop".into(),
                        recipient: selector(*s).to_string(),
                    });
                    break;
                }
                let hits: Vec<_> = permitted.iter().filter(|(u, _)| matches(*s, **u)).collect();
                if hits.is_empty() {
                    first_fault = Some(Refusal::NotPermitted {
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
                    // permits() agrees with route().
                    let p = a.permits(&unit_ref(sender), &d.recipient, category).unwrap();
                    prop_assert_eq!(p.fields, d.fields);
                }
            }
        }
        // A unit no rule permits is never permitted, whatever is named.
        for u in &units {
            if !permitted.contains_key(u) {
                prop_assert!(a.permits(&unit_ref(sender), &unit_ref(*u), category).is_none());
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
        match a.route(&sender, category, &named) {
            Ok(ds) => {
                several += usize::from(ds.len() > 1);
                partial += usize::from(ds.iter().any(|d| !d.fields.is_all()));
            }
            Err(Refusal::NoRecipient { .. }) => no_recipient += 1,
            Err(Refusal::NotPermitted { .. }) => not_permitted += 1,
            Err(Refusal::UnknownRecipient { .. }) => unknown += 1,
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
