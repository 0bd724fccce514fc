//! TOML type errors in the product's words: the field path, what is expected and what was
//! found (`subject.age: expected a whole number from 0 to 20, got -1`), instead of the
//! library's (`invalid value: integer -1, expected u8`).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a path: a key, or a position in an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

type Child<'a, 'i> = (Step, &'a Spanned<DeValue<'i>>);

fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<Child<'a, 'i>> {
    t.iter()
        .map(|(k, v)| (Step::Key(k.get_ref().to_string()), v))
        .collect()
}

/// The keys and positions leading to the innermost value whose span holds `at`, each with
/// the span of its value. Every table is searched: a table opened by a `[header]` has a
/// span that does not cover its keys.
fn path_at(table: &DeTable<'_>, at: Range<usize>) -> Vec<(Step, Range<usize>)> {
    let mut path = Vec::new();
    find(entries(table), &at, &mut path);
    path
}

fn find(
    children: Vec<Child<'_, '_>>,
    at: &Range<usize>,
    path: &mut Vec<(Step, Range<usize>)>,
) -> bool {
    for (step, v) in children {
        path.push((step, v.span()));
        let deeper = match v.get_ref() {
            DeValue::Table(t) => find(entries(t), at, path),
            DeValue::Array(a) => find(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (Step::Index(i), v))
                    .collect(),
                at,
                path,
            ),
            _ => false,
        };
        if deeper || covers(v.span(), at) {
            return true;
        }
        path.pop();
    }
    false
}

fn covers(outer: Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// The path for looking up what a place expects: keys, and `[]` for a position in an
/// array (`["subject", "age"]`, `["to", "[]"]`, `["rules", "[]", "fields"]`).
fn keys(path: &[(Step, Range<usize>)]) -> Vec<&str> {
    path.iter()
        .map(|(s, _)| match s {
            Step::Key(k) => k.as_str(),
            Step::Index(_) => "[]",
        })
        .collect()
}

fn dotted(path: &[(Step, Range<usize>)]) -> String {
    let mut s = String::new();
    for (step, _) in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A type error at a known place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeError {
    /// The dotted path, with positions: `subject.age`, `to[1]`, `rules[0].fields`.
    pub path: String,
    /// `expected …, got …`.
    pub problem: String,
    /// 1-based line of the value.
    pub line: usize,
}

/// The error in the product's words when it is about the type or value of a known place,
/// else `None` (the caller keeps the library's message). `expected` says, for a path (see
/// [`keys`]), what that place holds; the innermost place it knows is used.
pub(crate) fn type_error(
    text: &str,
    err: &toml::de::Error,
    expected: impl Fn(&[&str]) -> Option<String>,
) -> Option<TypeError> {
    let message = err.message();
    if ["unknown field", "missing field", "duplicate"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        return None;
    }
    let span = err.span()?;
    let doc = DeTable::parse(text).ok()?;
    let mut path = path_at(doc.get_ref(), span);
    while !path.is_empty() {
        if let Some(want) = expected(&keys(&path)) {
            let (_, vspan) = path.last()?;
            let got = text.get(vspan.clone()).unwrap_or("").trim();
            let got = match got.char_indices().nth(40) {
                Some((i, _)) => format!("{}…", &got[..i]),
                None => got.to_owned(),
            };
            let line = text
                .get(..vspan.start)
                .map_or(0, |b| b.matches('\n').count())
                + 1;
            return Some(TypeError {
                path: dotted(&path),
                problem: format!("expected {want}, got {got}"),
                line,
            });
        }
        path.pop();
    }
    None
}

/// `one of a, b, c` for an enumeration's values.
pub(crate) fn one_of(values: &[&str]) -> String {
    format!("one of {}", values.join(", "))
}
