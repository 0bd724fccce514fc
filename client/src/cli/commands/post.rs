//! `filet post`: an alert from a file (TOML), a CAP 1.2 file or flags; checked locally,
//! then posted; the receipt printed. Also the drafts `update` builds on.

use anyhow::Context;
use filet_client::render::{receipt_json, receipt_text};
use filet_client::Node;
use filet_proto::alert::AlertFile;
use filet_proto::{AlertDraft, Timestamp};

use crate::cli::args::{Cli, PostArgs};
use crate::cli::commands::cap::read_cap;
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::{Failure, InputError};
use crate::cli::output::{outp, print_json};

/// `filet post [FILE | --cap FILE] [flags]`.
pub async fn run(cli: &Cli, args: &PostArgs) -> Result<(), Failure> {
    let draft = draft_of(args)?;
    // Check locally first: a clear message without a round trip. The relay checks
    // again (it is the one that decides).
    if let Err(invalid) = draft.validate(Timestamp::now()) {
        return Err(InputError(format!("invalid alert: {invalid}")).into());
    }
    let node = connect(cli).await?;
    post_and_print(cli, &node, draft).await?;
    node.close().await;
    Ok(())
}

/// The draft the arguments describe: the file (alert or CAP) with the flags over it, or
/// the flags alone (then --category and --risk are required).
pub fn draft_of(a: &PostArgs) -> Result<AlertDraft, Failure> {
    if let Some(path) = &a.cap {
        let xml = read_cap(path)?;
        let imported = filet_proto::cap::import(&xml).map_err(|e| {
            InputError(format!(
                "CAP file {} cannot become a Filet alert: {e}; nothing was posted",
                path.display()
            ))
        })?;
        let mut d = imported.draft;
        apply_flags(&mut d, a);
        return Ok(d);
    }
    let mut d = match &a.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read alert file {}", path.display()))
                .map_err(|e| InputError(format!("{e:#}")))?;
            AlertFile::from_toml(&text)
                .map_err(|e| InputError(format!("alert file {}: {e}", path.display())))?
                .into_draft()
        }
        None => {
            let category = a
                .category
                .ok_or_else(|| InputError("--category is required without an alert file".into()))?;
            let risk = a
                .risk
                .ok_or_else(|| InputError("--risk is required without an alert file".into()))?;
            let mut d = AlertDraft::new(category, risk, "", "");
            d.content.subject.reference = None;
            d.content.contact = None;
            d
        }
    };
    apply_flags(&mut d, a);
    Ok(d)
}

/// Puts the values given as flags over a draft.
pub fn apply_flags(d: &mut AlertDraft, a: &PostArgs) {
    if let Some(v) = a.category {
        d.category = v;
    }
    if let Some(v) = a.risk {
        d.risk = v;
    }
    if let Some(v) = a.status {
        d.status = v;
    }
    if let Some(v) = a.language {
        d.language = v;
    }
    if let Some(v) = a.expires_at {
        d.expires_at = Some(v);
    }
    let c = &mut d.content;
    macro_rules! set {
        ($dst:expr, $src:expr) => {
            if let Some(v) = &$src {
                $dst = Some(v.clone());
            }
        };
    }
    set!(c.subject.reference, a.reference);
    set!(c.subject.given_name, a.given_name);
    set!(c.subject.age, a.age);
    set!(c.subject.description, a.description);
    set!(c.last_seen.at, a.last_seen_at);
    set!(c.last_seen.place, a.place);
    set!(c.last_seen.geo, a.geo);
    set!(c.instructions, a.instructions);
    set!(c.contact, a.contact);
    if !a.to.is_empty() {
        d.to = a.to.clone();
    }
    if !a.clear.is_empty() {
        let keep = a.clear.iter().fold(filet_proto::FieldSet::all(), |set, f| {
            filet_proto::FieldPath::ALL
                .iter()
                .filter(|g| *g != f && set.contains(**g))
                .fold(filet_proto::FieldSet::EMPTY, |s, g| s.with(*g))
        });
        d.content = d.content.redact(keep);
    }
}

/// Checks a draft locally, posts it and prints the receipt.
pub async fn post_and_print(cli: &Cli, node: &Node, draft: AlertDraft) -> Result<(), Failure> {
    if let Err(invalid) = draft.validate(Timestamp::now()) {
        return Err(InputError(format!("invalid alert: {invalid}")).into());
    }
    let receipt = node.post(draft).await.map_err(refusal_context)?;
    if cli.json {
        print_json(&receipt_json(&receipt));
    } else {
        outp!("{}", receipt_text(&receipt));
    }
    Ok(())
}
