//! `filet status ID`: where an alert of the node's party stands with each recipient unit.

use filet_proto::AlertId;

use crate::cli::args::Cli;
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::Failure;
use crate::cli::output::{outp, print_json};

/// `filet status ID`.
pub async fn run(cli: &Cli, id: &AlertId) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let st = node.status(*id).await.map_err(refusal_context)?;
    if cli.json {
        print_json(&filet_client::render::status_json(*id, &st));
    } else {
        outp!("{}", filet_client::render::status_text(*id, &st));
    }
    node.close().await;
    Ok(())
}
