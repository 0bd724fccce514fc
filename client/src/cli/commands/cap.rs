//! `filet cap check FILE`: a CAP 1.2 document checked against the standard's required
//! elements and value lists; and [`read_cap`], the bounded read of a CAP file.

use std::path::Path;

use crate::cli::args::{CapCommand, Cli};
use crate::cli::exit::{Failure, InputError};
use crate::cli::output::{outln, print_json};

/// `filet cap check FILE`.
pub fn run(cli: &Cli, cmd: &CapCommand) -> Result<(), Failure> {
    let CapCommand::Check { file } = cmd;
    let xml = read_cap(file)?;
    match filet_proto::cap::check(&xml) {
        Ok(a) => {
            if cli.json {
                print_json(
                    &serde_json::json!({"valid": true, "identifier": a.identifier, "infos": a.info.len()}),
                );
            } else {
                outln!(
                    "{}: valid CAP {} alert {} ({} info block(s))",
                    file.display(),
                    match a.version {
                        filet_proto::cap::CapVersion::V1_1 => "1.1",
                        filet_proto::cap::CapVersion::V1_2 => "1.2",
                    },
                    a.identifier.as_deref().unwrap_or("?"),
                    a.info.len()
                );
            }
        }
        Err(e) => {
            return Err(InputError(format!(
                "{}: not a valid CAP 1.2 alert: {e}",
                file.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Reads a CAP file: at most one byte more than the limit (so `/dev/zero` or a huge file is
/// refused without being read whole), then decodes it by the encoding its XML declaration
/// names.
pub fn read_cap(path: &Path) -> Result<String, Failure> {
    use std::io::Read;
    let limit = filet_proto::cap::MAX_CAP_LEN;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| InputError(format!("cannot read CAP file {}: {e}", path.display())))?;
    if bytes.len() > limit {
        return Err(InputError(format!(
            "CAP file {}: more than {limit} bytes, the limit of a CAP alert; nothing was read",
            path.display()
        ))
        .into());
    }
    filet_proto::cap::decode(&bytes)
        .map_err(|e| InputError(format!("CAP file {}: {e}", path.display())).into())
}
