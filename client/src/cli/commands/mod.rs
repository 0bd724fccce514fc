//! One module per command of `filet`, each with a `run` taking the parsed command line
//! (`located` and `cancel` share [`close`]; `update` builds on [`post`]'s drafts).

pub mod ack;
pub mod audit;
pub mod cap;
pub mod close;
pub mod console;
pub mod export;
pub mod inbox;
pub mod post;
pub mod status;
pub mod update;
pub mod whoami;
