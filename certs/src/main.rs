//! `filet-certs`: the agreement's PKI.
use std::process::ExitCode;
fn main() -> ExitCode {
    ExitCode::SUCCESS
}
