//! `filet export --cap ID`: an alert as a CAP 1.2 `<alert>` (scope Private, addresses = its
//! recipients).

use filet_proto::AlertId;

use crate::cli::args::Cli;
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::Failure;
use crate::cli::output::outp;

/// `filet export --cap ID`.
pub async fn run(cli: &Cli, id: &AlertId) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let (alert, recipients) = node.get_alert(*id).await.map_err(refusal_context)?;
    // A recipient's export addresses its own unit: it knows no other recipient.
    let own = [node.whoami().await?.principal.unit];
    let recipients = if recipients.is_empty() {
        &own[..]
    } else {
        &recipients[..]
    };
    let xml = filet_proto::cap::export(&filet_proto::cap::ExportInput {
        envelope: &alert.envelope,
        content: &alert.content,
        note: alert.note.as_deref(),
        recipients,
        references_sent: None,
    });
    outp!("{xml}");
    node.close().await;
    Ok(())
}
