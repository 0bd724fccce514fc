//! The alert (requirements §5): its enumerations, content fields, field paths, the draft a node
//! posts, the alert file format, validation with field-path errors, and redaction.
//!
//! Data minimization is the point: every text field has a hard limit in characters (not
//! bytes), there are no attachments and no free-form maps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::id::AlertId;
use crate::principal::{Principal, Selector};
use crate::time::{Timestamp, DAY_MS, HOUR_MS};

/// Longest `subject.reference`, in characters.
pub const MAX_REFERENCE: usize = 32;
/// Longest `subject.given_name`, in characters.
pub const MAX_GIVEN_NAME: usize = 40;
/// Highest `subject.age`, in years.
pub const MAX_AGE: u8 = 20;
/// Longest `subject.description`, in characters.
pub const MAX_DESCRIPTION: usize = 280;
/// Longest `last_seen.place`, in characters.
pub const MAX_PLACE: usize = 120;
/// Longest `instructions`, in characters.
pub const MAX_INSTRUCTIONS: usize = 280;
/// Longest `contact`, in characters.
pub const MAX_CONTACT: usize = 120;
/// Longest `note` (free text on any message: the reason of a cancel, the note of a
/// located), in characters.
pub const MAX_NOTE: usize = 280;
/// Most explicit recipients (`to`) in one post.
pub const MAX_RECIPIENTS: usize = 64;
/// Default lifetime of an alert: 72 hours after the relay receives it, in milliseconds.
pub const DEFAULT_EXPIRY_MS: i64 = 72 * HOUR_MS;
/// Longest lifetime of an alert: 30 days, in milliseconds.
pub const MAX_EXPIRY_MS: i64 = 30 * DAY_MS;
/// Earliest `last_seen.at`: 2000-01-01T00:00:00Z, in milliseconds since the epoch. Earlier
/// is a mistake (and far enough back, a time no RFC 3339 text can write). A fixed floor, not
/// one relative to the clock, so that a stored alert or an example file never turns invalid
/// with time.
pub const EARLIEST_LAST_SEEN_MS: i64 = 946_684_800_000;
/// Tolerated clock skew for `last_seen.at` "not in the future", in milliseconds (5 minutes).
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $var),+
        }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The value as written in files and on the command line.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$var),)+
                    _ => Err(format!(
                        "{:?} is not one of {}",
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// What the alert is about.
    Category {
        /// A youth missing and at risk (fugue).
        Runaway = "runaway",
        /// A youth seen.
        Sighting = "sighting",
        /// Signs of recruitment or exploitation.
        ExploitationRisk = "exploitation-risk",
    }
);

text_enum!(
    /// What the message does to the alert's life.
    Kind {
        /// A new alert.
        Alert = "alert",
        /// Refines an active alert of the sender's party.
        Update = "update",
        /// The youth is found safe; closes the alert.
        Located = "located",
        /// The alert is withdrawn; closes it.
        Cancel = "cancel",
    }
);

text_enum!(
    /// Where an alert is in its life, as its recipients see it.
    AlertState {
        /// Posted, not yet refined or closed.
        Active = "active",
        /// Refined by at least one update.
        Updated = "updated",
        /// The youth is found safe: closed.
        Located = "located",
        /// Withdrawn: closed.
        Cancelled = "cancelled",
        /// Past its expiry time: closed, no longer delivered.
        Expired = "expired",
    }
);

impl AlertState {
    /// Whether the alert is closed (located, cancelled or expired).
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            AlertState::Located | AlertState::Cancelled | AlertState::Expired
        )
    }
}

/// One step of an alert's life: the original, each update, the closing message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// What the message did (`alert`, `update`, `located`, `cancel`), or `None` for expiry.
    pub kind: Option<Kind>,
    /// The message's id (the alert's own id for the original and for expiry).
    pub id: AlertId,
    /// When the relay received it (or when the alert expired).
    pub at: Timestamp,
    /// The note of the message (content: present only where the recipient's rules allow
    /// `note`).
    pub note: Option<String>,
}

text_enum!(
    /// Whether the alert is real. `exercise` and `test` are shown as such everywhere.
    Status {
        /// A real alert.
        Actual = "actual",
        /// A training exercise.
        Exercise = "exercise",
        /// A technical test.
        Test = "test",
    }
);

text_enum!(
    /// How much danger the youth is in.
    Risk {
        /// Extraordinary threat to life or safety.
        Extreme = "extreme",
        /// Significant threat.
        Severe = "severe",
        /// Possible threat.
        Moderate = "moderate",
        /// Minimal known threat.
        Minor = "minor",
    }
);

text_enum!(
    /// The language of the alert's text (BCP 47 tag).
    Language {
        /// French (Canada), the default.
        FrCa = "fr-CA",
        /// English (Canada).
        EnCa = "en-CA",
    }
);

#[allow(clippy::derivable_impls)] // the enum is generated by text_enum!, which cannot mark a default
impl Default for Language {
    fn default() -> Self {
        Language::FrCa
    }
}

text_enum!(
    /// A content field of an alert, as the agreement's `fields` and the audit log name it.
    FieldPath {
        /// `subject.reference`: the originating file number.
        SubjectReference = "subject.reference",
        /// `subject.given_name`.
        SubjectGivenName = "subject.given_name",
        /// `subject.age`.
        SubjectAge = "subject.age",
        /// `subject.description`.
        SubjectDescription = "subject.description",
        /// `last_seen.at`.
        LastSeenAt = "last_seen.at",
        /// `last_seen.place`.
        LastSeenPlace = "last_seen.place",
        /// `last_seen.geo`.
        LastSeenGeo = "last_seen.geo",
        /// `instructions`.
        Instructions = "instructions",
        /// `contact`.
        Contact = "contact",
        /// `note`: the free text of a message (the reason of a cancel, the note of a
        /// located, or a note on an alert or update). Content like any other field.
        Note = "note",
    }
);

impl FieldPath {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of content fields. On the wire a `u16` bit set; in JSON and TOML a list of paths.
///
/// In an agreement, `"all"`, a path, or a group wildcard `subject.*` / `last_seen.*` may be
/// used (see [`FieldSet::parse_pattern`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldSet(u16);

impl FieldSet {
    /// No field.
    pub const EMPTY: FieldSet = FieldSet(0);

    /// Every field.
    pub fn all() -> Self {
        FieldPath::ALL.iter().fold(Self::EMPTY, |s, &f| s.with(f))
    }

    /// This set plus `f`.
    pub fn with(self, f: FieldPath) -> Self {
        Self(self.0 | f.bit())
    }

    /// Whether `f` is in the set.
    pub fn contains(self, f: FieldPath) -> bool {
        self.0 & f.bit() != 0
    }

    /// Fields in either set.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Fields in both sets.
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every field is in the set.
    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    /// The fields, in [`FieldPath::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = FieldPath> {
        FieldPath::ALL
            .iter()
            .copied()
            .filter(move |f| self.contains(*f))
    }

    /// The paths, in order, e.g. `["subject.age", "contact"]`.
    pub fn paths(self) -> Vec<&'static str> {
        self.iter().map(|f| f.as_str()).collect()
    }

    /// Reads one pattern of an agreement's `fields`: `all`, `subject.*`, `last_seen.*`, or a
    /// field path.
    ///
    /// # Errors
    /// A message naming the unknown pattern and the accepted ones.
    pub fn parse_pattern(p: &str) -> Result<Self, String> {
        match p {
            "all" => Ok(Self::all()),
            "subject.*" | "last_seen.*" => {
                let prefix = &p[..p.len() - 1];
                Ok(FieldPath::ALL
                    .iter()
                    .filter(|f| f.as_str().starts_with(prefix))
                    .fold(Self::EMPTY, |s, &f| s.with(f)))
            }
            _ => p
                .parse::<FieldPath>()
                .map(|f| Self::EMPTY.with(f))
                .map_err(|_| {
                    format!(
                        "unknown field path {p:?} (known: all, subject.*, last_seen.*, {})",
                        FieldPath::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
        }
    }
}

impl fmt::Display for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("all")
        } else if self.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.paths().join(", "))
        }
    }
}

impl Serialize for FieldSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.paths().serialize(s)
        } else {
            s.serialize_u16(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for FieldSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let v = Vec::<String>::deserialize(d)?;
            v.iter().try_fold(Self::EMPTY, |acc, p| {
                Self::parse_pattern(p)
                    .map(|s| acc.union(s))
                    .map_err(serde::de::Error::custom)
            })
        } else {
            let bits = u16::deserialize(d)?;
            if bits & !Self::all().0 != 0 {
                return Err(serde::de::Error::custom("field set has unknown bits"));
            }
            Ok(Self(bits))
        }
    }
}

/// A position in WGS 84 degrees: `[latitude, longitude]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geo(pub f64, pub f64);

/// Who the alert is about. Every field is optional here; [`AlertDraft::validate`] requires
/// `reference` on a new alert, and redaction may leave any of them out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The originating file number, 1–32 characters of `[A-Za-z0-9._/-]`.
    pub reference: Option<String>,
    /// Given name, ≤ 40 characters.
    pub given_name: Option<String>,
    /// Age in years, 0–20.
    pub age: Option<u8>,
    /// Height, hair, clothing: ≤ 280 characters.
    pub description: Option<String>,
}

/// Where and when the youth was last seen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSeen {
    /// When (UTC), not in the future and not before 2000-01-01.
    pub at: Option<Timestamp>,
    /// Where, ≤ 120 characters.
    pub place: Option<String>,
    /// Where, as a position.
    pub geo: Option<Geo>,
}

/// The content of an alert: everything an agreement's `fields` may filter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Content {
    /// Who.
    pub subject: Subject,
    /// Where and when.
    pub last_seen: LastSeen,
    /// What to do (and not do), ≤ 280 characters.
    pub instructions: Option<String>,
    /// Whom to call, ≤ 120 characters.
    pub contact: Option<String>,
}

impl Content {
    /// A copy holding only the fields in `keep`; the others are absent (`None`), not blank.
    pub fn redact(&self, keep: FieldSet) -> Content {
        fn k<T: Clone>(keep: FieldSet, f: FieldPath, v: &Option<T>) -> Option<T> {
            if keep.contains(f) {
                v.clone()
            } else {
                None
            }
        }
        use FieldPath::*;
        Content {
            subject: Subject {
                reference: k(keep, SubjectReference, &self.subject.reference),
                given_name: k(keep, SubjectGivenName, &self.subject.given_name),
                age: k(keep, SubjectAge, &self.subject.age),
                description: k(keep, SubjectDescription, &self.subject.description),
            },
            last_seen: LastSeen {
                at: k(keep, LastSeenAt, &self.last_seen.at),
                place: k(keep, LastSeenPlace, &self.last_seen.place),
                geo: k(keep, LastSeenGeo, &self.last_seen.geo),
            },
            instructions: k(keep, Instructions, &self.instructions),
            contact: k(keep, Contact, &self.contact),
        }
    }

    /// The fields that hold a value.
    pub fn present(&self) -> FieldSet {
        use FieldPath::*;
        let pairs = [
            (SubjectReference, self.subject.reference.is_some()),
            (SubjectGivenName, self.subject.given_name.is_some()),
            (SubjectAge, self.subject.age.is_some()),
            (SubjectDescription, self.subject.description.is_some()),
            (LastSeenAt, self.last_seen.at.is_some()),
            (LastSeenPlace, self.last_seen.place.is_some()),
            (LastSeenGeo, self.last_seen.geo.is_some()),
            (Instructions, self.instructions.is_some()),
            (Contact, self.contact.is_some()),
        ];
        pairs
            .iter()
            .filter(|(_, p)| *p)
            .fold(FieldSet::EMPTY, |s, (f, _)| s.with(*f))
    }

    /// The content as JSON, nested as in the alert file, absent fields left out (an empty
    /// `subject` or `last_seen` is left out too). The keys are added to `out`.
    pub fn write_json(&self, out: &mut Map<String, Value>) {
        fn put<T: Serialize>(m: &mut Map<String, Value>, k: &str, v: &Option<T>) {
            if let Some(v) = v {
                if let Ok(v) = serde_json::to_value(v) {
                    m.insert(k.to_owned(), v);
                }
            }
        }
        let mut subject = Map::new();
        put(&mut subject, "reference", &self.subject.reference);
        put(&mut subject, "given_name", &self.subject.given_name);
        put(&mut subject, "age", &self.subject.age);
        put(&mut subject, "description", &self.subject.description);
        let mut last_seen = Map::new();
        put(&mut last_seen, "at", &self.last_seen.at);
        put(&mut last_seen, "place", &self.last_seen.place);
        put(&mut last_seen, "geo", &self.last_seen.geo);
        if !subject.is_empty() {
            out.insert("subject".into(), Value::Object(subject));
        }
        if !last_seen.is_empty() {
            out.insert("last_seen".into(), Value::Object(last_seen));
        }
        put(out, "instructions", &self.instructions);
        put(out, "contact", &self.contact);
    }
}

/// What a node posts: a new alert, or an update, `located` or `cancel` of an alert of its
/// own party. The relay assigns the id, the sender and the received time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDraft {
    /// What the message does.
    pub kind: Kind,
    /// For `update`, `located` and `cancel`: the alert it refers to.
    pub references: Option<AlertId>,
    /// What the alert is about.
    pub category: Category,
    /// Actual, exercise or test.
    pub status: Status,
    /// How much danger.
    pub risk: Risk,
    /// The language of the text.
    pub language: Language,
    /// When the alert stops being delivered; default 72 h after posting, at most 30 days.
    pub expires_at: Option<Timestamp>,
    /// The content.
    pub content: Content,
    /// Free text, ≤ 280 characters: the reason of a `cancel` (required), the note of a
    /// `located`, or a note on an alert or update. Disclosed only under rules allowing
    /// `note`.
    pub note: Option<String>,
    /// Explicit recipients; empty means every unit the agreement permits.
    pub to: Vec<Selector>,
}

/// One problem with one field of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field path, e.g. `subject.description`.
    pub path: String,
    /// What is wrong, e.g. `291 characters, the limit is 280`.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Every problem found in an alert, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct InvalidAlert {
    /// The problems, at least one.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Whether a character is refused in alert text: control characters (Unicode Cc), the
/// bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E–U+200F,
/// U+202A–U+202E, U+2066–U+2069) and the invisible ones (zero-width space and joiners
/// U+200B–U+200D, word joiner and invisible operators U+2060–U+2065, the byte order mark
/// U+FEFF): each can make a text, a name say, read differently from what it holds.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: &str, problem: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.to_owned(),
            problem: problem.into(),
        });
    }

    /// Trims, then checks characters and length. Returns the trimmed text (`None` if empty).
    fn text(
        &mut self,
        path: &str,
        v: &Option<String>,
        limit: usize,
        required: bool,
    ) -> Option<String> {
        let t = v.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let Some(t) = t else {
            if required {
                self.fail(path, "required");
            }
            return None;
        };
        if let Some((i, c)) = t.chars().enumerate().find(|(_, c)| is_forbidden_char(*c)) {
            self.fail(
                path,
                format!(
                    "character {} (U+{:04X}) is a control, bidirectional or invisible formatting character",
                    i + 1,
                    c as u32
                ),
            );
            return None;
        }
        let n = t.chars().count();
        if n > limit {
            self.fail(path, format!("{n} characters, the limit is {limit}"));
            return None;
        }
        Some(t.to_owned())
    }
}

impl AlertDraft {
    /// A new alert of `category` with everything else at its default, for building in code.
    pub fn new(category: Category, risk: Risk, reference: &str, contact: &str) -> Self {
        AlertDraft {
            kind: Kind::Alert,
            references: None,
            category,
            status: Status::Actual,
            risk,
            language: Language::FrCa,
            expires_at: None,
            content: Content {
                subject: Subject {
                    reference: Some(reference.to_owned()),
                    ..Subject::default()
                },
                contact: Some(contact.to_owned()),
                ..Content::default()
            },
            note: None,
            to: Vec::new(),
        }
    }

    /// Checks every limit of requirements §5 against the relay's clock `now`, and returns the
    /// normalized draft: text trimmed, `expires_at` filled in (72 h after `now` by default).
    ///
    /// A new alert (`kind = alert`) needs `subject.reference` and `contact` and no
    /// `references`; `update`, `located` and `cancel` need `references`; an `update` (which
    /// replaces the alert's content for its recipients) needs `subject.reference` and
    /// `contact` too, and `cancel` needs a `note` (the reason).
    ///
    /// # Errors
    /// [`InvalidAlert`] listing each field path and what is wrong with it, e.g.
    /// `subject.description: 291 characters, the limit is 280`.
    pub fn validate(&self, now: Timestamp) -> Result<AlertDraft, InvalidAlert> {
        let mut c = Checker { errors: Vec::new() };
        let whole_content = matches!(self.kind, Kind::Alert | Kind::Update);
        match (self.kind, self.references) {
            (Kind::Alert, Some(_)) => c.fail("references", "a new alert refers to no other alert"),
            (k, None) if k != Kind::Alert => c.fail("references", format!("required for kind {k}")),
            _ => {}
        }
        let s = &self.content.subject;
        let reference = c.text(
            "subject.reference",
            &s.reference,
            MAX_REFERENCE,
            whole_content,
        );
        if let Some(r) = &reference {
            if let Some(bad) = r
                .chars()
                .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '/' | '-')))
            {
                c.fail(
                    "subject.reference",
                    format!(
                        "character {bad:?} is not allowed (only A-Z, a-z, 0-9, '.', '_', '/', '-')"
                    ),
                );
            }
        }
        let given_name = c.text("subject.given_name", &s.given_name, MAX_GIVEN_NAME, false);
        if let Some(age) = s.age {
            if age > MAX_AGE {
                c.fail(
                    "subject.age",
                    format!("{age} years, the limit is {MAX_AGE}"),
                );
            }
        }
        let description = c.text(
            "subject.description",
            &s.description,
            MAX_DESCRIPTION,
            false,
        );
        let ls = &self.content.last_seen;
        if let Some(at) = ls.at {
            if at.0 > now.0.saturating_add(CLOCK_SKEW_MS) {
                c.fail(
                    "last_seen.at",
                    format!("{at} is in the future (relay time {now})"),
                );
            } else if at.0 < EARLIEST_LAST_SEEN_MS {
                c.fail(
                    "last_seen.at",
                    format!(
                        "{at} is before {}, the earliest accepted",
                        Timestamp(EARLIEST_LAST_SEEN_MS)
                    ),
                );
            }
        }
        let place = c.text("last_seen.place", &ls.place, MAX_PLACE, false);
        if let Some(Geo(lat, lon)) = ls.geo {
            if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
                c.fail(
                    "last_seen.geo",
                    format!("latitude {lat} is not within -90..90"),
                );
            }
            if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
                c.fail(
                    "last_seen.geo",
                    format!("longitude {lon} is not within -180..180"),
                );
            }
        }
        let instructions = c.text(
            "instructions",
            &self.content.instructions,
            MAX_INSTRUCTIONS,
            false,
        );
        let contact = c.text("contact", &self.content.contact, MAX_CONTACT, whole_content);
        let note = c.text("note", &self.note, MAX_NOTE, self.kind == Kind::Cancel);
        let expires_at = match self.expires_at {
            None => now.plus_ms(DEFAULT_EXPIRY_MS),
            Some(e) => {
                if e.0 <= now.0 {
                    c.fail(
                        "expires_at",
                        format!("{e} is not after the relay time {now}"),
                    );
                } else if e.0 > now.0 + MAX_EXPIRY_MS {
                    c.fail(
                        "expires_at",
                        format!("{e} is more than 30 days after the relay time {now}"),
                    );
                }
                e
            }
        };
        if self.to.len() > MAX_RECIPIENTS {
            c.fail(
                "to",
                format!(
                    "{} recipients, the limit is {MAX_RECIPIENTS}",
                    self.to.len()
                ),
            );
        }
        if !c.errors.is_empty() {
            return Err(InvalidAlert { errors: c.errors });
        }
        let mut to = self.to.clone();
        to.sort();
        to.dedup();
        Ok(AlertDraft {
            kind: self.kind,
            references: self.references,
            category: self.category,
            status: self.status,
            risk: self.risk,
            language: self.language,
            expires_at: Some(expires_at),
            content: Content {
                subject: Subject {
                    reference,
                    given_name,
                    age: s.age,
                    description,
                },
                last_seen: LastSeen {
                    at: ls.at,
                    place,
                    geo: ls.geo,
                },
                instructions,
                contact,
            },
            note,
            to,
        })
    }
}

/// An alert as a file holds it (TOML or JSON), the shape of `examples/alerts/*.toml`:
/// envelope keys at the top, then `[subject]` and `[last_seen]`. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    /// Default `alert`.
    pub kind: Option<Kind>,
    /// For `update`, `located`, `cancel`.
    pub references: Option<AlertId>,
    /// Required.
    pub category: Category,
    /// Default `actual`.
    pub status: Option<Status>,
    /// Required.
    pub risk: Risk,
    /// Default `fr-CA`.
    pub language: Option<Language>,
    /// Default 72 h after posting.
    pub expires_at: Option<Timestamp>,
    /// Whom to call.
    pub contact: Option<String>,
    /// What to do.
    pub instructions: Option<String>,
    /// Free text (the reason of a `cancel`); field `note` of the agreement.
    pub note: Option<String>,
    /// Explicit recipients (`PARTY` or `PARTY/UNIT`).
    pub to: Option<Vec<Selector>>,
    /// Who.
    pub subject: Option<Subject>,
    /// Where and when.
    pub last_seen: Option<LastSeen>,
}

impl AlertFile {
    /// Reads an alert file in TOML.
    ///
    /// # Errors
    /// The TOML parser's message, which names the line, column and key; an empty `to`
    /// list (leaving `to` out means every unit the agreement permits; an empty list would
    /// read as "nobody" to a person and as "everyone" to the relay).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: AlertFile =
            toml::from_str(text).map_err(|e| {
                match crate::toml_words::type_error(text, &e, alert_file_expects) {
                    Some(t) => format!("{}: {} (line {})", t.path, t.problem, t.line),
                    None => e.to_string(),
                }
            })?;
        if file.to.as_ref().is_some_and(Vec::is_empty) {
            return Err("to: an empty list; name the recipients (PARTY or PARTY/UNIT), or leave `to` out to send to every unit the agreement permits".into());
        }
        Ok(file)
    }

    /// The draft this file describes (not yet validated).
    pub fn into_draft(self) -> AlertDraft {
        AlertDraft {
            kind: self.kind.unwrap_or(Kind::Alert),
            references: self.references,
            category: self.category,
            status: self.status.unwrap_or(Status::Actual),
            risk: self.risk,
            language: self.language.unwrap_or_default(),
            expires_at: self.expires_at,
            content: Content {
                subject: self.subject.unwrap_or_default(),
                last_seen: self.last_seen.unwrap_or_default(),
                instructions: self.instructions,
                contact: self.contact,
            },
            note: self.note,
            to: self.to.unwrap_or_default(),
        }
    }
}

/// What each place of an alert file holds, in the product's words (for type errors).
fn alert_file_expects(keys: &[&str]) -> Option<String> {
    use crate::toml_words::one_of;
    let text = || "text in quotes".to_owned();
    let time = || "a date and time in UTC such as 2026-11-28T22:40:00Z".to_owned();
    Some(match keys {
        ["kind"] => one_of(&Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        ["category"] => one_of(&Category::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        ["status"] => one_of(&Status::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        ["risk"] => one_of(&Risk::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        ["language"] => one_of(&Language::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        ["references"] => "the id of an alert in quotes, as its receipt gives it".into(),
        ["expires_at"] | ["last_seen", "at"] => time(),
        ["contact"] | ["instructions"] | ["note"] | ["last_seen", "place"] => text(),
        ["subject", "reference" | "given_name" | "description"] => text(),
        ["subject", "age"] => format!("a whole number from 0 to {MAX_AGE}"),
        ["last_seen", "geo"] => {
            "[latitude, longitude] in degrees, such as [46.8123, -71.2345]".into()
        }
        ["to"] => "a list of recipients such as [\"DPJ\", \"SPVQ/IKAT\"]".into(),
        ["to", "[]"] => "a recipient in quotes, PARTY or PARTY/UNIT".into(),
        ["subject"] => "a table [subject]".into(),
        ["last_seen"] => "a table [last_seen]".into(),
        _ => return None,
    })
}

/// The part of an alert that every recipient gets whatever its fields (requirements §4): id, kind,
/// category, status, risk, sender, times, language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Relay-assigned id of this message.
    pub id: AlertId,
    /// What the message does.
    pub kind: Kind,
    /// For `update`, `located`, `cancel`: the alert it refers to.
    pub references: Option<AlertId>,
    /// What it is about.
    pub category: Category,
    /// Actual, exercise or test.
    pub status: Status,
    /// How much danger.
    pub risk: Risk,
    /// The language of the text.
    pub language: Language,
    /// The principal of the connection that posted it.
    pub sender: Principal,
    /// When the relay received it.
    pub received_at: Timestamp,
    /// When it stops being delivered.
    pub expires_at: Timestamp,
}

/// An alert as one recipient unit sees it: the envelope, the content reduced to the
/// fields its rules allow, and the rules that permitted the disclosure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disclosed {
    /// Always disclosed.
    pub envelope: Envelope,
    /// Only the allowed fields; the others are absent.
    pub content: Content,
    /// The message's note (content: present only where `fields` holds `note`).
    pub note: Option<String>,
    /// Ids of the rules that permitted this disclosure (at least one).
    pub rules: Vec<String>,
    /// The fields the rules allow (some may hold no value in this alert).
    pub fields: FieldSet,
    /// Position in the recipient unit's mailbox (increasing).
    pub seq: u64,
    /// The current state of the alert this message belongs to.
    pub state: AlertState,
    /// The alert's life so far, oldest first.
    pub history: Vec<HistoryItem>,
}

impl Disclosed {
    /// This disclosure reduced to `fields ∩ keep`: content fields outside it are removed,
    /// and so are the note and the note of every step of the history unless it holds
    /// `note`; `fields` becomes `fields ∩ keep`. The one place where a recipient's view is
    /// cut to its rules.
    pub fn narrowed(mut self, keep: FieldSet) -> Disclosed {
        let keep = self.fields.intersection(keep);
        self.content = self.content.redact(keep);
        if !keep.contains(FieldPath::Note) {
            self.note = None;
            for h in &mut self.history {
                h.note = None;
            }
        }
        self.fields = self.fields.intersection(keep);
        self
    }

    /// The JSON object `filet inbox --json` prints: `id`, `kind`, `category`, `status`,
    /// `risk`, `sender`, `rule` (the first permitting rule), `rules`, times, `language`,
    /// `references` and `note` when set, `state` and `history`, and the disclosed content nested as in the alert
    /// file with the left-out fields absent.
    pub fn to_json(&self) -> Value {
        let e = &self.envelope;
        let mut m = Map::new();
        m.insert("id".into(), Value::String(e.id.to_string()));
        m.insert("kind".into(), Value::String(e.kind.to_string()));
        m.insert("category".into(), Value::String(e.category.to_string()));
        m.insert("status".into(), Value::String(e.status.to_string()));
        m.insert("risk".into(), Value::String(e.risk.to_string()));
        m.insert("sender".into(), Value::String(e.sender.to_string()));
        if let Some(r) = self.rules.first() {
            m.insert("rule".into(), Value::String(r.clone()));
        }
        m.insert(
            "rules".into(),
            Value::Array(self.rules.iter().cloned().map(Value::String).collect()),
        );
        m.insert(
            "received_at".into(),
            Value::String(e.received_at.to_string()),
        );
        m.insert("expires_at".into(), Value::String(e.expires_at.to_string()));
        m.insert("language".into(), Value::String(e.language.to_string()));
        if let Some(r) = e.references {
            m.insert("references".into(), Value::String(r.to_string()));
        }
        if let Some(n) = &self.note {
            m.insert("note".into(), Value::String(n.clone()));
        }
        m.insert("state".into(), Value::String(self.state.to_string()));
        m.insert(
            "history".into(),
            Value::Array(
                self.history
                    .iter()
                    .map(|h| {
                        let mut o = Map::new();
                        o.insert(
                            "event".into(),
                            Value::String(
                                h.kind
                                    .map(|k| k.to_string())
                                    .unwrap_or_else(|| "expired".into()),
                            ),
                        );
                        o.insert("id".into(), Value::String(h.id.to_string()));
                        o.insert("at".into(), Value::String(h.at.to_string()));
                        if let Some(n) = &h.note {
                            o.insert("note".into(), Value::String(n.clone()));
                        }
                        Value::Object(o)
                    })
                    .collect(),
            ),
        );
        self.content.write_json(&mut m);
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_alert_file_with_an_empty_to_list_is_refused_naming_to() {
        let e = AlertFile::from_toml("category = \"runaway\"\nrisk = \"severe\"\nto = []\n")
            .unwrap_err();
        assert!(e.starts_with("to: an empty list;"), "{e}");
        let ok = AlertFile::from_toml("category = \"runaway\"\nrisk = \"severe\"\n").unwrap();
        assert_eq!(ok.to, None);
    }

    use super::*;

    const RUNAWAY: &str = include_str!("../../examples/alerts/runaway.toml");
    const TOO_LONG: &str = include_str!("../../examples/alerts/invalid-too-long.toml");

    fn now() -> Timestamp {
        "2026-11-29T03:00:00Z".parse().unwrap()
    }

    #[test]
    fn reads_the_example_runaway_alert() {
        let d = AlertFile::from_toml(RUNAWAY).unwrap().into_draft();
        let v = d.validate(now()).unwrap();
        assert_eq!(v.category, Category::Runaway);
        assert_eq!(v.risk, Risk::Severe);
        assert_eq!(
            v.content.subject.reference.as_deref(),
            Some("SPVQ-2026-04417")
        );
        assert_eq!(v.content.subject.given_name.as_deref(), Some("Maëlle"));
        assert_eq!(v.content.subject.age, Some(15));
        assert_eq!(v.content.last_seen.geo, Some(Geo(46.8123, -71.2345)));
        assert_eq!(v.expires_at, Some(now().plus_ms(72 * HOUR_MS)));
        // Every field but the note, which the file does not have.
        assert_eq!(v.content.present().with(FieldPath::Note), FieldSet::all());
    }

    #[test]
    fn refuses_the_too_long_example_naming_each_field() {
        let d = AlertFile::from_toml(TOO_LONG).unwrap().into_draft();
        let e = d.validate(now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subject.reference: character ' ' is not allowed (only A-Z, a-z, 0-9, '.', '_', '/', '-'); \
             subject.description: 291 characters, the limit is 280"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "418");
        d.content.subject.given_name = Some("é".repeat(40));
        assert!(d.validate(now()).is_ok());
        d.content.subject.given_name = Some("é".repeat(41));
        assert_eq!(
            d.validate(now()).unwrap_err().to_string(),
            "subject.given_name: 41 characters, the limit is 40"
        );
    }

    #[test]
    fn refuses_control_and_bidi_characters_and_trims() {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "  418  ");
        assert_eq!(
            d.validate(now()).unwrap().content.contact.as_deref(),
            Some("418")
        );
        d.content.instructions = Some("abc\u{202E}def".into());
        assert_eq!(
            d.validate(now()).unwrap_err().to_string(),
            "instructions: character 4 (U+202E) is a control, bidirectional or invisible formatting character"
        );
        d.content.instructions = Some("a\nb".into());
        assert!(d.validate(now()).is_err());
    }

    #[test]
    fn refuses_invisible_formatting_and_bidi_marks_in_every_free_text_field() {
        let marks = [
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}',
            '\u{2060}', '\u{2064}', '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{061C}',
        ];
        for c in marks {
            let text = format!("ab{c}cd");
            let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "418");
            d.kind = Kind::Alert;
            d.content.subject.given_name = Some(text.clone());
            d.content.subject.description = Some(text.clone());
            d.content.last_seen.place = Some(text.clone());
            d.content.instructions = Some(text.clone());
            d.content.contact = Some(text.clone());
            d.note = Some(text.clone());
            let want = format!(
                "character 3 (U+{:04X}) is a control, bidirectional or invisible formatting character",
                c as u32
            );
            let errors = d.validate(now()).unwrap_err().errors;
            let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "subject.given_name",
                    "subject.description",
                    "last_seen.place",
                    "instructions",
                    "contact",
                    "note"
                ],
                "U+{:04X}",
                c as u32
            );
            assert!(errors.iter().all(|e| e.problem == want), "{errors:?}");
        }
        // Letters of right-to-left scripts, and joiners inside them, are not marks.
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "418");
        d.content.subject.given_name = Some("مريم".into());
        assert!(d.validate(now()).is_ok());
    }

    #[test]
    fn last_seen_at_is_no_earlier_than_2000_and_the_error_names_the_field() {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "418");
        let floor: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(floor.0, EARLIEST_LAST_SEEN_MS);
        d.content.last_seen.at = Some(floor);
        assert!(d.validate(now()).is_ok());
        for at in [floor.plus_ms(-1), Timestamp(0), Timestamp(i64::MIN)] {
            d.content.last_seen.at = Some(at);
            let e = d.validate(now()).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "last_seen.at: {at} is before 2000-01-01T00:00:00.000Z, the earliest accepted"
                )
            );
        }
    }

    #[test]
    fn checks_every_other_limit() {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "", "");
        d.content.subject.age = Some(21);
        d.content.last_seen.at = Some(now().plus_ms(HOUR_MS));
        d.content.last_seen.geo = Some(Geo(91.0, f64::NAN));
        d.expires_at = Some(now().plus_ms(31 * DAY_MS));
        d.to = vec![Selector::Party("DPJ".into()); 65];
        let msgs: Vec<String> = d
            .validate(now())
            .unwrap_err()
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            msgs,
            vec![
                "subject.reference: required",
                "subject.age: 21 years, the limit is 20",
                "last_seen.at: 2026-11-29T04:00:00.000Z is in the future (relay time 2026-11-29T03:00:00.000Z)",
                "last_seen.geo: latitude 91 is not within -90..90",
                "last_seen.geo: longitude NaN is not within -180..180",
                "contact: required",
                "expires_at: 2026-12-30T03:00:00.000Z is more than 30 days after the relay time 2026-11-29T03:00:00.000Z",
                "to: 65 recipients, the limit is 64",
            ]
        );
    }

    #[test]
    fn kinds_need_the_right_references() {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R-1", "418");
        d.kind = Kind::Cancel;
        let msgs: Vec<String> = d
            .validate(now())
            .unwrap_err()
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            msgs,
            vec!["references: required for kind cancel", "note: required"]
        );
    }

    #[test]
    fn a_type_error_in_an_alert_file_names_the_field_path_and_what_is_expected() {
        let head = "category = \"runaway\"\nrisk = \"severe\"\n";
        let cases = [
            (
                format!("{head}[subject]\nage = -1\n"),
                "subject.age: expected a whole number from 0 to 20, got -1 (line 4)",
            ),
            (
                format!("{head}[subject]\nage = 300\n"),
                "subject.age: expected a whole number from 0 to 20, got 300 (line 4)",
            ),
            (
                "category = \"runaway\"\nrisk = 3\n".to_owned(),
                "risk: expected one of extreme, severe, moderate, minor, got 3 (line 2)",
            ),
            (
                "category = \"flood\"\nrisk = \"minor\"\n".to_owned(),
                "category: expected one of runaway, sighting, exploitation-risk, got \"flood\" (line 1)",
            ),
            (
                format!("{head}to = [\"DPJ\", 3]\n"),
                "to[1]: expected a recipient in quotes, PARTY or PARTY/UNIT, got 3 (line 3)",
            ),
            (
                format!("{head}contact = 418\n"),
                "contact: expected text in quotes, got 418 (line 3)",
            ),
            (
                format!("{head}[last_seen]\ngeo = \"ici\"\n"),
                "last_seen.geo: expected [latitude, longitude] in degrees, such as [46.8123, -71.2345], got \"ici\" (line 4)",
            ),
            (
                format!("{head}subject = 3\n"),
                "subject: expected a table [subject], got 3 (line 3)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(AlertFile::from_toml(&text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn unknown_keys_in_files_are_errors() {
        let e = AlertFile::from_toml("category = \"runaway\"\nrisk = \"minor\"\ncolour = 1\n")
            .unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = AlertFile::from_toml("category = \"flood\"\nrisk = \"minor\"\n").unwrap_err();
        assert!(e.contains("flood"), "{e}");
    }

    #[test]
    fn redaction_leaves_fields_absent() {
        let d = AlertFile::from_toml(RUNAWAY).unwrap().into_draft();
        let keep = FieldSet::parse_pattern("subject.*")
            .unwrap()
            .with(FieldPath::Contact);
        let r = d.content.redact(keep);
        assert_eq!(r.last_seen, LastSeen::default());
        assert_eq!(r.instructions, None);
        assert_eq!(r.subject, d.content.subject);
        let mut m = Map::new();
        r.write_json(&mut m);
        assert_eq!(
            Value::Object(m),
            serde_json::json!({
                "subject": {"reference": "SPVQ-2026-04417", "given_name": "Maëlle", "age": 15,
                            "description": "1,60 m, cheveux bruns longs, manteau noir, sac à dos rose"},
                "contact": "Enquêtrice ESM, 418 555-0142 poste 3"
            })
        );
    }

    #[test]
    fn field_patterns() {
        assert_eq!(
            FieldSet::parse_pattern("last_seen.*").unwrap().paths(),
            vec!["last_seen.at", "last_seen.place", "last_seen.geo"]
        );
        assert!(FieldSet::parse_pattern("all").unwrap().is_all());
        assert!(FieldSet::parse_pattern("subject.photo")
            .unwrap_err()
            .contains("unknown field path \"subject.photo\""));
    }
}
