//! What `filet` writes: standard output that a closed pipe ends quietly ([`out`],
//! [`outln!`], [`outp!`], [`print_json`]) and error text safe for a terminal
//! ([`escape_controls`], [`chain_text`]).

/// Writes to standard output; a closed pipe (`filet … | head`) ends the command quietly
/// instead of panicking.
pub fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// A line to standard output, through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output::out(&format!("{}\n", format!($($arg)*))) };
}

/// Text to standard output as it is, through [`out`].
macro_rules! outp {
    ($($arg:tt)*) => { $crate::cli::output::out(&format!($($arg)*)) };
}

pub(crate) use {outln, outp};

/// A JSON value on one line.
pub fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string(v).unwrap_or_default());
}

/// Control characters (and bidirectional overrides) of `s` escaped, newlines kept: an
/// error message quoting a file or an argument must not write a NUL, a terminal escape
/// sequence or a reordering mark to the terminal.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n') || bidi {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// An error and its causes, each cause once (a message that already holds its cause's
/// text is not followed by it again).
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = escape_controls(&cause.to_string());
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}
