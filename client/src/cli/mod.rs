//! The `filet` command, behind its thin `main`:
//!
//! - [`args`]: the command line (clap derive), with its parse tests;
//! - [`exit`]: the exit codes ([`exit::Exit`]) and the error that carries one;
//! - [`connect`]: the node's configuration from the global options, and its connections;
//! - [`output`]: standard output that a closed pipe ends quietly, terminal-safe errors;
//! - [`commands`]: one module per command.
//!
//! To add a command: a variant of [`args::Command`] (its doc comment is its help), a module
//! in `commands/` with a `run`, an arm in [`run`], and a parse test in `args.rs`.

pub mod args;
pub mod commands;
pub mod connect;
pub mod exit;
pub mod output;

use args::{Cli, Command};
use exit::Failure;

/// Runs the parsed command (the connections it opens are closed by the caller with
/// [`connect::close_opened`]).
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let cli = &cli;
    match &cli.command {
        Command::Whoami => commands::whoami::run(cli).await,
        Command::Post(args) => commands::post::run(cli, args).await,
        Command::Inbox { follow: false } => commands::inbox::run(cli).await,
        Command::Inbox { follow: true } => commands::inbox::follow(cli).await,
        Command::Update { id, args } => commands::update::run(cli, id, args).await,
        Command::Located { id, note } => commands::close::located(cli, *id, note.clone()).await,
        Command::Cancel { id, reason } => commands::close::cancel(cli, *id, reason.clone()).await,
        Command::Export { cap: _, id } => commands::export::run(cli, id).await,
        Command::Cap(cmd) => commands::cap::run(cli, cmd),
        Command::Ack { ids } => commands::ack::run(cli, ids).await,
        Command::Audit(cmd) => commands::audit::run(cli, cmd).await,
        Command::Status { id } => commands::status::run(cli, id).await,
        Command::Console {
            listen,
            lang,
            zone,
            agreement,
        } => commands::console::run(cli, listen, lang, zone, agreement).await,
    }
}
