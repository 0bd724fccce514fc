//! `filet ack ID...`: acknowledge alerts for this unit.

use filet_proto::AlertId;

use crate::cli::args::Cli;
use crate::cli::connect::{connect, refusal_context};
use crate::cli::exit::Failure;
use crate::cli::output::{outln, print_json};

/// `filet ack ID...`.
pub async fn run(cli: &Cli, ids: &[AlertId]) -> Result<(), Failure> {
    let node = connect(cli).await?;
    for id in ids {
        let idx = node.ack(*id).await.map_err(refusal_context)?;
        if cli.json {
            print_json(
                &serde_json::json!({"alert": id.to_string(), "acknowledged": true, "audit_index": idx}),
            );
        } else {
            outln!("acknowledged {id} (audit entry #{idx})");
        }
    }
    node.close().await;
    Ok(())
}
