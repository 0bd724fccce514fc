//! CSV for a spreadsheet: UTF-8 with a byte-order mark (so that « é » opens as « é » in a
//! French Excel), `;` between values (French Excel reads `,` as the decimal comma and
//! expects `;` as its list separator: with `,` every row would land in one column), CRLF
//! line ends, values quoted when they hold `;`, `"` or a line break (RFC 4180 style, the
//! quote doubled). Column keys are never translated (a machine interface). A text value that
//! a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, carriage return first)
//! gets a leading `'`: a legal basis or a unit name in the log must not run as a formula.

/// The byte-order mark.
pub const BOM: &str = "\u{feff}";

/// The separator.
pub const SEP: char = ';';

/// One value, quoted if needed.
pub fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.parse::<f64>().is_err() {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([SEP, '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// A table: the BOM, the header row of `keys`, then each row.
pub fn table(keys: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from(BOM);
    let line = |cols: &mut dyn Iterator<Item = String>| {
        let mut l = cols.collect::<Vec<_>>().join(&SEP.to_string());
        l.push_str("\r\n");
        l
    };
    s.push_str(&line(&mut keys.iter().map(|k| field(k))));
    for r in rows {
        s.push_str(&line(&mut r.iter().map(|v| field(v))));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_a_bom_separates_with_semicolons_and_quotes_what_needs_it() {
        let s = table(
            &["rule", "legal_basis", "count"],
            &[
                vec![
                    "police-vers-protection".into(),
                    "LPJ, art. 35.4".into(),
                    "3".into(),
                ],
                vec!["r;2".into(), "dit \"urgent\"\nsuite".into(), "-1".into()],
                vec![
                    "=HYPERLINK(\"x\")".into(),
                    "Protection de la jeunesse — é".into(),
                    "0".into(),
                ],
            ],
        );
        assert!(
            s.as_bytes().starts_with(&[0xEF, 0xBB, 0xBF]),
            "UTF-8 BOM first"
        );
        let lines: Vec<&str> = s[BOM.len()..].split("\r\n").collect();
        assert_eq!(lines[0], "rule;legal_basis;count");
        // A comma is no separator here: not quoted.
        assert_eq!(lines[1], "police-vers-protection;LPJ, art. 35.4;3");
        // A line break inside a quoted value is not a row's end; a negative number stays
        // a number.
        assert_eq!(lines[2], "\"r;2\";\"dit \"\"urgent\"\"\nsuite\";-1");
        // A formula is defused and quoted.
        assert_eq!(
            lines[3],
            "\"'=HYPERLINK(\"\"x\"\")\";Protection de la jeunesse — é;0"
        );
        assert_eq!(lines[4], "");
        assert_eq!(lines.len(), 5);
    }
}
