//! `filet`: a node of the agreement — post alerts, receive them, acknowledge them, audit.
//!
//! Exit codes ([`cli::exit::Exit`]): 0 success; 1 an error not listed here; 2 bad command
//! line (clap); 3 refused by the relay (not permitted, no audit right, rate limited, mailbox
//! full); 4 invalid alert or input (file, profile, index out of range, missing audit
//! directory, a report option that cannot be right: --from after --to, an unknown party, a
//! malformed key); 5 cannot connect (address, TLS, certificate refused); 6 audit
//! verification failed (signature, proof, entry).
//!
//! This file parses the command line, starts the runtime and maps the result to an exit
//! code; the rest is in [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::Cli;
use cli::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Success.into()
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("filet: cannot start the runtime: {e}");
            return Exit::Error.into();
        }
    };
    let result = rt.block_on(async {
        let r = cli::run(cli).await;
        cli::connect::close_opened().await;
        r
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("filet: {}", cli::output::chain_text(&f.error));
            f.code.into()
        }
    }
}
