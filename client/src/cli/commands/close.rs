//! `filet located ID` and `filet cancel ID --reason R`: the follow-ups that close an alert
//! (every recipient is told), with the original's category and status and no content.

use filet_proto::alert::Kind;
use filet_proto::{AlertDraft, AlertId};

use crate::cli::args::Cli;
use crate::cli::commands::post::post_and_print;
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::Failure;

/// `filet located ID [--note N]`.
pub async fn located(cli: &Cli, id: AlertId, note: Option<String>) -> Result<(), Failure> {
    close_alert(cli, id, Kind::Located, note).await
}

/// `filet cancel ID --reason R`.
pub async fn cancel(cli: &Cli, id: AlertId, reason: String) -> Result<(), Failure> {
    close_alert(cli, id, Kind::Cancel, Some(reason)).await
}

/// `located` and `cancel`: the original's category and status, no content.
async fn close_alert(
    cli: &Cli,
    id: AlertId,
    kind: Kind,
    note: Option<String>,
) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let (orig, _) = node.get_alert(id).await.map_err(refusal_context)?;
    let mut d = AlertDraft::new(orig.envelope.category, orig.envelope.risk, "", "");
    d.content = Default::default();
    d.kind = kind;
    d.references = Some(id);
    d.status = orig.envelope.status;
    d.language = orig.envelope.language;
    d.note = note;
    post_and_print(cli, &node, d).await?;
    node.close().await;
    Ok(())
}
