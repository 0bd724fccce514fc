//! CAP 1.2 support (`filet_proto::cap`): the public CAP files of `proto/tests/data/cap/` with the
//! outcomes of its SOURCE.md, the Filet -> CAP -> Filet round trip, import refusals, and
//! hostile inputs.
// Test code, helpers included: a panic is a test failure with a backtrace (see clippy.toml).
#![allow(clippy::unwrap_used)]

use filet_proto::alert::{AlertFile, Envelope, Geo, Language, LastSeen, Subject};
use filet_proto::cap::{
    self, check, export, import, parse, parse_bytes, CapAlert, CapError, CapErrors, CapProblem,
    CapReference, CapRefusal, CapVersion, ExportInput, MsgType, MAX_CAP_LEN, MAX_DEPTH,
};
use filet_proto::{
    AlertDraft, AlertId, Category, Content, Kind, Principal, Risk, Selector, Status, Timestamp,
    UnitRef,
};
use proptest::prelude::*;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cap/");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{CASES}{name}")).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn problems(xml: &str) -> Vec<String> {
    match check(xml) {
        Err(CapErrors::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The public CAP files
// ---------------------------------------------------------------------------------------------

#[test]
fn oasis_appendix_a1_passes_check_and_import_refuses_its_public_scope() {
    let xml = read("oasis-cap12-appendix-a1.xml");
    let a = check(&xml).unwrap();
    assert_eq!(a.version, CapVersion::V1_2);
    assert_eq!(a.identifier.as_deref(), Some("43b080713727"));
    assert_eq!(a.sender.as_deref(), Some("hsas@dhs.gov"));
    assert_eq!(a.sent_time(), Some(ts("2003-04-02T19:39:01Z")));
    assert_eq!(a.scope(), Some(cap::Scope::Public));
    assert_eq!(a.info.len(), 1);
    let i = &a.info[0];
    assert_eq!(i.category, vec!["Security"]);
    assert_eq!(i.severity(), Some(cap::Severity::Severe));
    assert_eq!(i.parameters("HSAS").collect::<Vec<_>>(), vec!["ORANGE"]);
    assert_eq!(i.resource[0].mime_type.as_deref(), Some("image/gif"));
    assert_eq!(
        i.area[0].area_desc.as_deref(),
        Some("U.S. nationwide and interests worldwide")
    );
    // A.1 is a public sample: the relay of restricted alerts refuses it with that reason.
    let e = import(&xml).unwrap_err();
    assert_eq!(e, CapRefusal::PublicScope);
    assert_eq!(
        e.to_string(),
        "alert/scope: a public CAP alert cannot become a restricted Filet alert"
    );
}

#[test]
fn oasis_appendix_a2_passes_check_with_its_polygon_and_geocodes() {
    let a = check(&read("oasis-cap12-appendix-a2.xml")).unwrap();
    let i = &a.info[0];
    assert_eq!(i.response_types(), vec![cap::ResponseType::Shelter]);
    assert_eq!(i.expires.as_deref(), Some("2003-06-17T16:00:00-07:00"));
    assert_eq!(i.event_code[0].value.as_deref(), Some("SVR"));
    let area = &i.area[0];
    assert_eq!(
        area.polygon,
        vec!["38.47,-120.14 38.34,-119.95 38.52,-119.74 38.62,-119.89 38.47,-120.14"]
    );
    let codes: Vec<&str> = area
        .geocode
        .iter()
        .filter_map(|g| g.value.as_deref())
        .collect();
    assert_eq!(codes, vec!["006109", "006009", "006003"]);
}

#[test]
fn oasis_appendix_a3_references_parse_as_one_triple() {
    let a = check(&read("oasis-cap12-appendix-a3.xml")).unwrap();
    assert_eq!(a.msg_type(), Some(MsgType::Update));
    assert_eq!(
        a.references(),
        Some(vec![CapReference {
            sender: "trinet@caltech.edu".into(),
            identifier: "TRI13970876.1".into(),
            sent: ts("2003-06-12T03:30:00Z"),
        }])
    );
    assert_eq!(a.info[0].area[0].circle, vec!["32.9525,-115.5527 0"]);
    assert_eq!(a.info[0].parameter.len(), 5);
}

#[test]
fn oasis_appendix_a4_keeps_both_languages_and_non_ascii_text() {
    let xml = read("oasis-cap12-appendix-a4.xml");
    let a = check(&xml).unwrap();
    assert_eq!(a.source.as_deref(), Some("SW"));
    let langs: Vec<&str> = a.info.iter().map(|i| i.language_or_default()).collect();
    assert_eq!(langs, vec!["en-US", "es-US"]);
    assert_eq!(a.info[0].event.as_deref(), Some("Child Abduction"));
    assert_eq!(a.info[1].event.as_deref(), Some("Abducción de Niño"));
    assert_eq!(
        a.info[1].sender_name.as_deref(),
        Some("Departamento de Policía de Los Ángeles - LAPD")
    );
    assert_eq!(
        a.info[1].area[0].area_desc.as_deref(),
        Some("condado de Los Ángeles")
    );
    let d = a.info[0].description.as_deref().unwrap();
    assert!(d.starts_with(
        "DATE/TIME: 06/11/03, 1915 HRS. VICTIM(S): KHAYRI DOE JR. M/B BLK/BRO 3'0\", 40"
    ));
    assert!(a.info[1]
        .description
        .as_deref()
        .unwrap()
        .contains("VÍCTIMAS"));
    // Were it addressed privately to Filet units, neither language is one Filet reads.
    let private = xml.replace(
        "<scope>Public</scope>",
        "<scope>Private</scope><addresses>DPJ/RTS</addresses>",
    );
    assert_eq!(
        import(&private).unwrap_err().to_string(),
        "alert/info/language: no info block is in fr-CA or en-CA (found en-US, es-US)"
    );
}

#[test]
fn google_canada_passes_check_as_cap_cp() {
    let xml = read("google-canada.cap");
    let a = check(&xml).unwrap();
    assert_eq!(
        a.code,
        vec![
            "profile:CAP-CP:0.4",
            "layer:EC-MSC-SMC:1.0",
            "layer:SOREM:1.0"
        ]
    );
    assert_eq!(a.restriction.as_deref(), Some(""));
    assert_eq!(a.addresses(), Some(vec![]));
    let refs = a.references().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[1].identifier, "2.49.0.1.124.60f31a3a.2012");
    assert_eq!(refs[1].sent, ts("2012-05-02T21:55:21Z"));
    let langs: Vec<&str> = a.info.iter().map(|i| i.language_or_default()).collect();
    assert_eq!(langs, vec!["en-CA", "fr-CA"]);
    assert_eq!(
        a.info[1].headline.as_deref(),
        Some("veille d'orages violents")
    );
    assert_eq!(
        a.info[1].area[0].area_desc.as_deref(),
        Some("Windsor - Leamington - comté d'Essex")
    );
    assert_eq!(a.info[0].area.len(), 2);
    assert_eq!(a.info[0].contact.as_deref(), Some(""));
    assert_eq!(import(&xml).unwrap_err(), CapRefusal::PublicScope);
}

#[test]
fn google_no_optional_fields_passes_check_as_cap_1_1() {
    let a = check(&read("google-no_optional_fields.cap")).unwrap();
    assert_eq!(a.version, CapVersion::V1_1);
    assert_eq!(
        a.identifier.as_deref(),
        Some("USGS-earthquakes-us2010apcd.6.20100831T000925.496Z")
    );
    assert!(a.info.is_empty());
    assert_eq!(a.sent_time(), Some(ts("2010-08-31T05:09:25Z")));
}

#[test]
fn google_invalid_fails_naming_the_missing_scope() {
    let xml = read("google-invalid.cap");
    assert_eq!(
        check(&xml),
        Err(CapErrors::Invalid(vec![CapProblem::Missing {
            path: "alert/scope".into(),
            section: "3.2.1",
        }]))
    );
    assert_eq!(
        check(&xml).unwrap_err().to_string(),
        "alert/scope: missing; CAP 1.2 §3.2.1 requires it"
    );
    // parse alone reads it.
    assert_eq!(parse(&xml).unwrap().scope, None);
    assert_eq!(
        import(&xml).unwrap_err().to_string(),
        "not a valid CAP 1.2 alert: alert/scope: missing; CAP 1.2 §3.2.1 requires it"
    );
}

#[test]
fn google_xee_is_refused_at_its_dtd() {
    let xml = read("google-xee.cap");
    assert_eq!(parse(&xml), Err(CapError::DocType));
    assert_eq!(parse_bytes(xml.as_bytes()), Err(CapError::DocType));
    assert_eq!(check(&xml), Err(CapErrors::Unreadable(CapError::DocType)));
    assert_eq!(
        import(&xml),
        Err(CapRefusal::Invalid(CapErrors::Unreadable(
            CapError::DocType
        )))
    );
    assert_eq!(
        CapError::DocType.to_string(),
        "DTDs are not accepted (CAP 1.2 needs none); nothing was read"
    );
}

/// A DTD whose entities name a real local file, an XInclude naming it too: the secret never
/// reaches any output. Without the DTD, `&xxe;` is an error (never a lookup) and the XInclude
/// is a foreign element that is left out (and reported by `check`).
#[test]
fn nothing_is_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("filet-cap-xxe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "SECRET-7f3a").unwrap();
    let url = format!("file://{}", secret.display());
    let body = r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>X&xxe;</identifier>
</alert>"#;
    let with_dtd = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE alert [<!ENTITY xxe SYSTEM \"{url}\">]>\n{body}"
    );
    assert_eq!(parse(&with_dtd), Err(CapError::DocType));

    let e = parse(body).unwrap_err();
    assert_eq!(
        e,
        CapError::UnknownEntity {
            line: 2,
            column: 16,
            name: "xxe".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "line 2, column 16: the entity &xxe; is not one of XML's five (&amp; &lt; &gt; &quot; &apos;) and no DTD is read to define it"
    );

    let xinclude = format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}" parse="text"/></x>
  <identifier>1</identifier><sender>s</sender><sent>2003-06-17T14:57:00-07:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
</alert>"#
    );
    let a = parse(&xinclude).unwrap();
    assert!(!format!("{a:?}").contains("SECRET"));
    // `x` is not CAP, so what it holds (the XInclude) is not looked at, let alone followed.
    assert_eq!(
        problems(&xinclude),
        vec!["alert/x: not a CAP 1.2 element here"]
    );
    // Directly under a CAP element, an XInclude is a foreign element.
    let direct = xinclude
        .replace("<x xmlns:xi", "<info xmlns:xi")
        .replace("</x>", "</info>");
    let p = problems(&direct);
    assert_eq!(
        p[0],
        "alert/info/{http://www.w3.org/2001/XInclude}include: an element of another namespace; CAP 1.2 allows none here (only an XML signature, directly under alert)"
    );
    assert!(!format!("{:?}", parse(&direct).unwrap()).contains("SECRET"));
    // The public sample without its DTD: the same three kinds of refusal.
    let xee = read("google-xee.cap");
    let start = xee.find("<alert").unwrap();
    let stripped = &xee[start..];
    assert!(matches!(
        parse(stripped),
        Err(CapError::UnknownEntity { ref name, .. }) if name == "xxe"
    ));
    let no_entities = stripped.replace("&xxe;", "");
    let p = problems(&no_entities);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0], "alert/x: not a CAP 1.2 element here");
    assert!(p[1].starts_with("alert/{http://a.b/}y: an element of another namespace"));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// check: every rule, all problems at once
// ---------------------------------------------------------------------------------------------

#[test]
fn check_reports_every_problem_by_path() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <identifier>a b</identifier>
  <sender></sender>
  <sent>2026-11-28T22:40:00Z</sent>
  <status>Real</status>
  <msgType>Alert</msgType>
  <msgType>Update</msgType>
  <scope>Restricted</scope>
  <references>x,y,2003-06-11T20:30:00-07:00 x,y x,y,2003-06-11T20:30:00.5-07:00</references>
  <colour>red</colour>
  <info>
    <language>fr_CA</language>
    <event>runaway</event>
    <urgency>Soon</urgency>
    <severity>Severe</severity>
    <expires>2026-11-29T22:40:00.250-05:00</expires>
    <parameter><valueName>a</valueName></parameter>
    <area>
      <polygon>1,1 2,2 1,1</polygon>
      <polygon>1,1 2,2 3,3 4,4</polygon>
      <polygon>1,1 2,200 3,3 1,1</polygon>
      <circle>1,1</circle>
      <ceiling>1e3</ceiling>
    </area>
    <resource><resourceDesc>r</resourceDesc><size>12kB</size></resource>
  </info>
  <info>
    <category>Geo</category>
    <category>Weather</category>
    <event>e</event>
    <urgency>Past</urgency><severity>Minor</severity><certainty>Observed</certainty>
    text
  </info>
  <ds:Signature/>
</alert>"#;
    assert_eq!(
        problems(xml),
        vec![
            "alert/msgType[2]: repeated; CAP 1.2 §3.2.1 allows it once",
            "alert/colour: not a CAP 1.2 element here",
            "alert/info[2]: text between the elements; CAP 1.2 gives this element only child elements",
            "alert/identifier: \"a b\" holds a space, comma, '<' or '&', which CAP 1.2 §3.2.1 forbids",
            "alert/sender: empty",
            "alert/sent: \"2026-11-28T22:40:00Z\" is not a CAP date-time YYYY-MM-DDThh:mm:ss±hh:mm (§3.3.2: numeric offset, UTC as -00:00, no \"Z\", no fractional seconds)",
            "alert/status: \"Real\" is not one of Actual, Exercise, System, Test, Draft",
            "alert/restriction: missing or empty; scope Restricted requires it (§3.2.1)",
            "alert/references: \"x,y\" is not sender,identifier,sent (§3.2.1)",
            "alert/references: the sent time of \"x,y,2003-06-11T20:30:00.5-07:00\" is not a CAP date-time YYYY-MM-DDThh:mm:ss±hh:mm (§3.3.2)",
            "alert/info[1]/language: \"fr_CA\" is not a language tag (RFC 3066, e.g. fr-CA)",
            "alert/info[1]/category: missing; CAP 1.2 §3.2.2 requires it",
            "alert/info[1]/urgency: \"Soon\" is not one of Immediate, Expected, Future, Past, Unknown",
            "alert/info[1]/certainty: missing; CAP 1.2 §3.2.2 requires it",
            "alert/info[1]/expires: \"2026-11-29T22:40:00.250-05:00\" is not a CAP date-time YYYY-MM-DDThh:mm:ss±hh:mm (§3.3.2: numeric offset, UTC as -00:00, no \"Z\", no fractional seconds)",
            "alert/info[1]/parameter/value: missing; CAP 1.2 §3.2.2 requires it",
            "alert/info[1]/resource/mimeType: missing; CAP 1.2 §3.2.3 requires it",
            "alert/info[1]/resource/size: \"12kB\" is not an integer",
            "alert/info[1]/area/areaDesc: missing; CAP 1.2 §3.2.4 requires it",
            "alert/info[1]/area/polygon[1]: 3 points; a polygon needs at least 4 (§3.2.4)",
            "alert/info[1]/area/polygon[2]: the first and last points differ; a polygon must close (§3.2.4)",
            "alert/info[1]/area/polygon[3]: \"2,200\" is not a WGS 84 latitude,longitude pair",
            "alert/info[1]/area/circle: \"1,1\" is not \"latitude,longitude radius\" with a radius of 0 or more km (§3.2.4)",
            "alert/info[1]/area/ceiling: \"1e3\" is not a decimal number",
            "alert/info[1]/area/ceiling: ceiling without altitude; CAP 1.2 §3.2.4 uses it only with altitude",
            "alert/info[2]/category[2]: \"Weather\" is not one of Geo, Met, Safety, Security, Rescue, Fire, Health, Env, Transport, Infra, CBRNE, Other",
        ]
    );
}

#[test]
fn private_scope_needs_addresses_and_quotes_must_close() {
    let base = |extra: &str| {
        format!(
            r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>1</identifier><sender>s</sender><sent>2026-11-28T22:40:00-00:00</sent><status>Test</status><msgType>Alert</msgType><scope>Private</scope>{extra}</alert>"#
        )
    };
    assert_eq!(
        problems(&base("")),
        vec!["alert/addresses: missing or empty; scope Private requires it (§3.2.1)"]
    );
    assert_eq!(
        problems(&base("<addresses>  </addresses>")),
        vec!["alert/addresses: missing or empty; scope Private requires it (§3.2.1)"]
    );
    assert_eq!(
        problems(&base("<addresses>DPJ/RTS \"a b</addresses>")),
        vec!["alert/addresses: a double quote is not closed in \"DPJ/RTS \\\"a b\""]
    );
    let a = check(&base("<addresses>DPJ/RTS \"Unit &amp; co\"</addresses>")).unwrap();
    assert_eq!(
        a.addresses(),
        Some(vec!["DPJ/RTS".to_owned(), "Unit & co".to_owned()])
    );
}

#[test]
fn decodes_only_the_five_entities_and_character_references() {
    let xml = r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>&lt;&gt;&amp;&quot;&apos; &#233;&#xE9; <![CDATA[<b>&amp;</b>]]></note></alert>"#;
    assert_eq!(
        parse(xml).unwrap().note.as_deref(),
        Some("<>&\"' éé <b>&amp;</b>")
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input: errors, never panics
// ---------------------------------------------------------------------------------------------

#[test]
fn refuses_billion_laughs_at_the_dtd() {
    let mut dtd = String::from("<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        dtd.push_str(&format!("<!ENTITY lol{i} \"{refs}\">"));
    }
    let xml = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE alert [{dtd}]><alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>&lol9;</note></alert>"
    );
    assert_eq!(parse(&xml), Err(CapError::DocType));
    // Without the DTD the reference is an unknown entity, not an expansion.
    let bare = "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>&lol9;</note></alert>";
    assert!(matches!(parse(bare), Err(CapError::UnknownEntity { ref name, .. }) if name == "lol9"));
}

#[test]
fn refuses_documents_over_the_size_limit_before_parsing() {
    let pad = " ".repeat(MAX_CAP_LEN);
    let xml = format!("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>{pad}");
    assert_eq!(parse(&xml), Err(CapError::TooLarge { len: xml.len() }));
    // Checked before UTF-8 too: these bytes are not UTF-8, the size is what is reported.
    let bytes = vec![0xFFu8; MAX_CAP_LEN + 1];
    assert_eq!(
        parse_bytes(&bytes),
        Err(CapError::TooLarge {
            len: MAX_CAP_LEN + 1
        })
    );
    assert_eq!(
        CapError::TooLarge { len: 300_000 }.to_string(),
        "the document is 300000 bytes, more than the 262144 a CAP alert may take here; nothing was read"
    );
    // Exactly at the limit is read.
    let root = "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>";
    let at_limit = format!("{root}{}", " ".repeat(MAX_CAP_LEN - root.len()));
    assert_eq!(at_limit.len(), MAX_CAP_LEN);
    assert!(parse(&at_limit).is_ok());
}

#[test]
fn refuses_deep_nesting() {
    let xml = format!(
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">{}{}</alert>",
        "<a>".repeat(1000),
        "</a>".repeat(1000)
    );
    let e = parse(&xml).unwrap_err();
    let open = "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">".len();
    assert_eq!(
        e,
        CapError::TooDeep {
            line: 1,
            column: open + 3 * (MAX_DEPTH - 1) + 1
        }
    );
    assert!(e
        .to_string()
        .ends_with("elements nested deeper than 16 levels (CAP 1.2 needs 5)"));
    // Sixteen levels are read.
    let ok = format!(
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">{}{}</alert>",
        "<a>".repeat(MAX_DEPTH - 1),
        "</a>".repeat(MAX_DEPTH - 1)
    );
    assert!(parse(&ok).is_ok());
}

/// A valid CAP 1.2 alert declaring `encoding`, whose areaDesc is `area` (as bytes of that
/// encoding).
fn cap_in_encoding(encoding: &str, area: &[u8]) -> Vec<u8> {
    let mut b = format!(
        r#"<?xml version="1.0" encoding="{encoding}"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>QC-1</identifier><sender>sq@example.org</sender>
  <sent>2026-11-28T22:40:00-05:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Public</scope>
  <info><category>Safety</category><event>test</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <area><areaDesc>"#
    )
    .into_bytes();
    b.extend_from_slice(area);
    b.extend_from_slice(b"</areaDesc></area></info>\n</alert>\n");
    b
}

fn area_of(a: &CapAlert) -> &str {
    a.info[0].area[0].area_desc.as_deref().unwrap()
}

#[test]
fn documents_declaring_latin1_windows_1252_or_ascii_are_decoded_by_their_declaration() {
    // "Québec" in ISO-8859-1: é is the single byte 0xE9 (not UTF-8).
    for label in ["ISO-8859-1", "iso-8859-1", "latin1", "ISO_8859-1"] {
        let doc = cap_in_encoding(label, b"Ville de Qu\xE9bec");
        let a = check(&filet_proto::cap::decode(&doc).unwrap()).unwrap();
        assert_eq!(area_of(&a), "Ville de Québec", "{label}");
        assert_eq!(area_of(&parse_bytes(&doc).unwrap()), "Ville de Québec");
    }
    // windows-1252: 0x80-0x9F are the code page's characters (€, ’, œ), the rest latin1.
    let doc = cap_in_encoding("windows-1252", b"C\x9Cur \x80 l\x92\xEEle");
    assert_eq!(area_of(&parse_bytes(&doc).unwrap()), "Cœur € l’île");
    // The same bytes in latin1 are C1 controls, as ISO-8859-1 says.
    let doc = cap_in_encoding("ISO-8859-1", b"\x80");
    assert_eq!(area_of(&parse_bytes(&doc).unwrap()), "\u{80}");
    // US-ASCII: read; a byte above 0x7F is named.
    let doc = cap_in_encoding("US-ASCII", b"Quebec");
    assert_eq!(area_of(&parse_bytes(&doc).unwrap()), "Quebec");
    let doc = cap_in_encoding("US-ASCII", b"Qu\xE9bec");
    let offset = doc.iter().position(|&b| b == 0xE9).unwrap();
    let e = parse_bytes(&doc).unwrap_err();
    assert_eq!(
        e,
        CapError::NotInDeclaredEncoding {
            declared: "US-ASCII".into(),
            byte: 0xE9,
            offset
        }
    );
    assert!(e.to_string().contains("0xE9"), "{e}");
    // UTF-8 declared but latin1 bytes: not UTF-8, with the offset.
    let doc = cap_in_encoding("UTF-8", b"Qu\xE9bec");
    let offset = doc.iter().position(|&b| b == 0xE9).unwrap();
    assert_eq!(parse_bytes(&doc), Err(CapError::NotUtf8 { offset }));
    // Any other declared encoding is refused by name, before anything is read.
    let doc = cap_in_encoding("EBCDIC-CP-US", b"Quebec");
    let e = parse_bytes(&doc).unwrap_err();
    assert_eq!(
        e,
        CapError::UnsupportedEncoding {
            declared: "EBCDIC-CP-US".into()
        }
    );
    assert!(e.to_string().contains("\"EBCDIC-CP-US\""), "{e}");
    // A UTF-8 byte-order mark contradicts a latin1 declaration.
    let mut doc = b"\xEF\xBB\xBF".to_vec();
    doc.extend(cap_in_encoding("ISO-8859-1", b"Quebec"));
    assert_eq!(
        parse_bytes(&doc),
        Err(CapError::EncodingConflict {
            declared: "ISO-8859-1".into()
        })
    );
}

#[test]
fn refuses_invalid_utf8_and_forbidden_characters() {
    let mut bytes = b"<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>".to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(&[0xC3, 0x28]);
    bytes.extend_from_slice(b"</note></alert>");
    assert_eq!(parse_bytes(&bytes), Err(CapError::NotUtf8 { offset }));
    // A byte-order mark is fine.
    let bom = "\u{FEFF}<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>";
    assert!(parse_bytes(bom.as_bytes()).is_ok());
    assert_eq!(
        parse(
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n<note>a\u{1}</note></alert>"
        ),
        Err(CapError::IllegalChar {
            line: 2,
            column: 8,
            code: 1
        })
    );
    assert!(matches!(
        parse("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>&#1;</note></alert>"),
        Err(CapError::BadCharRef { ref reference, .. }) if reference == "#1"
    ));
    assert!(matches!(
        parse("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>&#0;</note></alert>"),
        Err(CapError::BadCharRef { .. })
    ));
    assert!(matches!(
        parse(
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><note>&#xD800;</note></alert>"
        ),
        Err(CapError::BadCharRef { .. })
    ));
}

#[test]
fn refuses_malformed_documents_with_a_position() {
    const NS: &str = "xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"";
    assert_eq!(
        parse(&format!("<alert {NS}><info><event>x</event>")),
        Err(CapError::Unclosed {
            path: "alert/info".into()
        })
    );
    assert_eq!(
        CapError::Unclosed {
            path: "alert/info".into()
        }
        .to_string(),
        "alert/info: not closed before the end of the document"
    );
    assert!(matches!(
        parse(&format!("<alert {NS}><note>a & b</note></alert>")),
        Err(CapError::Malformed { .. })
    ));
    for attrs in ["a=", "a='1' a='2'", "a=\"1"] {
        assert!(
            matches!(
                parse(&format!("<alert {NS}><note {attrs}></note></alert>")),
                Err(CapError::Malformed {
                    line: 1,
                    column: 53,
                    ..
                })
            ),
            "{attrs}"
        );
    }
    assert_eq!(
        parse(&format!("<alert {NS}><info></alert>")),
        Err(CapError::Malformed {
            line: 1,
            column: 59,
            message: "ill-formed document: expected `</info>`, but `</alert>` was found".into()
        })
    );
    assert_eq!(parse(""), Err(CapError::NoElement));
    assert_eq!(parse("<!-- only a comment -->"), Err(CapError::NoElement));
    assert_eq!(
        parse(&format!("<alert {NS}/><alert {NS}/>")),
        Err(CapError::SecondRoot {
            line: 1,
            column: 54,
            name: "alert".into()
        })
    );
    assert_eq!(
        parse(&format!("hello <alert {NS}/>")),
        Err(CapError::TextOutsideRoot { line: 1, column: 1 })
    );
    assert_eq!(
        parse("<x:alert/>"),
        Err(CapError::UndeclaredPrefix {
            line: 1,
            column: 1,
            prefix: "x".into()
        })
    );
    assert_eq!(
        parse("<alert/>").unwrap_err().to_string(),
        "alert: the root element is <alert> in no namespace, not <alert> in the CAP 1.2 namespace urn:oasis:names:tc:emergency:cap:1.2"
    );
    assert_eq!(
        parse("<feed xmlns=\"http://www.w3.org/2005/Atom\"/>"),
        Err(CapError::NotCap {
            found: "<feed> in namespace http://www.w3.org/2005/Atom".into()
        })
    );
    assert_eq!(
        parse(&format!(
            "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><alert {NS}/>"
        )),
        Err(CapError::UnsupportedEncoding {
            declared: "Shift_JIS".into()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Export and import
// ---------------------------------------------------------------------------------------------

const RUNAWAY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/alerts/runaway.toml"
));

fn now() -> Timestamp {
    ts("2026-11-29T03:00:00.123Z")
}

fn sender() -> Principal {
    "SPVQ/ESM/spvq-esm-01".parse().unwrap()
}

fn units(list: &[&str]) -> Vec<UnitRef> {
    list.iter().map(|u| u.parse().unwrap()).collect()
}

/// The runaway example, validated, as the relay would store it, with `kind` and `status`.
fn stored(kind: Kind, status: Status) -> (Envelope, AlertDraft) {
    let mut d = AlertFile::from_toml(RUNAWAY).unwrap().into_draft();
    d.kind = kind;
    d.status = status;
    if kind != Kind::Alert {
        d.references = Some(AlertId::from_parts(1_795_905_000_000, [3; 10]));
    }
    if kind == Kind::Cancel {
        d.note = Some("Erreur de saisie : « mauvais dossier » & <doublon>".into());
    }
    if kind == Kind::Located {
        d.note = Some("Retrouvée saine et sauve".into());
    }
    let v = d.validate(now()).unwrap();
    let env = Envelope {
        id: AlertId::from_parts(now().0 as u64, [9; 10]),
        kind: v.kind,
        references: v.references,
        category: v.category,
        status: v.status,
        risk: v.risk,
        language: v.language,
        sender: sender(),
        received_at: now(),
        expires_at: v.expires_at.unwrap(),
    };
    (env, v)
}

/// What `import(export(..))` must give back: the stored draft, expiry at whole seconds, `to`
/// the recipients.
fn expected(v: &AlertDraft, recipients: &[UnitRef]) -> AlertDraft {
    let mut e = v.clone();
    e.expires_at = v.expires_at.map(|t| Timestamp(t.0.div_euclid(1000) * 1000));
    e.to = recipients.iter().cloned().map(Selector::Unit).collect();
    e
}

#[test]
fn exports_the_runaway_example_as_documented() {
    let (env, v) = stored(Kind::Alert, Status::Actual);
    let recipients = units(&["DPJ/RTS", "CJQ/PIVOT"]);
    let xml = export(&ExportInput {
        envelope: &env,
        content: &v.content,
        note: None,
        recipients: &recipients,
        references_sent: None,
    });
    let id = env.id.to_string();
    let expected_xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{id}</identifier>
  <sender>SPVQ/ESM/spvq-esm-01</sender>
  <sent>2026-11-29T03:00:00-00:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Private</scope>
  <addresses>DPJ/RTS CJQ/PIVOT</addresses>
  <info>
    <language>fr-CA</language>
    <category>Rescue</category>
    <event>runaway</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <expires>2026-12-02T03:00:00-00:00</expires>
    <senderName>SPVQ/ESM/spvq-esm-01</senderName>
    <headline>Fugue d&apos;un jeune à risque</headline>
    <instruction>Ne pas intervenir seul. Aviser l&apos;enquêtrice et la DPJ.</instruction>
    <contact>Enquêtrice ESM, 418 555-0142 poste 3</contact>
    <parameter>
      <valueName>filet:category</valueName>
      <value>runaway</value>
    </parameter>
    <parameter>
      <valueName>filet:kind</valueName>
      <value>alert</value>
    </parameter>
    <parameter>
      <valueName>filet:subject.reference</valueName>
      <value>SPVQ-2026-04417</value>
    </parameter>
    <parameter>
      <valueName>filet:subject.given_name</valueName>
      <value>Maëlle</value>
    </parameter>
    <parameter>
      <valueName>filet:subject.age</valueName>
      <value>15</value>
    </parameter>
    <parameter>
      <valueName>filet:subject.description</valueName>
      <value>1,60 m, cheveux bruns longs, manteau noir, sac à dos rose</value>
    </parameter>
    <parameter>
      <valueName>filet:last_seen.at</valueName>
      <value>2026-11-28T22:40:00.000Z</value>
    </parameter>
    <parameter>
      <valueName>filet:last_seen.place</valueName>
      <value>Terminus Marie-de-l&apos;Incarnation</value>
    </parameter>
    <parameter>
      <valueName>filet:last_seen.geo</valueName>
      <value>46.8123,-71.2345</value>
    </parameter>
    <area>
      <areaDesc>Terminus Marie-de-l&apos;Incarnation</areaDesc>
      <circle>46.8123,-71.2345 0</circle>
    </area>
  </info>
</alert>
"#
    );
    assert_eq!(xml, expected_xml);
    assert_eq!(id, "01M8JKXGZV144GJ289144GJ289");
    // docs/cap.md shows this very text.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cap.md")).unwrap();
    let block = doc
        .split("```xml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert_eq!(block, xml);
    check(&xml).unwrap();
    let imported = import(&xml).unwrap();
    assert_eq!(imported.draft, expected(&v, &recipients));
    assert_eq!(imported.identifier, id);
    assert_eq!(imported.sender, "SPVQ/ESM/spvq-esm-01");
    assert_eq!(imported.sent, ts("2026-11-29T03:00:00Z"));
    assert_eq!(imported.recipients, recipients);
}

#[test]
fn round_trips_every_kind_and_status() {
    let recipients = units(&["DPJ/RTS"]);
    let referenced_sent = ts("2026-11-28T23:00:00.500Z");
    for kind in Kind::ALL {
        for status in Status::ALL {
            let (env, v) = stored(*kind, *status);
            let xml = export(&ExportInput {
                envelope: &env,
                content: &v.content,
                note: v.note.as_deref(),
                recipients: &recipients,
                references_sent: Some(referenced_sent),
            });
            let a = check(&xml).unwrap();
            let msg = match kind {
                Kind::Alert => MsgType::Alert,
                Kind::Update | Kind::Located => MsgType::Update,
                Kind::Cancel => MsgType::Cancel,
            };
            assert_eq!(a.msg_type(), Some(msg));
            assert_eq!(
                a.status.as_deref(),
                Some(match status {
                    Status::Actual => "Actual",
                    Status::Exercise => "Exercise",
                    Status::Test => "Test",
                })
            );
            if let Some(r) = env.references {
                assert_eq!(
                    a.references.as_deref(),
                    Some(format!("SPVQ/ESM/spvq-esm-01,{r},2026-11-28T23:00:00-00:00").as_str())
                );
            }
            assert_eq!(
                a.info[0]
                    .response_types()
                    .contains(&cap::ResponseType::AllClear),
                *kind == Kind::Located
            );
            let imported = import(&xml).unwrap();
            assert_eq!(imported.draft, expected(&v, &recipients), "{kind} {status}");
        }
    }
}

#[test]
fn headlines_show_exercise_and_kind_without_content() {
    let (env, v) = stored(Kind::Located, Status::Exercise);
    let xml = export(&ExportInput {
        envelope: &env,
        content: &v.content,
        note: None,
        recipients: &units(&["DPJ/RTS"]),
        references_sent: None,
    });
    let a = check(&xml).unwrap();
    assert_eq!(
        a.info[0].headline.as_deref(),
        Some("EXERCICE — Retrouvé — Fugue d'un jeune à risque")
    );
    // Without references_sent, the referenced id's own time (the relay's receive time).
    assert!(a
        .references
        .as_deref()
        .unwrap()
        .ends_with(",2026-11-28T22:30:00-00:00"));
}

#[test]
fn exports_a_redacted_view_without_the_left_out_fields() {
    let (env, v) = stored(Kind::Alert, Status::Actual);
    let keep = filet_proto::FieldSet::parse_pattern("last_seen.geo")
        .unwrap()
        .with(filet_proto::FieldPath::Contact);
    let content = v.content.redact(keep);
    let mut en = env.clone();
    en.language = Language::EnCa;
    let xml = export(&ExportInput {
        envelope: &en,
        content: &content,
        note: None,
        recipients: &units(&["CJQ/PIVOT"]),
        references_sent: None,
    });
    check(&xml).unwrap();
    for gone in [
        "SPVQ-2026-04417",
        "Maëlle",
        "Terminus",
        "instruction",
        "filet:subject",
        "last_seen.at",
    ] {
        assert!(!xml.contains(gone), "{gone} in\n{xml}");
    }
    assert!(xml.contains("<areaDesc>Last known location</areaDesc>"));
    assert!(xml.contains("<headline>Runaway youth at risk</headline>"));
    // A new alert without its file number does not import.
    assert_eq!(import(&xml).unwrap_err(), CapRefusal::MissingReference);
    // An update's redacted view does.
    let (upd, uv) = stored(Kind::Update, Status::Actual);
    let content = uv.content.redact(keep);
    let xml = export(&ExportInput {
        envelope: &upd,
        content: &content,
        note: None,
        recipients: &units(&["CJQ/PIVOT"]),
        references_sent: None,
    });
    let d = import(&xml).unwrap().draft;
    assert_eq!(d.content, content);
    assert_eq!(d.content.last_seen.geo, Some(Geo(46.8123, -71.2345)));
    assert_eq!(d.references, upd.references);
}

#[test]
fn escapes_markup_in_every_text() {
    let (env, mut v) = stored(Kind::Alert, Status::Test);
    v.content.subject.given_name = Some("<script>&amp;\"x'</script>".into());
    v.content.contact = Some("]]> <![CDATA[ & </contact>".into());
    let recipients = units(&["DPJ/RTS"]);
    let xml = export(&ExportInput {
        envelope: &env,
        content: &v.content,
        note: None,
        recipients: &recipients,
        references_sent: None,
    });
    assert!(!xml.contains("<script>"));
    assert!(xml.contains("&lt;script&gt;&amp;amp;&quot;x&apos;&lt;/script&gt;"));
    let d = import(&xml).unwrap().draft;
    assert_eq!(d.content, v.content);
}

/// The exported runaway alert, edited with `edits` (pairs of from, to).
fn edited(edits: &[(&str, &str)]) -> String {
    let (env, v) = stored(Kind::Alert, Status::Actual);
    let mut xml = export(&ExportInput {
        envelope: &env,
        content: &v.content,
        note: None,
        recipients: &units(&["DPJ/RTS", "CJQ/PIVOT"]),
        references_sent: None,
    });
    for (from, to) in edits {
        assert!(xml.contains(from), "{from}");
        xml = xml.replacen(from, to, 1);
    }
    xml
}

fn refusal(edits: &[(&str, &str)]) -> String {
    import(&edited(edits)).unwrap_err().to_string()
}

#[test]
fn import_refuses_with_the_reason() {
    let p = |name: &str, value: &str| {
        format!("<parameter><valueName>{name}</valueName><value>{value}</value></parameter>")
    };
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("<scope>Private</scope>", "<scope>Restricted</scope><restriction>table régionale</restriction>".into())],
            "alert/scope: Restricted names a rule (<restriction>), not recipients; Filet imports only scope Private with <addresses> naming its units",
        ),
        (
            vec![("<msgType>Alert</msgType>", "<msgType>Ack</msgType>".into())],
            "alert/msgType: Ack has no Filet kind; Filet imports Alert, Update and Cancel",
        ),
        (
            vec![("<msgType>Alert</msgType>", "<msgType>Error</msgType>".into())],
            "alert/msgType: Error has no Filet kind; Filet imports Alert, Update and Cancel",
        ),
        (
            vec![("<status>Actual</status>", "<status>Draft</status>".into())],
            "alert/status: Draft has no Filet status; Filet imports Actual, Exercise and Test",
        ),
        (
            vec![("<addresses>DPJ/RTS CJQ/PIVOT</addresses>", "<addresses>DPJ/RTS dpj@example.org</addresses>".into())],
            "alert/addresses: \"dpj@example.org\" is not a Filet unit (PARTY/UNIT, e.g. DPJ/RTS)",
        ),
        (
            vec![
                ("<value>runaway</value>", "<value>flood</value>".into()),
            ],
            "alert/info/parameter filet:category: \"flood\" is not one of runaway, sighting, exploitation-risk",
        ),
        (
            vec![
                ("<parameter>\n      <valueName>filet:category</valueName>\n      <value>runaway</value>\n    </parameter>", String::new()),
                ("<event>runaway</event>", "<event>Fugue</event>".into()),
            ],
            "alert/info/event: \"Fugue\" is not a Filet category (runaway, sighting, exploitation-risk) and no filet:category parameter names one",
        ),
        (
            vec![("<event>runaway</event>", "<event>sighting</event>".into())],
            "alert/info/event: sighting disagrees with the parameter filet:category runaway",
        ),
        (
            vec![("<value>alert</value>", "<value>cancel</value>".into())],
            "alert/info/parameter filet:kind: cancel does not go with msgType Alert",
        ),
        (
            vec![("<severity>Severe</severity>", "<severity>Unknown</severity>".into())],
            "alert/info/severity: Unknown has no Filet risk (Extreme, Severe, Moderate, Minor map to extreme, severe, moderate, minor)",
        ),
        (
            vec![("<value>15</value>", "<value>quinze</value>".into())],
            "alert/info/parameter filet:subject.age: \"quinze\" is not an age in whole years",
        ),
        (
            vec![("<value>46.8123,-71.2345</value>", "<value>46.8123;-71.2345</value>".into())],
            "alert/info/parameter filet:last_seen.geo: \"46.8123;-71.2345\" is not latitude,longitude in decimal degrees",
        ),
        (
            vec![("<value>2026-11-28T22:40:00.000Z</value>", "<value>hier soir</value>".into())],
            "alert/info/parameter filet:last_seen.at: \"hier soir\" is not an RFC 3339 time (e.g. 2026-11-28T22:40:00.000Z)",
        ),
        (
            vec![("<area>", format!("{}<area>", p("filet:subject.photo", "x.jpg")))],
            "alert/info/parameter filet:subject.photo: not a Filet field",
        ),
        (
            vec![("<area>", format!("{}<area>", p("filet:subject.age", "16")))],
            "alert/info/parameter filet:subject.age: repeated; a Filet field has one value",
        ),
        (
            vec![("<addresses>DPJ/RTS CJQ/PIVOT</addresses>", "<addresses>DPJ/RTS CJQ/PIVOT</addresses><references>a,b,2026-11-28T22:40:00-00:00</references>".into())],
            "alert/references: msgType Alert refers to earlier messages; a new Filet alert refers to none",
        ),
        (
            vec![
                ("<msgType>Alert</msgType>", "<msgType>Update</msgType>".into()),
                ("<value>alert</value>", "<value>update</value>".into()),
            ],
            "alert/references: missing; msgType Update must name the alert it refers to",
        ),
        (
            vec![
                ("<msgType>Alert</msgType>", "<msgType>Cancel</msgType>".into()),
                ("<value>alert</value>", "<value>cancel</value>".into()),
                ("<addresses>DPJ/RTS CJQ/PIVOT</addresses>", "<addresses>DPJ/RTS CJQ/PIVOT</addresses><references>SPVQ/ESM/x,TRI13970876.1,2026-11-28T22:40:00-00:00</references>".into()),
            ],
            "alert/references: identifier \"TRI13970876.1\" is not a Filet alert id (26 characters of Crockford base32)",
        ),
        (
            vec![
                ("<msgType>Alert</msgType>", "<msgType>Update</msgType>".into()),
                ("<value>alert</value>", "<value>update</value>".into()),
                ("<addresses>DPJ/RTS CJQ/PIVOT</addresses>", "<addresses>DPJ/RTS CJQ/PIVOT</addresses><references>s,01KB6Z8N3F9Q2W5X7Y0A4C6E8G,2026-11-28T22:40:00-00:00 s,01KB6Z8N3F9Q2W5X7Y0A4C6E8H,2026-11-28T22:41:00-00:00</references>".into()),
            ],
            "alert/references: 2 messages; a Filet update refers to exactly one alert",
        ),
        (
            vec![("<language>fr-CA</language>", "<language>fr-FR</language>".into())],
            "alert/info/language: no info block is in fr-CA or en-CA (found fr-FR)",
        ),
    ];
    for (edits, reason) in cases {
        let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (*a, b.as_str())).collect();
        assert_eq!(refusal(&edits), reason);
    }
}

#[test]
fn takes_the_fr_ca_block_and_refuses_conflicting_blocks() {
    let xml = edited(&[]);
    let start = xml.find("  <info>").unwrap();
    let end = xml.find("</info>\n").unwrap() + "</info>\n".len();
    let fr = &xml[start..end];
    let en = fr
        .replace("<language>fr-CA</language>", "<language>en-CA</language>")
        .replace("Ne pas intervenir seul.", "Do not intervene alone.");
    // en-CA first, fr-CA second: the fr-CA block is taken; translations may differ.
    let both = xml.replacen(fr, &format!("{en}{fr}"), 1);
    let d = import(&both).unwrap().draft;
    assert_eq!(d.language, Language::FrCa);
    assert!(d
        .content
        .instructions
        .unwrap()
        .starts_with("Ne pas intervenir seul."));
    // en-CA alone is taken too.
    let d = import(&xml.replacen(fr, &en, 1)).unwrap().draft;
    assert_eq!(d.language, Language::EnCa);
    // A block in another language is ignored.
    let es = fr.replace("<language>fr-CA</language>", "<language>es-US</language>");
    assert!(import(&xml.replacen(fr, &format!("{es}{fr}"), 1)).is_ok());
    // Language-neutral fields must agree.
    let older = en.replace("<value>15</value>", "<value>14</value>");
    assert_eq!(
        import(&xml.replacen(fr, &format!("{fr}{older}"), 1))
            .unwrap_err()
            .to_string(),
        "alert/info: the fr-CA and en-CA blocks disagree on filet:subject.age"
    );
    let milder = en.replace("<severity>Severe</severity>", "<severity>Minor</severity>");
    assert_eq!(
        import(&xml.replacen(fr, &format!("{fr}{milder}"), 1))
            .unwrap_err()
            .to_string(),
        "alert/info: the fr-CA and en-CA blocks disagree on severity"
    );
    assert_eq!(
        import(&xml.replacen(fr, &format!("{fr}{fr}"), 1))
            .unwrap_err()
            .to_string(),
        "alert/info/language: fr-CA is the language of 2 info blocks; Filet takes one per language"
    );
    let no_info = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(import(&no_info).unwrap_err(), CapRefusal::NoInfo);
}

#[test]
fn imports_foreign_cap_by_its_cap_elements() {
    // Another system's CAP message: no filet:kind, an AllClear update is a `located`,
    // the event names the category, the reason of a cancel is in <note>.
    let xml = |msg: &str, extra_alert: &str, extra_info: &str| {
        format!(
            r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>CJQ-123</identifier><sender>cjq@example.org</sender>
  <sent>2026-11-29T01:00:00-05:00</sent><status>Exercise</status><msgType>{msg}</msgType>
  <scope>Private</scope><addresses>SPVQ/ESM</addresses>{extra_alert}
  <references>SPVQ/ESM/n,01KB6Z8N3F9Q2W5X7Y0A4C6E8G,2026-11-28T22:40:00-05:00</references>
  <info><language>en-ca</language><category>Rescue</category><event>sighting</event>{extra_info}
    <urgency>Expected</urgency><severity>Moderate</severity><certainty>Possible</certainty>
  </info>
</alert>"#
        )
    };
    let located = import(&xml("Update", "", "<responseType>AllClear</responseType>")).unwrap();
    assert_eq!(located.draft.kind, Kind::Located);
    assert_eq!(located.draft.category, Category::Sighting);
    assert_eq!(located.draft.status, Status::Exercise);
    assert_eq!(located.draft.risk, Risk::Moderate);
    assert_eq!(located.draft.language, Language::EnCa);
    assert_eq!(located.draft.expires_at, None);
    assert_eq!(
        located.draft.references,
        Some("01KB6Z8N3F9Q2W5X7Y0A4C6E8G".parse().unwrap())
    );
    assert_eq!(located.sent, ts("2026-11-29T06:00:00Z"));
    assert_eq!(located.draft.content, Content::default());
    assert_eq!(
        import(&xml("Update", "", "")).unwrap().draft.kind,
        Kind::Update
    );
    let cancel = import(&xml("Cancel", "<note>saisie en double</note>", "")).unwrap();
    assert_eq!(cancel.draft.kind, Kind::Cancel);
    assert_eq!(cancel.draft.note.as_deref(), Some("saisie en double"));
    assert_eq!(
        cancel.draft.to,
        vec![Selector::Unit("SPVQ/ESM".parse().unwrap())]
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Text that Filet accepts (no control or bidi characters) with non-ASCII letters, emoji and
/// every character XML must escape.
fn text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::string::string_regex(&format!(
            "[a-zA-Z0-9 àéèêëçôûÉÀÇœ漢字😀<>&\"';:,./()\\[\\]{{}}=#%-]{{1,{max}}}"
        ))
        .unwrap(),
    )
}

prop_compose! {
    fn content()(
        reference in "[A-Za-z0-9._/-]{1,32}",
        has_reference in any::<bool>(),
        given_name in text(40),
        age in proptest::option::of(0u8..=20),
        description in text(280),
        at in proptest::option::of(0i64..30 * 86_400_000),
        place in text(120),
        geo in proptest::option::of((-90.0f64..=90.0, -180.0f64..=180.0)),
        instructions in text(280),
        contact in text(120),
    ) -> Content {
        Content {
            subject: Subject {
                reference: has_reference.then_some(reference),
                given_name,
                age,
                description,
            },
            last_seen: LastSeen {
                at: at.map(|back| now().plus_ms(-back)),
                place,
                geo: geo.map(|(a, b)| Geo(a, b)),
            },
            instructions,
            contact,
        }
    }
}

prop_compose! {
    fn stored_alert()(
        kind in proptest::sample::select(Kind::ALL),
        category in proptest::sample::select(Category::ALL),
        status in proptest::sample::select(Status::ALL),
        risk in proptest::sample::select(Risk::ALL),
        language in proptest::sample::select(Language::ALL),
        expires in proptest::option::of(1i64..=30 * 86_400_000),
        mut content in content(),
        note in text(280),
        reference_id in any::<[u8; 10]>(),
        id in any::<[u8; 10]>(),
        received_ms in 0i64..1000,
        recipients in proptest::sample::subsequence(
            vec!["DPJ/RTS", "CJQ/PIVOT", "CJQ/ESCALE", "SQ/ENQ", "CISSS/URGENCE"], 1..=5),
    ) -> (Envelope, AlertDraft, Vec<UnitRef>) {
        let received = now().plus_ms(received_ms);
        let mut d = AlertDraft::new(category, risk, "", "");
        d.kind = kind;
        d.status = status;
        d.language = language;
        d.expires_at = expires.map(|e| received.plus_ms(e));
        // A new alert and an update carry the whole content: a reference and a contact.
        if matches!(kind, Kind::Alert | Kind::Update) {
            content.subject.reference.get_or_insert_with(|| "R-1".into());
            if content.contact.as_deref().is_none_or(|c| c.trim().is_empty()) {
                content.contact = Some("418 555-0100".into());
            }
        }
        if kind != Kind::Alert {
            d.references = Some(AlertId::from_parts(1_795_000_000_000, reference_id));
        }
        d.content = content;
        d.note = note;
        if kind == Kind::Cancel && d.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            d.note = Some("annulé".into());
        }
        let v = d.validate(received).unwrap();
        let env = Envelope {
            id: AlertId::from_parts(received.0 as u64, id),
            kind: v.kind,
            references: v.references,
            category: v.category,
            status: v.status,
            risk: v.risk,
            language: v.language,
            sender: sender(),
            received_at: received,
            expires_at: v.expires_at.unwrap(),
        };
        (env, v, units(&recipients))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn export_then_import_gives_the_alert_back((env, v, recipients) in stored_alert()) {
        let xml = export(&ExportInput {
            envelope: &env,
            content: &v.content,
            note: v.note.as_deref(),
            recipients: &recipients,
            references_sent: None,
        });
        prop_assert!(check(&xml).is_ok(), "{:?}\n{}", check(&xml), xml);
        let imported = import(&xml).unwrap();
        prop_assert_eq!(&imported.draft, &expected(&v, &recipients));
        prop_assert_eq!(imported.identifier, env.id.to_string());
        prop_assert_eq!(imported.sent, Timestamp(env.received_at.0.div_euclid(1000) * 1000));
        prop_assert_eq!(imported.recipients, recipients);
        // What is imported is still a valid Filet alert.
        prop_assert!(imported.draft.validate(env.received_at).is_ok());
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,400}") {
        let _ = parse(&s);
        let _ = check(&s);
        let _ = import(&s);
    }

    #[test]
    fn random_markup_never_panics(s in "(<[a-z:]{0,6}( xmlns(:[a-z]{1,3})?=\"[a-z:.]{0,30}\")?/?>|</[a-z:]{0,6}>|&[#a-z0-9]{0,6};|<!\\[CDATA\\[|\\]\\]>|<!DOCTYPE|<\\?xml|[ a-z&<>\"']){0,60}") {
        let doc = format!("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">{s}</alert>");
        let _ = parse(&doc);
        let _ = check(&doc);
        let _ = import(&doc);
    }

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_bytes(&b);
    }

    #[test]
    fn damaged_exports_never_panic(
        (env, v, recipients) in stored_alert(),
        cut in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let xml = export(&ExportInput {
            envelope: &env,
            content: &v.content,
            note: v.note.as_deref(),
            recipients: &recipients,
            references_sent: None,
        });
        let mut bytes = xml.into_bytes();
        let i = cut.index(bytes.len());
        let truncated = &bytes[..i];
        let _ = parse_bytes(truncated);
        bytes[i] = byte;
        let _ = parse_bytes(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = check(s);
            let _ = import(s);
        }
    }
}

#[test]
fn the_model_is_plain_data() {
    // Parsing twice gives equal models; a model can be cloned and compared.
    let xml = read("oasis-cap12-appendix-a4.xml");
    let a: CapAlert = parse(&xml).unwrap();
    assert_eq!(a.clone(), parse(&xml).unwrap());
}
