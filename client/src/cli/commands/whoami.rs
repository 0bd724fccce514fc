//! `filet whoami`: this node's principal and what the agreement lets it do.

use crate::cli::args::Cli;
use crate::cli::connect::connect;
use crate::cli::exit::Failure;
use crate::cli::output::{outln, print_json};

/// `filet whoami`.
pub async fn run(cli: &Cli) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let w = node.whoami().await?;
    if cli.json {
        print_json(&serde_json::json!({
            "principal": w.principal.to_string(),
            "agreement": w.agreement_id,
            "agreement_version": w.agreement_version,
            "may_send_under": w.may_send_under,
            "may_receive_under": w.may_receive_under,
            "audit_right": w.audit_right,
        }));
    } else {
        outln!("principal   {}", w.principal);
        outln!("agreement   {} v{}", w.agreement_id, w.agreement_version);
        outln!("may send    {}", list_or_none(&w.may_send_under));
        outln!("may receive {}", list_or_none(&w.may_receive_under));
        outln!("audit right {}", w.audit_right);
    }
    node.close().await;
    Ok(())
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(no rule)".into()
    } else {
        v.join(", ")
    }
}
