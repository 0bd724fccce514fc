//! CAP 1.2 (OASIS Common Alerting Protocol, version 1.2, OASIS Standard of 1 July 2010):
//! reading, checking, and the two-way mapping with Filet alerts (requirements §5 "CAP 1.2 interop").
//! No I/O: every function takes and returns text.
//!
//! - [`parse`] / [`parse_bytes`]: a CAP `<alert>` document (namespace [`CAP_1_2_NS`], or
//!   [`CAP_1_1_NS`]) into a [`CapAlert`], the text of each element as found.
//!   [`decode`]: a document's bytes into text, by the encoding its XML declaration names
//!   (UTF-8, US-ASCII, ISO-8859-1 or windows-1252).
//! - [`check`]: [`parse`], then every rule of the standard that a receiver can check —
//!   required elements, value lists, date-times, scope rules, references — returning all
//!   problems, each named by its element path (`alert/info/urgency`).
//! - [`export`]: a Filet alert (as one recipient may see it) into a CAP 1.2 document;
//!   [`import`]: a CAP 1.2 document into an [`AlertDraft`], or a [`CapRefusal`] saying why not.
//!
//! The mapping is documented as a two-way table in `docs/cap.md`.
//!
//! # Safe XML
//! The XML is read with `quick-xml`, which never opens a file or a URL. On top of that, this
//! module refuses any document with a DTD (`<!DOCTYPE`) before reading an element of it,
//! decodes only the five predefined entities and numeric character references (any other
//! `&name;` is an error, never a lookup), never follows XInclude (an `xi:include` is an
//! element of another namespace: left out of the model, and [`check`] reports it), and bounds
//! the input to [`MAX_CAP_LEN`] bytes (checked before parsing) and [`MAX_DEPTH`] levels of
//! elements.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::alert::{
    AlertDraft, Category, Content, Envelope, Geo, Kind, Language, LastSeen, Risk, Status, Subject,
};
use crate::id::AlertId;
use crate::principal::{Selector, UnitRef};
use crate::time::Timestamp;

/// The XML namespace of CAP 1.2 (CAP-V1.2 front matter, "Declared XML Namespace").
pub const CAP_1_2_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// The XML namespace of CAP 1.1, also read (e.g. google/cap-library's
/// `no_optional_fields.cap`); such a document is checked against the CAP 1.2 rules.
pub const CAP_1_1_NS: &str = "urn:oasis:names:tc:emergency:cap:1.1";
/// The XML Signature namespace, whose elements CAP 1.2 allows after the info blocks.
const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Largest document read, in bytes (256 KiB), checked before any parsing.
pub const MAX_CAP_LEN: usize = 256 * 1024;
/// Deepest nesting of elements read (CAP itself needs 5: `alert/info/area/geocode/value`).
pub const MAX_DEPTH: usize = 16;

// ---------------------------------------------------------------------------------------------
// Value lists
// ---------------------------------------------------------------------------------------------

macro_rules! cap_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }
        impl $name {
            /// Every value, in the order of the standard's list.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The value as CAP writes it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => stringify!($var)),+ }
            }
            /// The value list as messages print it: `A, B, C`.
            pub fn list() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = ();
            /// Exact, case-sensitive match (the schema's enumerations are).
            fn from_str(s: &str) -> Result<Self, ()> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or(())
            }
        }
    };
}

cap_enum!(
    /// `alert/status` (CAP 1.2 §3.2.1): the appropriate handling of the message.
    CapStatus {
        /// Actionable by all targeted recipients.
        Actual,
        /// Actionable only by designated exercise participants.
        Exercise,
        /// For messages that support alert network internal functions.
        System,
        /// Technical testing only, all recipients disregard.
        Test,
        /// A preliminary template or draft, not actionable in its current form.
        Draft,
    }
);

cap_enum!(
    /// `alert/msgType` (CAP 1.2 §3.2.1): the nature of the message.
    MsgType {
        /// Initial information requiring attention by targeted recipients.
        Alert,
        /// Updates and supersedes the earlier message(s) in `references`.
        Update,
        /// Cancels the earlier message(s) in `references`.
        Cancel,
        /// Acknowledges receipt and acceptance of the message(s) in `references`.
        Ack,
        /// Indicates rejection of the message(s) in `references`.
        Error,
    }
);

cap_enum!(
    /// `alert/scope` (CAP 1.2 §3.2.1): the intended distribution.
    Scope {
        /// For general dissemination to unrestricted audiences.
        Public,
        /// For dissemination only to users with a known operational requirement
        /// (`restriction` says which).
        Restricted,
        /// For dissemination only to the specified `addresses`.
        Private,
    }
);

cap_enum!(
    /// `alert/info/category` (CAP 1.2 §3.2.2): the category of the subject event.
    #[allow(clippy::upper_case_acronyms)] // CBRNE is the standard's spelling
    CapCategory {
        /// Geophysical (including landslide).
        Geo,
        /// Meteorological (including flood).
        Met,
        /// General emergency and public safety.
        Safety,
        /// Law enforcement, military, homeland and local/private security.
        Security,
        /// Rescue and recovery.
        Rescue,
        /// Fire suppression and rescue.
        Fire,
        /// Medical and public health.
        Health,
        /// Pollution and other environmental.
        Env,
        /// Public and private transportation.
        Transport,
        /// Utility, telecommunication, other non-transport infrastructure.
        Infra,
        /// Chemical, biological, radiological, nuclear or high-yield explosive threat or
        /// attack.
        CBRNE,
        /// Other events.
        Other,
    }
);

cap_enum!(
    /// `alert/info/responseType` (CAP 1.2 §3.2.2): the recommended type of action.
    ResponseType {
        /// Take shelter in place or per `instruction`.
        Shelter,
        /// Relocate as instructed in the `instruction`.
        Evacuate,
        /// Make preparations per the `instruction`.
        Prepare,
        /// Execute a pre-planned activity identified in `instruction`.
        Execute,
        /// Avoid the subject event as per the `instruction`.
        Avoid,
        /// Attend to information sources as described in `instruction`.
        Monitor,
        /// Evaluate the information in this message.
        Assess,
        /// The subject event no longer poses a threat or concern.
        AllClear,
        /// No action recommended.
        None,
    }
);

cap_enum!(
    /// `alert/info/urgency` (CAP 1.2 §3.2.2).
    Urgency {
        /// Responsive action should be taken immediately.
        Immediate,
        /// Responsive action should be taken soon (within next hour).
        Expected,
        /// Responsive action should be taken in the near future.
        Future,
        /// Responsive action is no longer required.
        Past,
        /// Urgency not known.
        Unknown,
    }
);

cap_enum!(
    /// `alert/info/severity` (CAP 1.2 §3.2.2).
    Severity {
        /// Extraordinary threat to life or property.
        Extreme,
        /// Significant threat to life or property.
        Severe,
        /// Possible threat to life or property.
        Moderate,
        /// Minimal to no known threat to life or property.
        Minor,
        /// Severity unknown.
        Unknown,
    }
);

cap_enum!(
    /// `alert/info/certainty` (CAP 1.2 §3.2.2).
    Certainty {
        /// Determined to have occurred or to be ongoing.
        Observed,
        /// Likely (p > ~50%).
        Likely,
        /// Possible but not likely (p <= ~50%).
        Possible,
        /// Not expected to occur (p ~ 0).
        Unlikely,
        /// Certainty unknown.
        Unknown,
    }
);

/// Which CAP namespace the document's root is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapVersion {
    /// `urn:oasis:names:tc:emergency:cap:1.1`.
    V1_1,
    /// `urn:oasis:names:tc:emergency:cap:1.2`.
    V1_2,
}

impl CapVersion {
    /// The namespace URI.
    pub fn namespace(self) -> &'static str {
        match self {
            CapVersion::V1_1 => CAP_1_1_NS,
            CapVersion::V1_2 => CAP_1_2_NS,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A CAP `<alert>` (CAP 1.2 §3.2.1), each element's text as found in the document (entities
/// decoded, nothing trimmed). An element that is absent is `None` (or an empty list).
///
/// [`parse`] fills this in without judging values; [`check`] guarantees that every element
/// the standard requires is `Some` and that every value is in its list and format (read them
/// typed with [`CapAlert::status`], [`CapAlert::msg_type`], [`CapAlert::scope`],
/// [`CapAlert::references`], [`CapAlert::addresses`]). Elements of other namespaces are
/// left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapAlert {
    /// The namespace of the root element.
    pub version: CapVersion,
    /// `identifier` (required): the message id, unique for the sender; no spaces, commas,
    /// `<` or `&`.
    pub identifier: Option<String>,
    /// `sender` (required): the originator; same characters as `identifier`.
    pub sender: Option<String>,
    /// `sent` (required): `YYYY-MM-DDThh:mm:ss±hh:mm` (§3.3.2).
    pub sent: Option<String>,
    /// `status` (required): one of [`CapStatus`].
    pub status: Option<String>,
    /// `msgType` (required): one of [`MsgType`].
    pub msg_type: Option<String>,
    /// `source`: the particular source of the message.
    pub source: Option<String>,
    /// `scope` (required): one of [`Scope`].
    pub scope: Option<String>,
    /// `restriction`: the rule for limiting distribution; required when scope is
    /// `Restricted`.
    pub restriction: Option<String>,
    /// `addresses`: space-separated recipients, those with spaces in double quotes;
    /// required when scope is `Private`.
    pub addresses: Option<String>,
    /// `code`*: special handling codes.
    pub code: Vec<String>,
    /// `note`: the purpose or significance of the message.
    pub note: Option<String>,
    /// `references`: whitespace-separated `sender,identifier,sent` triples of earlier
    /// messages.
    pub references: Option<String>,
    /// `incidents`: whitespace-separated incident ids.
    pub incidents: Option<String>,
    /// `info`*: the blocks, in document order (one per language, typically).
    pub info: Vec<CapInfo>,
}

/// A CAP `<info>` block (CAP 1.2 §3.2.2), text as found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapInfo {
    /// `language`: an RFC 3066 tag; absent means `en-US`.
    pub language: Option<String>,
    /// `category`+ (at least one required): each one of [`CapCategory`].
    pub category: Vec<String>,
    /// `event` (required): the subject event, as text.
    pub event: Option<String>,
    /// `responseType`*: each one of [`ResponseType`].
    pub response_type: Vec<String>,
    /// `urgency` (required): one of [`Urgency`].
    pub urgency: Option<String>,
    /// `severity` (required): one of [`Severity`].
    pub severity: Option<String>,
    /// `certainty` (required): one of [`Certainty`].
    pub certainty: Option<String>,
    /// `audience`: the intended audience.
    pub audience: Option<String>,
    /// `eventCode`*: system-specific event codes.
    pub event_code: Vec<CapValue>,
    /// `effective`: `YYYY-MM-DDThh:mm:ss±hh:mm`.
    pub effective: Option<String>,
    /// `onset`: `YYYY-MM-DDThh:mm:ss±hh:mm`.
    pub onset: Option<String>,
    /// `expires`: `YYYY-MM-DDThh:mm:ss±hh:mm`.
    pub expires: Option<String>,
    /// `senderName`: human-readable sender.
    pub sender_name: Option<String>,
    /// `headline`: brief human-readable headline.
    pub headline: Option<String>,
    /// `description`: extended description of the event.
    pub description: Option<String>,
    /// `instruction`: the recommended action.
    pub instruction: Option<String>,
    /// `web`: a URI for more information.
    pub web: Option<String>,
    /// `contact`: for follow-up and confirmation.
    pub contact: Option<String>,
    /// `parameter`*: system-specific `valueName`/`value` pairs.
    pub parameter: Vec<CapValue>,
    /// `resource`* (CAP 1.2 §3.2.3).
    pub resource: Vec<CapResource>,
    /// `area`* (CAP 1.2 §3.2.4).
    pub area: Vec<CapArea>,
}

/// A `valueName`/`value` pair: `eventCode`, `parameter` (§3.2.2) or `geocode` (§3.2.4).
/// Both are required.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapValue {
    /// `valueName`.
    pub value_name: Option<String>,
    /// `value`.
    pub value: Option<String>,
}

/// A CAP `<resource>` (CAP 1.2 §3.2.3), text as found. Filet neither writes nor imports
/// resources (no attachments).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapResource {
    /// `resourceDesc` (required).
    pub resource_desc: Option<String>,
    /// `mimeType` (required).
    pub mime_type: Option<String>,
    /// `size`: an integer, in bytes.
    pub size: Option<String>,
    /// `uri`.
    pub uri: Option<String>,
    /// `derefUri`: base64 content.
    pub deref_uri: Option<String>,
    /// `digest`: SHA-1 of the content.
    pub digest: Option<String>,
}

/// A CAP `<area>` (CAP 1.2 §3.2.4), text as found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapArea {
    /// `areaDesc` (required).
    pub area_desc: Option<String>,
    /// `polygon`*: whitespace-separated `lat,lon` pairs, at least 4, first = last.
    pub polygon: Vec<String>,
    /// `circle`*: `lat,lon radius` (radius in km).
    pub circle: Vec<String>,
    /// `geocode`*.
    pub geocode: Vec<CapValue>,
    /// `altitude`: a decimal, in feet above mean sea level.
    pub altitude: Option<String>,
    /// `ceiling`: a decimal; needs `altitude`.
    pub ceiling: Option<String>,
}

/// One `sender,identifier,sent` triple of `alert/references` (CAP 1.2 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReference {
    /// The `sender` of the referenced message.
    pub sender: String,
    /// The `identifier` of the referenced message.
    pub identifier: String,
    /// The `sent` time of the referenced message (to the second, as CAP writes it).
    pub sent: Timestamp,
}

fn trimmed(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim)
}

impl CapAlert {
    /// `status`, typed; `None` when absent or not in the list.
    pub fn status(&self) -> Option<CapStatus> {
        trimmed(&self.status).and_then(|s| s.parse().ok())
    }

    /// `msgType`, typed; `None` when absent or not in the list.
    pub fn msg_type(&self) -> Option<MsgType> {
        trimmed(&self.msg_type).and_then(|s| s.parse().ok())
    }

    /// `scope`, typed; `None` when absent or not in the list.
    pub fn scope(&self) -> Option<Scope> {
        trimmed(&self.scope).and_then(|s| s.parse().ok())
    }

    /// `sent`, as an instant; `None` when absent or not a CAP date-time.
    pub fn sent_time(&self) -> Option<Timestamp> {
        trimmed(&self.sent).and_then(parse_cap_datetime)
    }

    /// The `references` triples (empty when absent); `None` when one is malformed.
    pub fn references(&self) -> Option<Vec<CapReference>> {
        match &self.references {
            None => Some(Vec::new()),
            Some(r) => r.split_whitespace().map(parse_reference).collect(),
        }
    }

    /// The `addresses`, split on spaces with double-quoted ones kept whole (empty when
    /// absent); `None` when a double quote is not closed.
    pub fn addresses(&self) -> Option<Vec<String>> {
        match &self.addresses {
            None => Some(Vec::new()),
            Some(a) => split_addresses(a),
        }
    }
}

impl CapInfo {
    /// The `language`, or CAP's default `en-US` when absent.
    pub fn language_or_default(&self) -> &str {
        trimmed(&self.language).unwrap_or("en-US")
    }

    /// `severity`, typed; `None` when absent or not in the list.
    pub fn severity(&self) -> Option<Severity> {
        trimmed(&self.severity).and_then(|s| s.parse().ok())
    }

    /// `urgency`, typed; `None` when absent or not in the list.
    pub fn urgency(&self) -> Option<Urgency> {
        trimmed(&self.urgency).and_then(|s| s.parse().ok())
    }

    /// `certainty`, typed; `None` when absent or not in the list.
    pub fn certainty(&self) -> Option<Certainty> {
        trimmed(&self.certainty).and_then(|s| s.parse().ok())
    }

    /// The `category` values that are in the list.
    pub fn categories(&self) -> Vec<CapCategory> {
        self.category
            .iter()
            .filter_map(|c| c.trim().parse().ok())
            .collect()
    }

    /// The `responseType` values that are in the list.
    pub fn response_types(&self) -> Vec<ResponseType> {
        self.response_type
            .iter()
            .filter_map(|c| c.trim().parse().ok())
            .collect()
    }

    /// The values of the parameters named `name`, in document order.
    pub fn parameters<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.parameter
            .iter()
            .filter(move |p| trimmed(&p.value_name) == Some(name))
            .map(|p| p.value.as_deref().unwrap_or(""))
    }
}

fn parse_reference(triple: &str) -> Option<CapReference> {
    let mut parts = triple.split(',');
    let (Some(sender), Some(identifier), Some(sent), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if sender.is_empty() || identifier.is_empty() {
        return None;
    }
    Some(CapReference {
        sender: sender.to_owned(),
        identifier: identifier.to_owned(),
        sent: parse_cap_datetime(sent)?,
    })
}

/// Splits `addresses`: space-delimited, an address with spaces enclosed in double quotes
/// (CAP 1.2 §3.2.1). `None` when a quote is not closed.
fn split_addresses(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"')?;
            out.push(q[..end].to_owned());
            rest = q[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Date-times (CAP 1.2 §3.3.2)
// ---------------------------------------------------------------------------------------------

/// Unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants CAP's
/// four-digit years can write.
const MIN_CAP_SECS: i64 = -62_167_219_200;
const MAX_CAP_SECS: i64 = 253_402_300_799;

/// Reads a CAP date-time (CAP 1.2 §3.3.2 and the schema's pattern
/// `\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d`): a numeric offset is required, `Z`
/// and fractional seconds are not allowed. `None` when `s` is not one.
pub fn parse_cap_datetime(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 25 {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
    };
    let punct = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (22, b':'),
    ];
    if punct.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let sign: i8 = match b.get(19) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let (oh, om) = (digits(20..22)?, digits(23..25)?);
    // xs:dateTime allows offsets up to 14:00.
    if oh > 14 || om > 59 || (oh == 14 && om != 0) {
        return None;
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(sec).ok()?,
    )
    .ok()?;
    let oh = i8::try_from(oh).ok()? * sign;
    let om = i8::try_from(om).ok()? * sign;
    let offset = UtcOffset::from_hms(oh, om, 0).ok()?;
    Some(Timestamp::from_offset(
        date.with_time(time).assume_offset(offset),
    ))
}

/// Writes an instant as a CAP date-time in UTC, which CAP 1.2 §3.3.2 writes `-00:00`:
/// `2026-11-28T22:40:00-00:00`. CAP has no fractional seconds: the milliseconds are dropped
/// (rounding toward the past). Instants outside years 0000–9999 are clamped to that range.
pub fn format_cap_datetime(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1000).clamp(MIN_CAP_SECS, MAX_CAP_SECS);
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}-00:00",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        // Unreachable after the clamp; the epoch keeps the output well formed.
        Err(_) => "1970-01-01T00:00:00-00:00".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a document could not be read as a CAP alert at all (before any CAP rule is checked).
/// Nothing is ever fetched or opened, whatever the document says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// More than [`MAX_CAP_LEN`] bytes.
    #[error("the document is {len} bytes, more than the {max} a CAP alert may take here; nothing was read", max = MAX_CAP_LEN)]
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// The bytes are not UTF-8 ([`parse_bytes`]).
    #[error("the document is not UTF-8 (invalid byte at offset {offset}); nothing was read")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A character that XML 1.0 does not allow (a control character, U+FFFE, U+FFFF).
    #[error("line {line}, column {column}: character U+{code:04X} is not allowed in XML 1.0; nothing was read")]
    IllegalChar {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The code point.
        code: u32,
    },
    /// A `<!DOCTYPE`: refused before anything in it (or after it) is read.
    #[error("DTDs are not accepted (CAP 1.2 needs none); nothing was read")]
    DocType,
    /// The XML declaration names an encoding this reader does not decode.
    #[error("the XML declaration names encoding {declared:?}; only UTF-8, US-ASCII, ISO-8859-1 (latin1) and windows-1252 are read; nothing was read")]
    UnsupportedEncoding {
        /// The declared encoding.
        declared: String,
    },
    /// A byte that the declared single-byte encoding does not have ([`decode`]).
    #[error("the document declares encoding {declared:?} but byte 0x{byte:02X} at offset {offset} is not {declared}; nothing was read")]
    NotInDeclaredEncoding {
        /// The declared encoding.
        declared: String,
        /// The byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// A UTF-8 byte-order mark before a declaration of another encoding ([`decode`]).
    #[error("the document starts with a UTF-8 byte-order mark but declares encoding {declared:?}; nothing was read")]
    EncodingConflict {
        /// The declared encoding.
        declared: String,
    },
    /// An entity reference other than the five XML predefines.
    #[error("line {line}, column {column}: the entity &{name}; is not one of XML's five (&amp; &lt; &gt; &quot; &apos;) and no DTD is read to define it")]
    UnknownEntity {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The entity name.
        name: String,
    },
    /// A numeric character reference to a character XML 1.0 does not allow, or malformed.
    #[error("line {line}, column {column}: &{reference}; is not a character XML 1.0 allows")]
    BadCharRef {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The reference, without `&` and `;`.
        reference: String,
    },
    /// Elements nested deeper than [`MAX_DEPTH`].
    #[error("line {line}, column {column}: elements nested deeper than {max} levels (CAP 1.2 needs 5)", max = MAX_DEPTH)]
    TooDeep {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// An element name uses a namespace prefix that is not declared.
    #[error("line {line}, column {column}: the namespace prefix {prefix:?} is not declared")]
    UndeclaredPrefix {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The prefix.
        prefix: String,
    },
    /// The XML is not well formed (the parser's message).
    #[error("line {line}, column {column}: not well-formed XML: {message}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What the XML parser found.
        message: String,
    },
    /// Non-blank text before or after the root element.
    #[error("line {line}, column {column}: text outside the root element")]
    TextOutsideRoot {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A second element after the root element closed.
    #[error(
        "line {line}, column {column}: a second root element <{name}> after the first one closed"
    )]
    SecondRoot {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Its name.
        name: String,
    },
    /// The document ends inside an element.
    #[error("{path}: not closed before the end of the document")]
    Unclosed {
        /// The path of the innermost open element, e.g. `alert/info`.
        path: String,
    },
    /// No element at all.
    #[error("the document holds no element")]
    NoElement,
    /// The root element is not `<alert>` in the CAP 1.2 (or 1.1) namespace.
    #[error("alert: the root element is {found}, not <alert> in the CAP 1.2 namespace {ns}", ns = CAP_1_2_NS)]
    NotCap {
        /// The root as found: `<name>` and its namespace.
        found: String,
    },
}

/// One way a CAP document breaks a rule of CAP 1.2, named by element path
/// (`alert/info[2]/area/polygon`; an index appears when an element occurs more than once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapProblem {
    /// A required element is absent.
    #[error("{path}: missing; CAP 1.2 §{section} requires it")]
    Missing {
        /// The element path.
        path: String,
        /// The section of CAP 1.2 that requires it.
        section: &'static str,
    },
    /// An element that may occur once occurs again.
    #[error("{path}: repeated; CAP 1.2 §{section} allows it once")]
    Repeated {
        /// The path of the repeat.
        path: String,
        /// The section of CAP 1.2 that defines it.
        section: &'static str,
    },
    /// A CAP-namespace element that CAP 1.2 does not define there.
    #[error("{path}: not a CAP 1.2 element here")]
    UnknownElement {
        /// The element path.
        path: String,
    },
    /// An element of another namespace (left out of the model).
    #[error("{path}: an element of another namespace; CAP 1.2 allows none here (only an XML signature, directly under alert)")]
    ForeignElement {
        /// The element path, the namespace in braces: `alert/{http://a.b/}y`.
        path: String,
    },
    /// Non-blank text directly inside an element that holds only elements.
    #[error("{path}: text between the elements; CAP 1.2 gives this element only child elements")]
    StrayText {
        /// The element path.
        path: String,
    },
    /// A value outside the element's value list.
    #[error("{path}: {value:?} is not one of {allowed}")]
    NotInList {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
        /// The list, e.g. `Immediate, Expected, Future, Past, Unknown`.
        allowed: String,
    },
    /// A date-time not in the CAP format.
    #[error("{path}: {value:?} is not a CAP date-time YYYY-MM-DDThh:mm:ss±hh:mm (§3.3.2: numeric offset, UTC as -00:00, no \"Z\", no fractional seconds)")]
    BadDateTime {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// An empty `identifier` or `sender`.
    #[error("{path}: empty")]
    Empty {
        /// The element path.
        path: String,
    },
    /// `identifier` or `sender` with a space, comma, `<` or `&`.
    #[error("{path}: {value:?} holds a space, comma, '<' or '&', which CAP 1.2 §3.2.1 forbids")]
    BadIdChar {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// `restriction` (scope Restricted) or `addresses` (scope Private) absent or blank.
    #[error("{path}: missing or empty; scope {scope} requires it (§3.2.1)")]
    ScopeNeeds {
        /// `alert/restriction` or `alert/addresses`.
        path: String,
        /// `Restricted` or `Private`.
        scope: &'static str,
    },
    /// `addresses` with a double quote that is not closed.
    #[error("alert/addresses: a double quote is not closed in {value:?}")]
    UnclosedQuote {
        /// The value found.
        value: String,
    },
    /// A `references` entry that is not three comma-separated parts.
    #[error("alert/references: {entry:?} is not sender,identifier,sent (§3.2.1)")]
    BadReference {
        /// The entry.
        entry: String,
    },
    /// A `references` entry whose sent part is not a CAP date-time.
    #[error("alert/references: the sent time of {entry:?} is not a CAP date-time YYYY-MM-DDThh:mm:ss±hh:mm (§3.3.2)")]
    BadReferenceSent {
        /// The entry.
        entry: String,
    },
    /// A `language` that is not a language tag.
    #[error("{path}: {value:?} is not a language tag (RFC 3066, e.g. fr-CA)")]
    BadLanguage {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// A point that is not `lat,lon` within WGS 84 ranges.
    #[error("{path}: {value:?} is not a WGS 84 latitude,longitude pair")]
    BadPoint {
        /// The element path.
        path: String,
        /// The pair found.
        value: String,
    },
    /// A polygon of fewer than 4 points.
    #[error("{path}: {count} points; a polygon needs at least 4 (§3.2.4)")]
    PolygonTooShort {
        /// The element path.
        path: String,
        /// How many points it has.
        count: usize,
    },
    /// A polygon whose first and last points differ.
    #[error("{path}: the first and last points differ; a polygon must close (§3.2.4)")]
    PolygonNotClosed {
        /// The element path.
        path: String,
    },
    /// A circle that is not `lat,lon radius`.
    #[error("{path}: {value:?} is not \"latitude,longitude radius\" with a radius of 0 or more km (§3.2.4)")]
    BadCircle {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// `altitude` or `ceiling` that is not a decimal.
    #[error("{path}: {value:?} is not a decimal number")]
    BadDecimal {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// `size` that is not an integer.
    #[error("{path}: {value:?} is not an integer")]
    BadInteger {
        /// The element path.
        path: String,
        /// The value found.
        value: String,
    },
    /// `ceiling` without `altitude`.
    #[error("{path}: ceiling without altitude; CAP 1.2 §3.2.4 uses it only with altitude")]
    CeilingWithoutAltitude {
        /// The `ceiling` path.
        path: String,
    },
}

/// Why [`check`] did not accept a document: unreadable, or every CAP 1.2 rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapErrors {
    /// Not readable as a CAP alert at all.
    #[error(transparent)]
    Unreadable(#[from] CapError),
    /// Readable, but breaks these rules (at least one), in document order.
    #[error("{}", join_problems(.0))]
    Invalid(Vec<CapProblem>),
}

/// Text quoted from the document in an error, cut to 64 characters: a hostile file must
/// not make its error message as large as itself.
fn clip(s: &str) -> String {
    clip_to(s, 64)
}

/// [`clip`] to `max` characters (the parser's own messages, which quote the document).
fn clip_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}… ({} characters)", &s[..at], s.chars().count()),
    }
}

fn join_problems(p: &[CapProblem]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------------------------
// Reading XML safely
// ---------------------------------------------------------------------------------------------

/// An element as read: its namespace, local name, its own text (entities decoded) and its
/// child elements.
#[derive(Debug)]
struct Node {
    ns: Option<String>,
    name: String,
    text: String,
    children: Vec<Node>,
}

/// XML 1.0 `Char`: tab, newline, carriage return, and U+0020 up, less U+FFFE and U+FFFF
/// (Rust's `char` already excludes surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn line_col(xml: &str, offset: u64) -> (usize, usize) {
    let off = usize::try_from(offset).unwrap_or(usize::MAX).min(xml.len());
    let mut cut = off;
    while !xml.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &xml[..cut];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn read_tree(xml: &str) -> Result<(CapVersion, Node), CapError> {
    if xml.len() > MAX_CAP_LEN {
        return Err(CapError::TooLarge { len: xml.len() });
    }
    let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
    if let Some((off, c)) = xml.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        let (line, column) = line_col(xml, off as u64);
        return Err(CapError::IllegalChar {
            line,
            column,
            code: u32::from(c),
        });
    }
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let start = reader.buffer_position();
        let at = || line_col(xml, start);
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => {
                let ns = match ns {
                    ResolveResult::Bound(n) => Ok(Some(String::from_utf8_lossy(n.0).into_owned())),
                    ResolveResult::Unbound => Ok(None),
                    ResolveResult::Unknown(p) => Err(clip(&String::from_utf8_lossy(&p))),
                };
                (ns, event)
            }
            Err(e) => {
                let (line, column) = line_col(xml, reader.error_position());
                return Err(CapError::Malformed {
                    line,
                    column,
                    message: clip_to(&e.to_string(), 200),
                });
            }
        };
        match event {
            Event::DocType(_) => return Err(CapError::DocType),
            Event::Decl(d) => {
                // The text is characters already ([`decode`] honoured the declaration):
                // only an encoding that could not have been decoded is refused.
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = String::from_utf8_lossy(&enc).into_owned();
                    if Encoding::of_label(&enc).is_none() {
                        return Err(CapError::UnsupportedEncoding {
                            declared: clip(&enc),
                        });
                    }
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = clip(&String::from_utf8_lossy(e.local_name().as_ref()));
                let (line, column) = at();
                if root.is_some() && stack.is_empty() {
                    return Err(CapError::SecondRoot { line, column, name });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(CapError::TooDeep { line, column });
                }
                let ns = ns.map_err(|prefix| CapError::UndeclaredPrefix {
                    line,
                    column,
                    prefix,
                })?;
                // CAP elements have no attributes and none is kept, but a malformed or
                // repeated one makes the document ill-formed.
                for attribute in e.attributes() {
                    attribute.map_err(|err| CapError::Malformed {
                        line,
                        column,
                        message: clip_to(&err.to_string(), 200),
                    })?;
                }
                let node = Node {
                    ns,
                    name,
                    text: String::new(),
                    children: Vec::new(),
                };
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    attach(&mut stack, &mut root, node);
                }
            }
            Event::End(_) => {
                if let Some(node) = stack.pop() {
                    attach(&mut stack, &mut root, node);
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| {
                    let (line, column) = at();
                    CapError::Malformed {
                        line,
                        column,
                        message: clip_to(&e.to_string(), 200),
                    }
                })?;
                push_text(&mut stack, &s, at)?;
            }
            Event::CData(t) => {
                let s = t.xml10_content().map_err(|e| {
                    let (line, column) = at();
                    CapError::Malformed {
                        line,
                        column,
                        message: clip_to(&e.to_string(), 200),
                    }
                })?;
                push_text(&mut stack, &s, at)?;
            }
            Event::GeneralRef(r) => {
                let (line, column) = at();
                let raw = clip(&String::from_utf8_lossy(&r));
                let c = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => c,
                        _ => {
                            return Err(CapError::BadCharRef {
                                line,
                                column,
                                reference: raw,
                            })
                        }
                    }
                } else {
                    match raw.as_str() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => {
                            return Err(CapError::UnknownEntity {
                                line,
                                column,
                                name: raw,
                            })
                        }
                    }
                };
                push_text(&mut stack, c.encode_utf8(&mut [0u8; 4]), at)?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        let path = stack
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join("/");
        return Err(CapError::Unclosed { path });
    }
    let root = root.ok_or(CapError::NoElement)?;
    let version = match (root.name.as_str(), root.ns.as_deref()) {
        ("alert", Some(CAP_1_2_NS)) => CapVersion::V1_2,
        ("alert", Some(CAP_1_1_NS)) => CapVersion::V1_1,
        (name, ns) => {
            return Err(CapError::NotCap {
                found: match ns {
                    Some(ns) => format!("<{name}> in namespace {ns}"),
                    None => format!("<{name}> in no namespace"),
                },
            })
        }
    };
    Ok((version, root))
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn push_text(stack: &mut [Node], s: &str, at: impl Fn() -> (usize, usize)) -> Result<(), CapError> {
    match stack.last_mut() {
        Some(n) => {
            n.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => {
            let (line, column) = at();
            Err(CapError::TextOutsideRoot { line, column })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// From the element tree to the model, noting structural problems
// ---------------------------------------------------------------------------------------------

struct Builder<'p> {
    ns: &'static str,
    problems: &'p mut Vec<CapProblem>,
}

impl Builder<'_> {
    /// The children of `n` with their paths (an index when a name occurs more than once, the
    /// namespace in braces for a foreign element); reports stray text.
    fn children<'n>(&mut self, n: &'n Node, path: &str) -> Vec<(&'n Node, String)> {
        if !n.text.trim().is_empty() {
            self.problems.push(CapProblem::StrayText {
                path: path.to_owned(),
            });
        }
        let mut out = Vec::new();
        let mut seen: BTreeMap<(Option<&str>, &str), usize> = BTreeMap::new();
        for c in &n.children {
            let key = (c.ns.as_deref(), c.name.as_str());
            let total = n
                .children
                .iter()
                .filter(|o| (o.ns.as_deref(), o.name.as_str()) == key)
                .count();
            let i = seen.entry(key).or_insert(0);
            *i += 1;
            let name = if c.ns.as_deref() == Some(self.ns) {
                c.name.clone()
            } else {
                format!("{{{}}}{}", c.ns.as_deref().unwrap_or(""), c.name)
            };
            let p = if total > 1 {
                format!("{path}/{name}[{i}]")
            } else {
                format!("{path}/{name}")
            };
            out.push((c, p));
        }
        out
    }

    /// Whether `c` is of another namespace (left out); reports it, except an XML signature
    /// directly under `alert`.
    fn foreign(&mut self, c: &Node, parent: &str, p: &str) -> bool {
        if c.ns.as_deref() == Some(self.ns) {
            return false;
        }
        let signature = c.ns.as_deref() == Some(XMLDSIG_NS) && parent == "alert";
        if !signature {
            self.problems
                .push(CapProblem::ForeignElement { path: p.to_owned() });
        }
        true
    }

    /// The text of a simple element; any child element is a problem.
    fn text(&mut self, n: &Node, path: &str) -> String {
        for c in &n.children {
            let p = format!("{path}/{}", c.name);
            let fp = format!("{path}/{{{}}}{}", c.ns.as_deref().unwrap_or(""), c.name);
            if !self.foreign(c, path, &fp) {
                self.problems.push(CapProblem::UnknownElement { path: p });
            }
        }
        n.text.clone()
    }

    fn single(&mut self, slot: &mut Option<String>, n: &Node, path: &str, section: &'static str) {
        let t = self.text(n, path);
        if slot.is_some() {
            self.problems.push(CapProblem::Repeated {
                path: path.to_owned(),
                section,
            });
        } else {
            *slot = Some(t);
        }
    }

    fn alert(&mut self, version: CapVersion, n: &Node) -> CapAlert {
        const S: &str = "3.2.1";
        let mut a = CapAlert {
            version,
            identifier: None,
            sender: None,
            sent: None,
            status: None,
            msg_type: None,
            source: None,
            scope: None,
            restriction: None,
            addresses: None,
            code: Vec::new(),
            note: None,
            references: None,
            incidents: None,
            info: Vec::new(),
        };
        let path = "alert";
        for (c, p) in self.children(n, path) {
            if self.foreign(c, path, &p) {
                continue;
            }
            match c.name.as_str() {
                "identifier" => self.single(&mut a.identifier, c, &p, S),
                "sender" => self.single(&mut a.sender, c, &p, S),
                "sent" => self.single(&mut a.sent, c, &p, S),
                "status" => self.single(&mut a.status, c, &p, S),
                "msgType" => self.single(&mut a.msg_type, c, &p, S),
                "source" => self.single(&mut a.source, c, &p, S),
                "scope" => self.single(&mut a.scope, c, &p, S),
                "restriction" => self.single(&mut a.restriction, c, &p, S),
                "addresses" => self.single(&mut a.addresses, c, &p, S),
                "code" => a.code.push(self.text(c, &p)),
                "note" => self.single(&mut a.note, c, &p, S),
                "references" => self.single(&mut a.references, c, &p, S),
                "incidents" => self.single(&mut a.incidents, c, &p, S),
                "info" => a.info.push(self.info(c, &p)),
                _ => self.problems.push(CapProblem::UnknownElement { path: p }),
            }
        }
        a
    }

    fn info(&mut self, n: &Node, path: &str) -> CapInfo {
        const S: &str = "3.2.2";
        let mut i = CapInfo::default();
        for (c, p) in self.children(n, path) {
            if self.foreign(c, path, &p) {
                continue;
            }
            match c.name.as_str() {
                "language" => self.single(&mut i.language, c, &p, S),
                "category" => i.category.push(self.text(c, &p)),
                "event" => self.single(&mut i.event, c, &p, S),
                "responseType" => i.response_type.push(self.text(c, &p)),
                "urgency" => self.single(&mut i.urgency, c, &p, S),
                "severity" => self.single(&mut i.severity, c, &p, S),
                "certainty" => self.single(&mut i.certainty, c, &p, S),
                "audience" => self.single(&mut i.audience, c, &p, S),
                "eventCode" => i.event_code.push(self.value(c, &p, S)),
                "effective" => self.single(&mut i.effective, c, &p, S),
                "onset" => self.single(&mut i.onset, c, &p, S),
                "expires" => self.single(&mut i.expires, c, &p, S),
                "senderName" => self.single(&mut i.sender_name, c, &p, S),
                "headline" => self.single(&mut i.headline, c, &p, S),
                "description" => self.single(&mut i.description, c, &p, S),
                "instruction" => self.single(&mut i.instruction, c, &p, S),
                "web" => self.single(&mut i.web, c, &p, S),
                "contact" => self.single(&mut i.contact, c, &p, S),
                "parameter" => i.parameter.push(self.value(c, &p, S)),
                "resource" => i.resource.push(self.resource(c, &p)),
                "area" => i.area.push(self.area(c, &p)),
                _ => self.problems.push(CapProblem::UnknownElement { path: p }),
            }
        }
        i
    }

    fn value(&mut self, n: &Node, path: &str, section: &'static str) -> CapValue {
        let mut v = CapValue::default();
        for (c, p) in self.children(n, path) {
            if self.foreign(c, path, &p) {
                continue;
            }
            match c.name.as_str() {
                "valueName" => self.single(&mut v.value_name, c, &p, section),
                "value" => self.single(&mut v.value, c, &p, section),
                _ => self.problems.push(CapProblem::UnknownElement { path: p }),
            }
        }
        v
    }

    fn resource(&mut self, n: &Node, path: &str) -> CapResource {
        const S: &str = "3.2.3";
        let mut r = CapResource::default();
        for (c, p) in self.children(n, path) {
            if self.foreign(c, path, &p) {
                continue;
            }
            match c.name.as_str() {
                "resourceDesc" => self.single(&mut r.resource_desc, c, &p, S),
                "mimeType" => self.single(&mut r.mime_type, c, &p, S),
                "size" => self.single(&mut r.size, c, &p, S),
                "uri" => self.single(&mut r.uri, c, &p, S),
                "derefUri" => self.single(&mut r.deref_uri, c, &p, S),
                "digest" => self.single(&mut r.digest, c, &p, S),
                _ => self.problems.push(CapProblem::UnknownElement { path: p }),
            }
        }
        r
    }

    fn area(&mut self, n: &Node, path: &str) -> CapArea {
        const S: &str = "3.2.4";
        let mut a = CapArea::default();
        for (c, p) in self.children(n, path) {
            if self.foreign(c, path, &p) {
                continue;
            }
            match c.name.as_str() {
                "areaDesc" => self.single(&mut a.area_desc, c, &p, S),
                "polygon" => a.polygon.push(self.text(c, &p)),
                "circle" => a.circle.push(self.text(c, &p)),
                "geocode" => a.geocode.push(self.value(c, &p, S)),
                "altitude" => self.single(&mut a.altitude, c, &p, S),
                "ceiling" => self.single(&mut a.ceiling, c, &p, S),
                _ => self.problems.push(CapProblem::UnknownElement { path: p }),
            }
        }
        a
    }
}

// ---------------------------------------------------------------------------------------------
// parse and check
// ---------------------------------------------------------------------------------------------

/// Reads a CAP 1.2 (or 1.1) `<alert>` document into a [`CapAlert`] without judging its
/// values (use [`check`] for that). Elements of other namespaces, unknown elements and
/// repeats of single elements are left out (the first one is kept).
///
/// # Errors
/// [`CapError`]: too large (more than [`MAX_CAP_LEN`] bytes, checked first), a DTD (refused
/// before anything else is read), an entity other than XML's five, a character XML 1.0
/// forbids, nesting deeper than [`MAX_DEPTH`], XML that is not well formed, or a root that
/// is not `<alert>` in the CAP namespace.
pub fn parse(xml: &str) -> Result<CapAlert, CapError> {
    let (version, root) = read_tree(xml)?;
    let mut ignored = Vec::new();
    let mut b = Builder {
        ns: version.namespace(),
        problems: &mut ignored,
    };
    Ok(b.alert(version, &root))
}

/// [`parse`] for bytes as received: [`decode`], then [`parse`].
///
/// # Errors
/// As [`decode`], then as [`parse`].
pub fn parse_bytes(bytes: &[u8]) -> Result<CapAlert, CapError> {
    parse(&decode(bytes)?)
}

/// The encodings [`decode`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Ascii,
    Latin1,
    Windows1252,
}

impl Encoding {
    /// The encoding of a declaration's label (IANA names and their common aliases, any case).
    fn of_label(label: &str) -> Option<Encoding> {
        match label.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "us-ascii" | "ascii" | "iso646-us" | "ansi_x3.4-1968" => Some(Encoding::Ascii),
            "iso-8859-1" | "iso_8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1"
            | "iso-ir-100" | "cp819" | "ibm819" => Some(Encoding::Latin1),
            "windows-1252" | "cp1252" | "x-cp1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }
}

/// windows-1252 bytes 0x80–0x9F. The five bytes the code page leaves undefined (0x81,
/// 0x8D, 0x8F, 0x90, 0x9D) map to the C1 control of the same value, as the WHATWG
/// Encoding Standard maps them.
const WINDOWS_1252_80_9F: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// The `encoding` pseudo-attribute of the XML declaration that opens `bytes` (after an
/// optional UTF-8 byte-order mark), if there is one. Every encoding read here is a
/// superset of ASCII, so the declaration is read as ASCII bytes.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    // A declaration is short; do not scan a large document for its end.
    let end = rest.iter().take(512).position(|&b| b == b'>')?;
    let decl = std::str::from_utf8(&rest[..end]).ok()?;
    let at = decl.find("encoding")?;
    let after = decl[at + "encoding".len()..].trim_start();
    let after = after.strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after[1..];
    let close = value.find(quote)?;
    Some(value[..close].to_owned())
}

/// A CAP document's bytes as text, decoded by the encoding its XML declaration names:
/// UTF-8 (also without a declaration; a leading byte-order mark is kept for [`parse`],
/// which allows it), US-ASCII, ISO-8859-1 (latin1: each byte is the code point of the same
/// value) or windows-1252 (latin1 but for 0x80–0x9F). The size limit applies to the bytes
/// first, then (in [`parse`]) to the text as UTF-8.
///
/// # Errors
/// [`CapError::TooLarge`] for more than [`MAX_CAP_LEN`] bytes (checked first);
/// [`CapError::UnsupportedEncoding`] naming any other declared encoding;
/// [`CapError::EncodingConflict`] for a UTF-8 byte-order mark before a declaration of
/// another encoding; [`CapError::NotUtf8`] or [`CapError::NotInDeclaredEncoding`] naming
/// the offset of the first byte the encoding does not have.
pub fn decode(bytes: &[u8]) -> Result<String, CapError> {
    if bytes.len() > MAX_CAP_LEN {
        return Err(CapError::TooLarge { len: bytes.len() });
    }
    let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(body) => (true, body),
        None => (false, bytes),
    };
    let declared = declared_encoding(body);
    let encoding = match &declared {
        None => Encoding::Utf8,
        Some(label) => Encoding::of_label(label).ok_or_else(|| CapError::UnsupportedEncoding {
            declared: clip(label),
        })?,
    };
    if bom && encoding != Encoding::Utf8 {
        return Err(CapError::EncodingConflict {
            declared: clip(declared.as_deref().unwrap_or_default()),
        });
    }
    match encoding {
        Encoding::Utf8 => {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| CapError::NotUtf8 {
                    offset: e.valid_up_to(),
                })
        }
        Encoding::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(offset) => Err(CapError::NotInDeclaredEncoding {
                declared: clip(declared.as_deref().unwrap_or_default()),
                byte: bytes[offset],
                offset,
            }),
            // ASCII is UTF-8.
            None => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        },
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        Encoding::Windows1252 => Ok(bytes
            .iter()
            .map(|&b| match b {
                0x80..=0x9F => WINDOWS_1252_80_9F[usize::from(b - 0x80)],
                _ => char::from(b),
            })
            .collect()),
    }
}

/// Reads a CAP document and checks it against CAP 1.2 (§3.2.1–§3.2.4, §3.3.2): the required
/// elements (`identifier`, `sender`, `sent`, `status`, `msgType`, `scope`; in each `info`:
/// `category`, `event`, `urgency`, `severity`, `certainty`; in each `resource`:
/// `resourceDesc`, `mimeType`; in each `area`: `areaDesc`; both halves of every
/// `valueName`/`value` pair), no repeats of single elements, no unknown elements, the value
/// lists, the date-time format, `restriction` for scope `Restricted`, `addresses` for scope
/// `Private`, the `references` triples, language tags, polygons, circles and numbers.
///
/// Values are compared after trimming surrounding whitespace; element order is not checked.
///
/// # Errors
/// [`CapErrors::Unreadable`] as [`parse`]; [`CapErrors::Invalid`] listing every problem,
/// structural ones first, then the rules in element order, e.g.
/// `alert/scope: missing; CAP 1.2 §3.2.1 requires it`.
pub fn check(xml: &str) -> Result<CapAlert, CapErrors> {
    let (version, root) = read_tree(xml)?;
    let mut problems = Vec::new();
    let alert = Builder {
        ns: version.namespace(),
        problems: &mut problems,
    }
    .alert(version, &root);
    validate(&alert, &mut problems);
    if problems.is_empty() {
        Ok(alert)
    } else {
        Err(CapErrors::Invalid(problems))
    }
}

trait ValueList: FromStr {
    fn allowed() -> String;
}

macro_rules! value_lists {
    ($($t:ty),+) => { $(impl ValueList for $t { fn allowed() -> String { <$t>::list() } })+ };
}
value_lists!(
    CapStatus,
    MsgType,
    Scope,
    CapCategory,
    ResponseType,
    Urgency,
    Severity,
    Certainty
);

fn indexed(base: &str, name: &str, i: usize, n: usize) -> String {
    if n > 1 {
        format!("{base}/{name}[{}]", i + 1)
    } else {
        format!("{base}/{name}")
    }
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

struct Rules<'p> {
    out: &'p mut Vec<CapProblem>,
}

impl Rules<'_> {
    fn required<'v>(
        &mut self,
        v: &'v Option<String>,
        path: &str,
        section: &'static str,
    ) -> Option<&'v str> {
        match v {
            Some(s) => Some(s.trim()),
            None => {
                self.out.push(CapProblem::Missing {
                    path: path.to_owned(),
                    section,
                });
                None
            }
        }
    }

    fn id_like(&mut self, v: &Option<String>, path: &str) {
        if let Some(s) = self.required(v, path, "3.2.1") {
            if s.is_empty() {
                self.out.push(CapProblem::Empty {
                    path: path.to_owned(),
                });
            } else if s
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&'))
            {
                self.out.push(CapProblem::BadIdChar {
                    path: path.to_owned(),
                    value: clip(s),
                });
            }
        }
    }

    fn listed<T: ValueList>(&mut self, v: Option<&str>, path: &str) {
        if let Some(s) = v {
            if s.parse::<T>().is_err() {
                self.out.push(CapProblem::NotInList {
                    path: path.to_owned(),
                    value: clip(s),
                    allowed: T::allowed(),
                });
            }
        }
    }

    fn datetime(&mut self, v: Option<&str>, path: &str) {
        if let Some(s) = v {
            if parse_cap_datetime(s).is_none() {
                self.out.push(CapProblem::BadDateTime {
                    path: path.to_owned(),
                    value: clip(s),
                });
            }
        }
    }

    fn pairs(&mut self, values: &[CapValue], base: &str, name: &str, section: &'static str) {
        for (k, v) in values.iter().enumerate() {
            let p = indexed(base, name, k, values.len());
            self.required(&v.value_name, &format!("{p}/valueName"), section);
            self.required(&v.value, &format!("{p}/value"), section);
        }
    }

    fn alert(&mut self, a: &CapAlert) {
        const S: &str = "3.2.1";
        self.id_like(&a.identifier, "alert/identifier");
        self.id_like(&a.sender, "alert/sender");
        let sent = self.required(&a.sent, "alert/sent", S);
        self.datetime(sent, "alert/sent");
        let status = self.required(&a.status, "alert/status", S);
        self.listed::<CapStatus>(status, "alert/status");
        let msg_type = self.required(&a.msg_type, "alert/msgType", S);
        self.listed::<MsgType>(msg_type, "alert/msgType");
        let scope = self.required(&a.scope, "alert/scope", S);
        self.listed::<Scope>(scope, "alert/scope");
        match a.scope() {
            Some(Scope::Restricted) if blank(&a.restriction) => {
                self.out.push(CapProblem::ScopeNeeds {
                    path: "alert/restriction".into(),
                    scope: "Restricted",
                })
            }
            Some(Scope::Private) if blank(&a.addresses) => self.out.push(CapProblem::ScopeNeeds {
                path: "alert/addresses".into(),
                scope: "Private",
            }),
            _ => {}
        }
        if let Some(ad) = &a.addresses {
            if split_addresses(ad).is_none() {
                self.out.push(CapProblem::UnclosedQuote { value: clip(ad) });
            }
        }
        if let Some(r) = &a.references {
            for entry in r.split_whitespace() {
                if parse_reference(entry).is_none() {
                    let parts: Vec<&str> = entry.split(',').collect();
                    let shaped = parts.len() == 3 && parts.iter().take(2).all(|p| !p.is_empty());
                    self.out.push(if shaped {
                        CapProblem::BadReferenceSent {
                            entry: entry.to_owned(),
                        }
                    } else {
                        CapProblem::BadReference {
                            entry: entry.to_owned(),
                        }
                    });
                }
            }
        }
        for (k, info) in a.info.iter().enumerate() {
            self.info(info, &indexed("alert", "info", k, a.info.len()));
        }
    }

    fn info(&mut self, i: &CapInfo, path: &str) {
        const S: &str = "3.2.2";
        if let Some(l) = trimmed(&i.language) {
            if !is_language_tag(l) {
                self.out.push(CapProblem::BadLanguage {
                    path: format!("{path}/language"),
                    value: clip(l),
                });
            }
        }
        if i.category.is_empty() {
            self.out.push(CapProblem::Missing {
                path: format!("{path}/category"),
                section: S,
            });
        }
        for (k, c) in i.category.iter().enumerate() {
            let p = indexed(path, "category", k, i.category.len());
            self.listed::<CapCategory>(Some(c.trim()), &p);
        }
        self.required(&i.event, &format!("{path}/event"), S);
        for (k, r) in i.response_type.iter().enumerate() {
            let p = indexed(path, "responseType", k, i.response_type.len());
            self.listed::<ResponseType>(Some(r.trim()), &p);
        }
        let p = format!("{path}/urgency");
        let v = self.required(&i.urgency, &p, S);
        self.listed::<Urgency>(v, &p);
        let p = format!("{path}/severity");
        let v = self.required(&i.severity, &p, S);
        self.listed::<Severity>(v, &p);
        let p = format!("{path}/certainty");
        let v = self.required(&i.certainty, &p, S);
        self.listed::<Certainty>(v, &p);
        self.pairs(&i.event_code, path, "eventCode", S);
        self.datetime(trimmed(&i.effective), &format!("{path}/effective"));
        self.datetime(trimmed(&i.onset), &format!("{path}/onset"));
        self.datetime(trimmed(&i.expires), &format!("{path}/expires"));
        self.pairs(&i.parameter, path, "parameter", S);
        for (k, r) in i.resource.iter().enumerate() {
            let p = indexed(path, "resource", k, i.resource.len());
            self.required(&r.resource_desc, &format!("{p}/resourceDesc"), "3.2.3");
            self.required(&r.mime_type, &format!("{p}/mimeType"), "3.2.3");
            if let Some(s) = trimmed(&r.size) {
                if !is_integer(s) {
                    self.out.push(CapProblem::BadInteger {
                        path: format!("{p}/size"),
                        value: clip(s),
                    });
                }
            }
        }
        for (k, a) in i.area.iter().enumerate() {
            self.area(a, &indexed(path, "area", k, i.area.len()));
        }
    }

    fn area(&mut self, a: &CapArea, path: &str) {
        const S: &str = "3.2.4";
        self.required(&a.area_desc, &format!("{path}/areaDesc"), S);
        for (k, poly) in a.polygon.iter().enumerate() {
            let p = indexed(path, "polygon", k, a.polygon.len());
            let mut points = Vec::new();
            let mut ok = true;
            for pair in poly.split_whitespace() {
                match parse_point(pair) {
                    Some(pt) => points.push(pt),
                    None => {
                        ok = false;
                        self.out.push(CapProblem::BadPoint {
                            path: p.clone(),
                            value: clip(pair),
                        });
                    }
                }
            }
            if !ok {
                continue;
            }
            if points.len() < 4 {
                self.out.push(CapProblem::PolygonTooShort {
                    path: p,
                    count: points.len(),
                });
            } else if points.first() != points.last() {
                self.out.push(CapProblem::PolygonNotClosed { path: p });
            }
        }
        for (k, circle) in a.circle.iter().enumerate() {
            let p = indexed(path, "circle", k, a.circle.len());
            if parse_circle(circle).is_none() {
                self.out.push(CapProblem::BadCircle {
                    path: p,
                    value: clip(circle.trim()),
                });
            }
        }
        self.pairs(&a.geocode, path, "geocode", S);
        for (name, v) in [("altitude", &a.altitude), ("ceiling", &a.ceiling)] {
            if let Some(s) = trimmed(v) {
                if !is_decimal(s) {
                    self.out.push(CapProblem::BadDecimal {
                        path: format!("{path}/{name}"),
                        value: clip(s),
                    });
                }
            }
        }
        if a.ceiling.is_some() && a.altitude.is_none() {
            self.out.push(CapProblem::CeilingWithoutAltitude {
                path: format!("{path}/ceiling"),
            });
        }
    }
}

fn validate(a: &CapAlert, out: &mut Vec<CapProblem>) {
    Rules { out }.alert(a);
}

/// `xs:language`: `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`.
fn is_language_tag(s: &str) -> bool {
    s.split('-').enumerate().all(|(i, part)| {
        (1..=8).contains(&part.len())
            && part.chars().all(|c| {
                if i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
    })
}

/// `xs:integer`: `[+-]?\d+`.
fn is_integer(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// `xs:decimal`: `[+-]?(\d+(\.\d*)?|\.\d+)`.
fn is_decimal(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = d.split_once('.').unwrap_or((d, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A WGS 84 `lat,lon` pair (CAP 1.2 §3.2.4), both decimal and in range.
fn parse_point(s: &str) -> Option<(f64, f64)> {
    let (lat, lon) = s.split_once(',')?;
    if !is_decimal(lat) || !is_decimal(lon) {
        return None;
    }
    let (lat, lon) = (lat.parse::<f64>().ok()?, lon.parse::<f64>().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// A circle `lat,lon radius` (CAP 1.2 §3.2.4), radius in km, 0 or more.
fn parse_circle(s: &str) -> Option<((f64, f64), f64)> {
    let mut parts = s.split_whitespace();
    let (Some(point), Some(radius), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let point = parse_point(point)?;
    if !is_decimal(radius) {
        return None;
    }
    let r = radius.parse::<f64>().ok()?;
    (r >= 0.0).then_some((point, r))
}

// ---------------------------------------------------------------------------------------------
// Filet -> CAP
// ---------------------------------------------------------------------------------------------

/// `valueName` of the Filet parameters (CAP 1.2 §3.2.2 `parameter`).
const P_CATEGORY: &str = "filet:category";
const P_KIND: &str = "filet:kind";
const P_REFERENCE: &str = "filet:subject.reference";
const P_GIVEN_NAME: &str = "filet:subject.given_name";
const P_AGE: &str = "filet:subject.age";
const P_DESCRIPTION: &str = "filet:subject.description";
const P_AT: &str = "filet:last_seen.at";
const P_PLACE: &str = "filet:last_seen.place";
const P_GEO: &str = "filet:last_seen.geo";
const P_NOTE: &str = "filet:note";
const FILET_PARAMETERS: [&str; 10] = [
    P_CATEGORY,
    P_KIND,
    P_REFERENCE,
    P_GIVEN_NAME,
    P_AGE,
    P_DESCRIPTION,
    P_AT,
    P_PLACE,
    P_GEO,
    P_NOTE,
];
/// Parameters that say the same thing in every language: two info blocks that differ on one
/// of these conflict.
const LANGUAGE_NEUTRAL: [&str; 6] = [P_CATEGORY, P_KIND, P_REFERENCE, P_AGE, P_AT, P_GEO];

/// What [`export`] needs: an alert as one recipient unit sees it (or in full), and whom the
/// CAP message is addressed to.
#[derive(Debug, Clone, Copy)]
pub struct ExportInput<'a> {
    /// Id, kind, references, category, status, risk, language, sender, times.
    pub envelope: &'a Envelope,
    /// The content; fields left out by redaction are absent in the CAP document too.
    pub content: &'a Content,
    /// The note of a `located`, the reason of a `cancel`.
    pub note: Option<&'a str>,
    /// The recipient units, written to `<addresses>`; at least one, or the document fails
    /// [`check`] (scope `Private` needs addresses).
    pub recipients: &'a [UnitRef],
    /// The sent (received) time of the referenced alert, for `<references>`; when `None`,
    /// the time inside the referenced alert id (the relay's receive time) is used.
    pub references_sent: Option<Timestamp>,
}

/// The CAP `category` written for a Filet category.
pub fn cap_category(c: Category) -> CapCategory {
    match c {
        Category::Runaway => CapCategory::Rescue,
        Category::Sighting => CapCategory::Safety,
        Category::ExploitationRisk => CapCategory::Security,
    }
}

/// The CAP `urgency`, `severity` and `certainty` written for a Filet risk.
pub fn cap_risk(r: Risk) -> (Urgency, Severity, Certainty) {
    match r {
        Risk::Extreme => (Urgency::Immediate, Severity::Extreme, Certainty::Observed),
        Risk::Severe => (Urgency::Immediate, Severity::Severe, Certainty::Likely),
        Risk::Moderate => (Urgency::Expected, Severity::Moderate, Certainty::Possible),
        Risk::Minor => (Urgency::Expected, Severity::Minor, Certainty::Possible),
    }
}

/// The Filet risk read back from a CAP `severity`; `None` for `Unknown`.
pub fn filet_risk(s: Severity) -> Option<Risk> {
    match s {
        Severity::Extreme => Some(Risk::Extreme),
        Severity::Severe => Some(Risk::Severe),
        Severity::Moderate => Some(Risk::Moderate),
        Severity::Minor => Some(Risk::Minor),
        Severity::Unknown => None,
    }
}

fn headline(e: &Envelope) -> String {
    use Category::*;
    use Language::*;
    let status = match (e.status, e.language) {
        (Status::Actual, _) => "",
        (Status::Exercise, FrCa) => "EXERCICE — ",
        (Status::Exercise, EnCa) => "EXERCISE — ",
        (Status::Test, _) => "TEST — ",
    };
    let kind = match (e.kind, e.language) {
        (Kind::Alert, _) => "",
        (Kind::Update, FrCa) => "Mise à jour — ",
        (Kind::Update, EnCa) => "Update — ",
        (Kind::Located, FrCa) => "Retrouvé — ",
        (Kind::Located, EnCa) => "Located — ",
        (Kind::Cancel, FrCa) => "Annulé — ",
        (Kind::Cancel, EnCa) => "Cancelled — ",
    };
    let what = match (e.category, e.language) {
        (Runaway, FrCa) => "Fugue d'un jeune à risque",
        (Runaway, EnCa) => "Runaway youth at risk",
        (Sighting, FrCa) => "Jeune aperçu",
        (Sighting, EnCa) => "Youth sighted",
        (ExploitationRisk, FrCa) => "Risque d'exploitation d'un jeune",
        (ExploitationRisk, EnCa) => "Youth at risk of exploitation",
    };
    format!("{status}{kind}{what}")
}

/// Escapes text for XML content: the five special characters as entities, tab, newline and
/// carriage return as character references (so that no parser normalizes them), and any
/// character XML 1.0 cannot hold at all as U+FFFD.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

struct XmlOut {
    out: String,
    depth: usize,
}

impl XmlOut {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
    fn open(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&escape_text(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    fn parameter(&mut self, name: &str, value: &str) {
        self.open("parameter");
        self.leaf("valueName", name);
        self.leaf("value", value);
        self.close("parameter");
    }
}

/// Writes a Filet alert as a CAP 1.2 `<alert>` document (UTF-8, namespace [`CAP_1_2_NS`]),
/// following the table of `docs/cap.md`: scope `Private` with the recipients in
/// `<addresses>`, one `<info>` in the alert's language, the content fields as `filet:*`
/// parameters (absent fields, e.g. left out by redaction, are not written), and an `<area>`
/// when the last-seen place or position is present. Every text is XML-escaped.
///
/// CAP date-times have whole seconds: `sent` and `expires` drop the milliseconds
/// (`last_seen.at`, a parameter, keeps them).
pub fn export(x: &ExportInput<'_>) -> String {
    let e = x.envelope;
    let c = x.content;
    let mut w = XmlOut {
        out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        depth: 0,
    };
    w.out.push_str(&format!("<alert xmlns=\"{CAP_1_2_NS}\">\n"));
    w.depth = 1;
    w.leaf("identifier", &e.id.to_string());
    w.leaf("sender", &e.sender.to_string());
    w.leaf("sent", &format_cap_datetime(e.received_at));
    let status = match e.status {
        Status::Actual => CapStatus::Actual,
        Status::Exercise => CapStatus::Exercise,
        Status::Test => CapStatus::Test,
    };
    w.leaf("status", status.as_str());
    let msg_type = match e.kind {
        Kind::Alert => MsgType::Alert,
        Kind::Update | Kind::Located => MsgType::Update,
        Kind::Cancel => MsgType::Cancel,
    };
    w.leaf("msgType", msg_type.as_str());
    w.leaf("scope", Scope::Private.as_str());
    let addresses: Vec<String> = x.recipients.iter().map(|u| u.to_string()).collect();
    w.leaf("addresses", &addresses.join(" "));
    if let Some(r) = e.references {
        // The relay's receive time is the id's time (see `id`), to the millisecond.
        let sent = x
            .references_sent
            .unwrap_or(Timestamp(i64::try_from(r.unix_ms()).unwrap_or(i64::MAX)));
        w.leaf(
            "references",
            &format!("{},{},{}", e.sender, r, format_cap_datetime(sent)),
        );
    }
    w.open("info");
    w.leaf("language", e.language.as_str());
    w.leaf("category", cap_category(e.category).as_str());
    w.leaf("event", e.category.as_str());
    if e.kind == Kind::Located {
        w.leaf("responseType", ResponseType::AllClear.as_str());
    }
    let (urgency, severity, certainty) = cap_risk(e.risk);
    w.leaf("urgency", urgency.as_str());
    w.leaf("severity", severity.as_str());
    w.leaf("certainty", certainty.as_str());
    w.leaf("expires", &format_cap_datetime(e.expires_at));
    w.leaf("senderName", &e.sender.to_string());
    w.leaf("headline", &headline(e));
    if let Some(i) = &c.instructions {
        w.leaf("instruction", i);
    }
    if let Some(contact) = &c.contact {
        w.leaf("contact", contact);
    }
    w.parameter(P_CATEGORY, e.category.as_str());
    w.parameter(P_KIND, e.kind.as_str());
    let s = &c.subject;
    let ls = &c.last_seen;
    let texts = [(P_REFERENCE, &s.reference), (P_GIVEN_NAME, &s.given_name)];
    for (name, v) in texts {
        if let Some(v) = v {
            w.parameter(name, v);
        }
    }
    if let Some(age) = s.age {
        w.parameter(P_AGE, &age.to_string());
    }
    if let Some(d) = &s.description {
        w.parameter(P_DESCRIPTION, d);
    }
    if let Some(at) = ls.at {
        w.parameter(P_AT, &at.to_string());
    }
    if let Some(p) = &ls.place {
        w.parameter(P_PLACE, p);
    }
    if let Some(Geo(lat, lon)) = ls.geo {
        w.parameter(P_GEO, &format!("{lat},{lon}"));
    }
    if let Some(n) = x.note {
        w.parameter(P_NOTE, n);
    }
    if ls.place.is_some() || ls.geo.is_some() {
        w.open("area");
        let desc = match (&ls.place, e.language) {
            (Some(p), _) => p.as_str(),
            (None, Language::FrCa) => "Dernier lieu connu",
            (None, Language::EnCa) => "Last known location",
        };
        w.leaf("areaDesc", desc);
        if let Some(Geo(lat, lon)) = ls.geo {
            w.leaf("circle", &format!("{lat},{lon} 0"));
        }
        w.close("area");
    }
    w.close("info");
    w.close("alert");
    w.out
}

// ---------------------------------------------------------------------------------------------
// CAP -> Filet
// ---------------------------------------------------------------------------------------------

/// A CAP alert read as a Filet draft by [`import`].
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The draft to post: kind, references, category, status, risk, language, expiry,
    /// content and note from the CAP message, `to` = the recipient units. Not yet validated
    /// (that needs the relay's clock): the relay validates it as any post.
    pub draft: AlertDraft,
    /// The CAP `identifier`.
    pub identifier: String,
    /// The CAP `sender`.
    pub sender: String,
    /// The CAP `sent`, to the second.
    pub sent: Timestamp,
    /// The units of `<addresses>`, in order, without repeats.
    pub recipients: Vec<UnitRef>,
}

/// Why [`import`] refused a CAP document. Nothing is posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapRefusal {
    /// The document is unreadable or breaks CAP 1.2 ([`check`]).
    #[error("not a valid CAP 1.2 alert: {0}")]
    Invalid(#[from] CapErrors),
    /// A required element is absent (cannot follow a passed [`check`]; kept so that no
    /// input can panic).
    #[error("{path}: missing")]
    Missing {
        /// The element path.
        path: &'static str,
    },
    /// scope `Public`.
    #[error("alert/scope: a public CAP alert cannot become a restricted Filet alert")]
    PublicScope,
    /// scope `Restricted`.
    #[error("alert/scope: Restricted names a rule (<restriction>), not recipients; Filet imports only scope Private with <addresses> naming its units")]
    RestrictedScope,
    /// An address that is not a Filet unit.
    #[error("alert/addresses: {address:?} is not a Filet unit (PARTY/UNIT, e.g. DPJ/RTS)")]
    NotAUnit {
        /// The address.
        address: String,
    },
    /// msgType `Ack` or `Error`.
    #[error("alert/msgType: {msg_type} has no Filet kind; Filet imports Alert, Update and Cancel")]
    MsgType {
        /// The msgType.
        msg_type: MsgType,
    },
    /// status `System` or `Draft`.
    #[error("alert/status: {status} has no Filet status; Filet imports Actual, Exercise and Test")]
    Status {
        /// The status.
        status: CapStatus,
    },
    /// No info block.
    #[error("alert/info: missing; a Filet alert needs an info block in fr-CA or en-CA")]
    NoInfo,
    /// No info block in fr-CA or en-CA.
    #[error("alert/info/language: no info block is in fr-CA or en-CA (found {languages})")]
    NoFiletLanguage {
        /// The languages found, e.g. `en-US, es-US`.
        languages: String,
    },
    /// Two info blocks in the same Filet language.
    #[error("alert/info/language: {language} is the language of {count} info blocks; Filet takes one per language")]
    SameLanguageTwice {
        /// The language.
        language: Language,
        /// How many blocks.
        count: usize,
    },
    /// The fr-CA and en-CA blocks disagree on a language-neutral field.
    #[error("alert/info: the {chosen} and {other} blocks disagree on {what}")]
    InfoConflict {
        /// The block taken.
        chosen: Language,
        /// The other block.
        other: Language,
        /// The parameter (or `severity`) they disagree on.
        what: String,
    },
    /// Neither `filet:category` nor `event` names a Filet category.
    #[error("alert/info/event: {event:?} is not a Filet category (runaway, sighting, exploitation-risk) and no filet:category parameter names one")]
    UnknownCategory {
        /// The event text.
        event: String,
    },
    /// `filet:category` and `event` name different Filet categories.
    #[error("alert/info/event: {event} disagrees with the parameter filet:category {parameter}")]
    CategoryConflict {
        /// From `event`.
        event: Category,
        /// From `filet:category`.
        parameter: Category,
    },
    /// A `filet:*` parameter whose value cannot be read.
    #[error("alert/info/parameter {name}: {value:?} is not {expected}")]
    BadParameter {
        /// The parameter name.
        name: &'static str,
        /// The value found.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A `filet:*` parameter given twice.
    #[error("alert/info/parameter {name}: repeated; a Filet field has one value")]
    RepeatedParameter {
        /// The parameter name.
        name: String,
    },
    /// A `filet:*` parameter that is not a Filet field.
    #[error("alert/info/parameter {name}: not a Filet field")]
    UnknownParameter {
        /// The parameter name.
        name: String,
    },
    /// severity `Unknown`.
    #[error("alert/info/severity: Unknown has no Filet risk (Extreme, Severe, Moderate, Minor map to extreme, severe, moderate, minor)")]
    UnknownSeverity,
    /// `filet:kind` does not go with `msgType`.
    #[error("alert/info/parameter filet:kind: {kind} does not go with msgType {msg_type}")]
    KindConflict {
        /// From `filet:kind`.
        kind: Kind,
        /// The msgType.
        msg_type: MsgType,
    },
    /// msgType `Alert` without `filet:subject.reference`.
    #[error("alert/info/parameter filet:subject.reference: missing; a new alert (msgType Alert) needs the originating file number")]
    MissingReference,
    /// Update or Cancel without `references`.
    #[error("alert/references: missing; msgType {msg_type} must name the alert it refers to")]
    NoReferences {
        /// The msgType.
        msg_type: MsgType,
    },
    /// More than one referenced message.
    #[error("alert/references: {count} messages; a Filet {kind} refers to exactly one alert")]
    TooManyReferences {
        /// How many triples.
        count: usize,
        /// The kind.
        kind: Kind,
    },
    /// msgType `Alert` with `references`.
    #[error("alert/references: msgType Alert refers to earlier messages; a new Filet alert refers to none")]
    NewAlertWithReferences,
    /// The referenced identifier is not a Filet alert id.
    #[error("alert/references: identifier {identifier:?} is not a Filet alert id (26 characters of Crockford base32)")]
    NotAnAlertId {
        /// The identifier.
        identifier: String,
    },
}

fn filet_language(tag: &str) -> Option<Language> {
    Language::ALL
        .iter()
        .copied()
        .find(|l| l.as_str().eq_ignore_ascii_case(tag))
}

/// The Filet parameters of an info block, by name; refuses repeats and unknown `filet:*`.
fn filet_parameters(info: &CapInfo) -> Result<BTreeMap<&'static str, &str>, CapRefusal> {
    let mut out = BTreeMap::new();
    for p in &info.parameter {
        let Some(name) = trimmed(&p.value_name) else {
            continue;
        };
        if !name.starts_with("filet:") {
            continue;
        }
        let Some(&known) = FILET_PARAMETERS.iter().find(|k| **k == name) else {
            return Err(CapRefusal::UnknownParameter { name: clip(name) });
        };
        if out
            .insert(known, p.value.as_deref().unwrap_or(""))
            .is_some()
        {
            return Err(CapRefusal::RepeatedParameter { name: clip(name) });
        }
    }
    Ok(out)
}

/// Picks the info block to import: fr-CA if there is one, else en-CA; every other block in
/// fr-CA or en-CA must agree with it on the language-neutral fields and the severity.
fn choose_info(a: &CapAlert) -> Result<(Language, &CapInfo), CapRefusal> {
    if a.info.is_empty() {
        return Err(CapRefusal::NoInfo);
    }
    let mut candidates: Vec<(Language, &CapInfo)> = Vec::new();
    for i in &a.info {
        if let Some(l) = filet_language(i.language_or_default()) {
            candidates.push((l, i));
        }
    }
    for l in Language::ALL {
        let count = candidates.iter().filter(|(c, _)| c == l).count();
        if count > 1 {
            return Err(CapRefusal::SameLanguageTwice {
                language: *l,
                count,
            });
        }
    }
    let Some(&(chosen, info)) = candidates
        .iter()
        .find(|(l, _)| *l == Language::FrCa)
        .or_else(|| candidates.first())
    else {
        let languages: Vec<&str> = a.info.iter().map(|i| i.language_or_default()).collect();
        return Err(CapRefusal::NoFiletLanguage {
            languages: languages.join(", "),
        });
    };
    let mine = filet_parameters(info)?;
    for &(other, o) in &candidates {
        if other == chosen {
            continue;
        }
        let theirs = filet_parameters(o)?;
        for name in LANGUAGE_NEUTRAL {
            if mine.get(name) != theirs.get(name) {
                return Err(CapRefusal::InfoConflict {
                    chosen,
                    other,
                    what: name.to_owned(),
                });
            }
        }
        if info.severity() != o.severity() {
            return Err(CapRefusal::InfoConflict {
                chosen,
                other,
                what: "severity".to_owned(),
            });
        }
    }
    Ok((chosen, info))
}

/// Reads a CAP 1.2 document as a Filet alert draft, following the table of `docs/cap.md`.
/// Only scope `Private` alerts whose `<addresses>` are Filet units import; the info block in
/// fr-CA (else en-CA) is read; the Filet fields come from the `filet:*` parameters,
/// `<instruction>` and `<contact>` (`<area>`, `<description>` and other parameters are
/// not imported). `draft.to` is set to the recipient units, so that posting the draft
/// discloses it to no one the CAP message did not address.
///
/// # Errors
/// [`CapRefusal`], naming the element and the reason: not valid CAP 1.2, scope `Public` or
/// `Restricted`, msgType `Ack`/`Error`, status `System`/`Draft`, no usable info block,
/// conflicting info blocks, no Filet category, an `Alert` without
/// `filet:subject.reference`, references missing or not a Filet alert id, an unreadable
/// parameter.
pub fn import(xml: &str) -> Result<Imported, CapRefusal> {
    let a = check(xml)?;
    let missing = |path| CapRefusal::Missing { path };
    match a.scope().ok_or(missing("alert/scope"))? {
        Scope::Private => {}
        Scope::Public => return Err(CapRefusal::PublicScope),
        Scope::Restricted => return Err(CapRefusal::RestrictedScope),
    }
    let msg_type = a.msg_type().ok_or(missing("alert/msgType"))?;
    if matches!(msg_type, MsgType::Ack | MsgType::Error) {
        return Err(CapRefusal::MsgType { msg_type });
    }
    let status = match a.status().ok_or(missing("alert/status"))? {
        CapStatus::Actual => Status::Actual,
        CapStatus::Exercise => Status::Exercise,
        CapStatus::Test => Status::Test,
        status @ (CapStatus::System | CapStatus::Draft) => {
            return Err(CapRefusal::Status { status })
        }
    };
    let mut recipients: Vec<UnitRef> = Vec::new();
    for address in a.addresses().ok_or(missing("alert/addresses"))? {
        let unit: UnitRef = address
            .parse()
            .map_err(|_| CapRefusal::NotAUnit { address })?;
        if !recipients.contains(&unit) {
            recipients.push(unit);
        }
    }
    let (language, info) = choose_info(&a)?;
    let params = filet_parameters(info)?;

    // Kind: msgType, refined by filet:kind (or, without it, responseType AllClear).
    let kind = match params.get(P_KIND) {
        Some(v) => {
            let kind: Kind = v.trim().parse().map_err(|_| CapRefusal::BadParameter {
                name: P_KIND,
                value: clip(v),
                expected: "one of alert, update, located, cancel",
            })?;
            let fits = matches!(
                (kind, msg_type),
                (Kind::Alert, MsgType::Alert)
                    | (Kind::Update | Kind::Located, MsgType::Update)
                    | (Kind::Cancel, MsgType::Cancel)
            );
            if !fits {
                return Err(CapRefusal::KindConflict { kind, msg_type });
            }
            kind
        }
        None => match msg_type {
            MsgType::Update if info.response_types().contains(&ResponseType::AllClear) => {
                Kind::Located
            }
            MsgType::Update => Kind::Update,
            MsgType::Cancel => Kind::Cancel,
            _ => Kind::Alert,
        },
    };

    // Category: filet:category, else the event text; both must agree when both name one.
    let event = info.event.as_deref().unwrap_or("").trim();
    let from_event = event.parse::<Category>().ok();
    let category = match params.get(P_CATEGORY) {
        Some(v) => {
            let c: Category = v.trim().parse().map_err(|_| CapRefusal::BadParameter {
                name: P_CATEGORY,
                value: clip(v),
                expected: "one of runaway, sighting, exploitation-risk",
            })?;
            if let Some(e) = from_event.filter(|e| *e != c) {
                return Err(CapRefusal::CategoryConflict {
                    event: e,
                    parameter: c,
                });
            }
            c
        }
        None => from_event.ok_or_else(|| CapRefusal::UnknownCategory {
            event: event.to_owned(),
        })?,
    };
    let risk = filet_risk(info.severity().ok_or(missing("alert/info/severity"))?)
        .ok_or(CapRefusal::UnknownSeverity)?;

    // References: exactly one triple for update, located and cancel; none for a new alert.
    let triples = a.references().ok_or(missing("alert/references"))?;
    let references =
        if kind == Kind::Alert {
            if !triples.is_empty() {
                return Err(CapRefusal::NewAlertWithReferences);
            }
            None
        } else {
            match triples.as_slice() {
                [] => return Err(CapRefusal::NoReferences { msg_type }),
                [one] => Some(one.identifier.parse::<AlertId>().map_err(|_| {
                    CapRefusal::NotAnAlertId {
                        identifier: one.identifier.clone(),
                    }
                })?),
                more => {
                    return Err(CapRefusal::TooManyReferences {
                        count: more.len(),
                        kind,
                    })
                }
            }
        };

    let text = |name: &str| params.get(name).map(|v| (*v).to_owned());
    let age = match params.get(P_AGE) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u8>()
                .map_err(|_| CapRefusal::BadParameter {
                    name: P_AGE,
                    value: clip(v),
                    expected: "an age in whole years",
                })?,
        ),
    };
    let at = match params.get(P_AT) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<Timestamp>()
                .map_err(|_| CapRefusal::BadParameter {
                    name: P_AT,
                    value: clip(v),
                    expected: "an RFC 3339 time (e.g. 2026-11-28T22:40:00.000Z)",
                })?,
        ),
    };
    let geo = match params.get(P_GEO) {
        None => None,
        Some(v) => {
            let bad = || CapRefusal::BadParameter {
                name: P_GEO,
                value: clip(v),
                expected: "latitude,longitude in decimal degrees",
            };
            let (lat, lon) = v.trim().split_once(',').ok_or_else(bad)?;
            let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
            let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
            if !(lat.is_finite() && lon.is_finite()) {
                return Err(bad());
            }
            Some(Geo(lat, lon))
        }
    };
    let reference = text(P_REFERENCE);
    if kind == Kind::Alert && reference.is_none() {
        return Err(CapRefusal::MissingReference);
    }
    let content = Content {
        subject: Subject {
            reference,
            given_name: text(P_GIVEN_NAME),
            age,
            description: text(P_DESCRIPTION),
        },
        last_seen: LastSeen {
            at,
            place: text(P_PLACE),
            geo,
        },
        instructions: info.instruction.clone(),
        contact: info.contact.clone(),
    };
    let note = text(P_NOTE).or_else(|| a.note.clone());
    let expires_at = trimmed(&info.expires).and_then(parse_cap_datetime);
    let identifier = a
        .identifier
        .as_deref()
        .map(str::trim)
        .ok_or(missing("alert/identifier"))?
        .to_owned();
    let sender = a
        .sender
        .as_deref()
        .map(str::trim)
        .ok_or(missing("alert/sender"))?
        .to_owned();
    let sent = a.sent_time().ok_or(missing("alert/sent"))?;
    Ok(Imported {
        draft: AlertDraft {
            kind,
            references,
            category,
            status,
            risk,
            language,
            expires_at,
            content,
            note,
            to: recipients.iter().cloned().map(Selector::Unit).collect(),
        },
        identifier,
        sender,
        sent,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reads_cap_date_times_strictly() {
        assert_eq!(
            parse_cap_datetime("2003-04-02T14:39:01-05:00"),
            Some(ts("2003-04-02T19:39:01Z"))
        );
        assert_eq!(
            parse_cap_datetime("2012-05-02T23:21:04-00:00"),
            Some(ts("2012-05-02T23:21:04Z"))
        );
        assert_eq!(
            parse_cap_datetime("2012-05-02T23:21:04+00:00"),
            Some(ts("2012-05-02T23:21:04Z"))
        );
        assert_eq!(
            parse_cap_datetime("2026-01-01T05:30:00+05:30"),
            Some(ts("2026-01-01T00:00:00Z"))
        );
        for bad in [
            "2012-05-02T23:21:04Z",
            "2012-05-02T23:21:04.5-00:00",
            "2012-05-02 23:21:04-00:00",
            "2012-02-30T23:21:04-00:00",
            "2012-05-02T24:00:00-00:00",
            "2012-05-02T23:21:60-00:00",
            "2012-05-02T23:21:04-15:00",
            "2012-05-02T23:21:04-05:60",
            "2012-05-02T23:21:04,05:00",
            "２012-05-02T23:21:04-00:00",
            "",
        ] {
            assert_eq!(parse_cap_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_utc_as_minus_zero_and_drops_milliseconds() {
        assert_eq!(
            format_cap_datetime(ts("2026-11-28T22:40:00.999Z")),
            "2026-11-28T22:40:00-00:00"
        );
        // Before 1970 the milliseconds still round toward the past.
        assert_eq!(
            format_cap_datetime(Timestamp(-1)),
            "1969-12-31T23:59:59-00:00"
        );
        assert_eq!(
            format_cap_datetime(Timestamp(i64::MAX)),
            "9999-12-31T23:59:59-00:00"
        );
        assert_eq!(
            format_cap_datetime(Timestamp(i64::MIN)),
            "0000-01-01T00:00:00-00:00"
        );
        let t = ts("2026-11-28T22:40:00Z");
        assert_eq!(parse_cap_datetime(&format_cap_datetime(t)), Some(t));
    }

    #[test]
    fn splits_addresses_with_quotes() {
        assert_eq!(
            split_addresses(" DPJ/RTS  CJQ/PIVOT "),
            Some(vec!["DPJ/RTS".to_owned(), "CJQ/PIVOT".to_owned()])
        );
        assert_eq!(
            split_addresses(r#"a "b c" d"#),
            Some(vec!["a".to_owned(), "b c".to_owned(), "d".to_owned()])
        );
        assert_eq!(split_addresses(""), Some(vec![]));
        assert_eq!(split_addresses(r#"a "b c"#), None);
    }

    #[test]
    fn reads_reference_triples() {
        assert_eq!(
            parse_reference("a@b,ID.1,2003-06-11T20:30:00-07:00"),
            Some(CapReference {
                sender: "a@b".into(),
                identifier: "ID.1".into(),
                sent: ts("2003-06-12T03:30:00Z"),
            })
        );
        assert_eq!(parse_reference("a@b,ID.1"), None);
        assert_eq!(parse_reference("a@b,ID.1,2003-06-11T20:30:00Z"), None);
        assert_eq!(parse_reference("a,b,c,d"), None);
        assert_eq!(parse_reference(",ID,2003-06-11T20:30:00-07:00"), None);
    }

    #[test]
    fn number_and_tag_formats() {
        assert!(is_decimal("-12.5") && is_decimal("3.") && is_decimal(".5") && is_decimal("+7"));
        assert!(!is_decimal("") && !is_decimal(".") && !is_decimal("1e5") && !is_decimal("NaN"));
        assert!(is_integer("120") && is_integer("-1") && !is_integer("1.0") && !is_integer(""));
        assert!(is_language_tag("fr-CA") && is_language_tag("en") && is_language_tag("zh-Hant-TW"));
        assert!(!is_language_tag("fr_CA") && !is_language_tag("") && !is_language_tag("1a"));
        assert_eq!(parse_point("46.8123,-71.2345"), Some((46.8123, -71.2345)));
        assert_eq!(parse_point("91,0"), None);
        assert_eq!(parse_point("inf,0"), None);
        assert_eq!(
            parse_circle("32.9525,-115.5527 0"),
            Some(((32.9525, -115.5527), 0.0))
        );
        assert_eq!(parse_circle("32.9525,-115.5527 -1"), None);
        assert_eq!(parse_circle("32.9525,-115.5527"), None);
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape_text("a&b<c>d\"e'f\tg\nh\ri\u{1}j\u{FFFE}"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i\u{FFFD}j\u{FFFD}"
        );
    }

    #[test]
    fn value_lists_match_the_standard() {
        assert_eq!(CapStatus::list(), "Actual, Exercise, System, Test, Draft");
        assert_eq!(MsgType::list(), "Alert, Update, Cancel, Ack, Error");
        assert_eq!(Scope::list(), "Public, Restricted, Private");
        assert_eq!(
            CapCategory::list(),
            "Geo, Met, Safety, Security, Rescue, Fire, Health, Env, Transport, Infra, CBRNE, Other"
        );
        assert_eq!(
            ResponseType::list(),
            "Shelter, Evacuate, Prepare, Execute, Avoid, Monitor, Assess, AllClear, None"
        );
        assert_eq!(
            Urgency::list(),
            "Immediate, Expected, Future, Past, Unknown"
        );
        assert_eq!(
            Severity::list(),
            "Extreme, Severe, Moderate, Minor, Unknown"
        );
        assert_eq!(
            Certainty::list(),
            "Observed, Likely, Possible, Unlikely, Unknown"
        );
        assert_eq!("Soon".parse::<Urgency>(), Err(()));
        assert_eq!("immediate".parse::<Urgency>(), Err(()));
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(line_col("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nf", 7), (2, 4));
        // An offset inside a character is moved back to its start.
        assert_eq!(line_col("é", 1), (1, 1));
        assert_eq!(line_col("é", 99), (1, 2));
    }

    #[test]
    fn text_quoted_from_a_hostile_document_is_cut_in_the_error() {
        let long = "x".repeat(80_000);
        let doc = format!(
            "<alert xmlns=\"{CAP_1_2_NS}\"><{long}>v</{long}><status>{long}</status></alert>"
        );
        let e = check(&doc).err().unwrap().to_string();
        assert!(e.len() < 4_000, "{} bytes", e.len());
        assert!(e.contains("… (80000 characters)"), "{e}");
        let entity = format!("<alert xmlns=\"{CAP_1_2_NS}\">&{long};</alert>");
        let e = check(&entity).err().unwrap().to_string();
        assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..200]);
    }
}
