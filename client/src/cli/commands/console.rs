//! `filet console`: the web console served on loopback through this node.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::args::Cli;
use crate::cli::connect::node_config;
use crate::cli::exit::{Failure, InputError};
use crate::cli::output::outln;

/// `filet console [--listen A] [--lang L] [--zone Z] [--agreement F]`.
pub async fn run(
    cli: &Cli,
    listen: &SocketAddr,
    lang: &Option<String>,
    zone: &Option<String>,
    agreement: &Option<PathBuf>,
) -> Result<(), Failure> {
    let lang = match lang {
        Some(l) => Some(
            filet_client::console::Lang::from_code(l)
                .ok_or_else(|| InputError(format!("--lang {l}: fr or en")))?,
        ),
        None => None,
    };
    let cfg = filet_client::console::config(*listen, lang, zone.as_deref(), agreement.as_deref())
        .map_err(InputError)?;
    filet_client::console::run(node_config(cli)?, cfg, |s| outln!("{s}"))
        .await
        .map_err(InputError)?;
    Ok(())
}
