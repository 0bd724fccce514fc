//! The node a command connects as: its configuration from `--profile` (or
//! `$FILET_PROFILE`) or from `--relay`, `--ca`, `--cert` and `--key`, and the connections
//! a command opened, closed at its end.

use filet_client::{ClientError, Closer, Node, NodeConfig};
use filet_proto::profile::Profile;

use super::args::Cli;
use super::exit::{Failure, InputError};

/// The node's configuration from the global options.
pub fn node_config(cli: &Cli) -> Result<NodeConfig, Failure> {
    if let Some(p) = &cli.profile {
        return Ok(NodeConfig::from_profile_file(p)?);
    }
    match (&cli.relay, &cli.ca, &cli.cert, &cli.key) {
        (Some(relay), Some(ca), Some(cert), Some(key)) => {
            let server_name = cli
                .server_name
                .clone()
                .unwrap_or_else(|| relay.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']']).to_owned()).unwrap_or_else(|| relay.clone()));
            Ok(NodeConfig::from_profile(&Profile {
                relay: relay.clone(),
                server_name,
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })?)
        }
        _ => Err(InputError(
            "no node profile: give --profile FILE (or set FILET_PROFILE), or --relay, --ca, --cert and --key".into(),
        )
        .into()),
    }
}

/// Connections this command opened, closed cleanly at the end whatever happens (else the
/// relay keeps them until its idle timeout and counts them against the principal's limit).
static OPENED: std::sync::Mutex<Vec<Closer>> = std::sync::Mutex::new(Vec::new());

/// Connects as the node the global options name; [`close_opened`] closes it at the end.
pub async fn connect(cli: &Cli) -> Result<Node, Failure> {
    let node = Node::connect(&node_config(cli)?).await?;
    if let Ok(mut o) = OPENED.lock() {
        o.push(node.closer());
    }
    Ok(node)
}

/// Closes every connection [`connect`] opened.
pub async fn close_opened() {
    let opened: Vec<Closer> = OPENED
        .lock()
        .map(|mut o| o.drain(..).collect())
        .unwrap_or_default();
    for c in opened {
        c.close().await;
    }
}

/// A request's error with what happened ("refused by the relay (Code)") as its context.
pub fn refusal_context(e: ClientError) -> anyhow::Error {
    let msg = match &e {
        ClientError::Relay(r) => format!("refused by the relay ({:?})", r.code),
        _ => "request failed".to_string(),
    };
    anyhow::Error::new(e).context(msg)
}
