//! Exit codes, in one place: [`Exit`] names each value `filet` returns (the values are part
//! of its interface: scripts test them), and [`Failure`] carries an error with its code,
//! found from the error's causes by [`code_of`].

use filet_client::audit::AuditError;
use filet_client::audit_dir::AuditDirError;
use filet_client::ClientError;
use filet_proto::wire::ErrorCode;

/// What `filet` returns to the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked (or printed `--help` / `--version`).
    Success = 0,
    /// 1: an error not listed below (the relay's internal error or busy, a protocol error,
    /// the runtime cannot start).
    Error = 1,
    /// 2: bad command line (clap's usage error).
    Usage = 2,
    /// 3: refused by the relay (not permitted, no audit right, rate limited, mailbox full).
    Refused = 3,
    /// 4: invalid alert or input (file, profile, index out of range, missing audit
    /// directory, a report option that cannot be right: --from after --to, an unknown
    /// party, a malformed key).
    Invalid = 4,
    /// 5: cannot connect (address, TLS, certificate refused).
    Connect = 5,
    /// 6: audit verification failed (signature, proof, entry).
    Verify = 6,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// An error with its exit code.
pub struct Failure {
    /// The exit code.
    pub code: Exit,
    /// The error and its causes (printed on one line by [`crate::cli::output::chain_text`]).
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = code_of(&error);
        Failure { code, error }
    }
}

/// Bad input given by the user (a file, a flag's value, a missing option): exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn client_code(c: &ClientError) -> Exit {
    match c {
        ClientError::Relay(r) => match r.code {
            ErrorCode::InvalidAlert | ErrorCode::BadRequest => Exit::Invalid,
            ErrorCode::Internal | ErrorCode::Busy => Exit::Error,
            _ => Exit::Refused,
        },
        ClientError::File { .. } | ClientError::Profile { .. } | ClientError::Tls(_) => {
            Exit::Invalid
        }
        ClientError::Address { .. } | ClientError::Connection(_) | ClientError::Timeout(_) => {
            Exit::Connect
        }
        ClientError::Protocol(_) => Exit::Error,
    }
}

/// The exit code of an error: that of the first cause `filet` knows.
pub fn code_of(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return client_code(c);
        }
        if let Some(a) = cause.downcast_ref::<AuditError>() {
            return match a {
                AuditError::Client(c) => client_code(c),
                AuditError::BadRequest(_) => Exit::Invalid,
                AuditError::Denied(_) => Exit::Refused,
                _ => Exit::Verify,
            };
        }
        if let Some(a) = cause.downcast_ref::<AuditDirError>() {
            return match a {
                AuditDirError::Client(c) => client_code(c),
                AuditDirError::Key(_) | AuditDirError::NoDirectory { .. } => Exit::Invalid,
                _ => Exit::Verify,
            };
        }
        if cause.downcast_ref::<InputError>().is_some() {
            return Exit::Invalid;
        }
    }
    Exit::Error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_are_those_documented() {
        let values = [
            (Exit::Success, 0),
            (Exit::Error, 1),
            (Exit::Usage, 2),
            (Exit::Refused, 3),
            (Exit::Invalid, 4),
            (Exit::Connect, 5),
            (Exit::Verify, 6),
        ];
        for (exit, value) in values {
            assert_eq!(exit as u8, value, "{exit:?}");
        }
    }

    #[test]
    fn an_input_error_under_context_is_invalid_input() {
        let e = anyhow::Error::new(InputError("--lang xx: fr or en".into())).context("console");
        assert_eq!(code_of(&e), Exit::Invalid);
        assert_eq!(code_of(&anyhow::anyhow!("something else")), Exit::Error);
    }
}
