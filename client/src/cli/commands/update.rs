//! `filet update ID [FILE] [flags]`: an update of an alert of the node's party, from a whole
//! file or from the alert's latest content with flags over it.

use filet_client::Node;
use filet_proto::alert::Kind;
use filet_proto::{AlertDraft, AlertId};

use crate::cli::args::{Cli, PostArgs};
use crate::cli::commands::post::{apply_flags, draft_of, post_and_print};
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::{Failure, InputError};

/// `filet update ID [FILE] [flags]`.
pub async fn run(cli: &Cli, id: &AlertId, args: &PostArgs) -> Result<(), Failure> {
    if let Some(f) = args.clear.iter().find(|f| {
        matches!(
            f,
            filet_proto::FieldPath::SubjectReference | filet_proto::FieldPath::Contact
        )
    }) {
        return Err(InputError(format!(
            "--clear {f}: an update keeps subject.reference and contact (give a new value instead)"
        ))
        .into());
    }
    if !args.to.is_empty() {
        return Err(InputError(
                    "--to: an update goes to the recipients of the original alert (those the agreement still permits); it names none".into(),
                )
                .into());
    }
    let node = connect(cli).await?;
    let mut draft = match &args.file {
        Some(_) => {
            let (orig, _) = node.get_alert(*id).await.map_err(refusal_context)?;
            let d = draft_of(args)?;
            let problem = if !d.to.is_empty() {
                Some(
                    "to: an update goes to the recipients of the original alert; leave `to` out"
                        .to_owned(),
                )
            } else if d.category != orig.envelope.category {
                Some(format!(
                            "category: alert {id} is a {} alert and its updates keep that category (not {})",
                            orig.envelope.category, d.category
                        ))
            } else {
                None
            };
            if let Some(p) = problem {
                node.close().await;
                return Err(InputError(p).into());
            }
            d
        }
        None => {
            let latest = latest_content(&node, *id).await;
            let latest = match latest {
                Ok(l) => l,
                Err(e) => {
                    node.close().await;
                    return Err(e);
                }
            };
            if args.category.is_some_and(|c| c != latest.envelope.category) {
                node.close().await;
                return Err(InputError(format!(
                    "--category: alert {id} is a {} alert and its updates keep that category",
                    latest.envelope.category
                ))
                .into());
            }
            let mut d = AlertDraft::new(latest.envelope.category, latest.envelope.risk, "", "");
            d.content = latest.content;
            d.status = latest.envelope.status;
            d.language = latest.envelope.language;
            apply_flags(&mut d, args);
            d
        }
    };
    draft.kind = Kind::Update;
    draft.references = Some(*id);
    post_and_print(cli, &node, draft).await?;
    node.close().await;
    Ok(())
}

/// The newest content of alert `id`'s thread, for an update given as flags: its latest
/// update, or the alert itself. Only the unit that posted that message sees all of its
/// content; any other unit would build an update from a partial view (and silently drop
/// the fields it cannot see), so it is told to give the whole alert as a file.
async fn latest_content(node: &Node, id: AlertId) -> Result<filet_proto::Disclosed, Failure> {
    let (orig, _) = node.get_alert(id).await.map_err(refusal_context)?;
    let latest_id = orig
        .history
        .iter()
        .rev()
        .find(|h| h.kind == Some(Kind::Update))
        .map_or(id, |h| h.id);
    let latest = if latest_id == id {
        orig
    } else {
        node.get_alert(latest_id).await.map_err(refusal_context)?.0
    };
    let me = node.whoami().await?.principal.unit;
    // Only the sender's unit sees the whole content (the relay's decision, restated by
    // nobody: the same policy function).
    let seen = filet_proto::policy::alert_view(
        &me,
        latest_id,
        &latest.envelope.sender.unit,
        std::iter::empty(),
    );
    if seen != Ok(filet_proto::policy::AlertView::Sender) {
        let what = if latest_id == id {
            format!("alert {id}")
        } else {
            format!("its latest update {latest_id}")
        };
        return Err(InputError(format!(
            "{me} cannot update alert {id} from flags: it does not see all of the content of {what} (posted by {}). Only units of party {} that the agreement lets send {} alerts may update it; such a unit gives the whole updated alert in a file (the format of `filet post`): `filet update {id} FILE`",
            latest.envelope.sender.unit,
            latest.envelope.sender.party(),
            latest.envelope.category
        ))
        .into());
    }
    Ok(latest)
}
