//! `filet inbox [--follow]`: what waits in this unit's mailbox; with --follow, stay
//! connected and print each alert as it is pushed, reconnecting with backoff.

use std::collections::HashSet;
use std::time::Duration;

use filet_client::render::alert_text;
use filet_client::{ClientError, Node};
use filet_proto::AlertId;

use crate::cli::args::Cli;
use crate::cli::connect::{connect, node_config};
use crate::cli::exit::Failure;
use crate::cli::output::{escape_controls, outln, print_json};

/// `filet inbox`.
pub async fn run(cli: &Cli) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let alerts = node.inbox().await?;
    if alerts.is_empty() && !cli.json {
        outln!("no alert waiting");
    }
    for d in &alerts {
        if cli.json {
            print_json(&d.to_json());
        } else {
            outln!("{}", alert_text(d));
        }
    }
    node.close().await;
    Ok(())
}

/// A refusal that retrying will not cure: the certificate is refused, revoked, expired, or
/// names a unit the agreement does not know.
fn is_permanent(e: &ClientError) -> bool {
    match e {
        ClientError::Connection(m) => {
            m.contains("TLS alert") || m.contains("is not a party") || m.contains("is not a unit")
        }
        ClientError::File { .. } | ClientError::Profile { .. } | ClientError::Tls(_) => true,
        _ => false,
    }
}

/// `inbox --follow`: subscribe, print each alert once, reconnect with backoff.
pub async fn follow(cli: &Cli) -> Result<(), Failure> {
    let cfg = node_config(cli)?;
    let mut seen: HashSet<AlertId> = HashSet::new();
    let mut backoff = Duration::from_millis(500);
    let mut connected_once = false;
    loop {
        let node = match Node::connect(&cfg).await {
            Ok(n) => n,
            Err(e) if connected_once && !is_permanent(&e) => {
                eprintln!(
                    "filet: relay unavailable ({}); retrying in {backoff:?}",
                    escape_controls(&e.to_string())
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut rx = match node.subscribe().await {
            Ok(rx) => rx,
            Err(e) if connected_once && !is_permanent(&e) => {
                eprintln!(
                    "filet: {}; retrying in {backoff:?}",
                    escape_controls(&e.to_string())
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        connected_once = true;
        backoff = Duration::from_millis(500);
        if !cli.json {
            eprintln!("filet: following the mailbox (Ctrl-C to stop)");
        }
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => {
                        if !seen.insert(d.envelope.id) {
                            continue;
                        }
                        if cli.json {
                            print_json(&d.to_json());
                        } else {
                            outln!("{}", alert_text(&d));
                        }
                    }
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => {
                    node.close().await;
                    return Ok(());
                }
            }
        }
        let reason = node
            .close_reason()
            .unwrap_or_else(|| "connection lost".into());
        eprintln!(
            "filet: disconnected ({}); reconnecting",
            escape_controls(&reason)
        );
    }
}
