//! Node profiles: what a node needs to reach the relay, as a TOML file written by
//! `filet-certs dev` / `filet-certs node` and read by `filet --profile FILE`.
//!
//! ```toml
//! relay = "127.0.0.1:4433"       # address to dial (host:port)
//! server_name = "127.0.0.1"      # name the relay certificate must carry (DNS or IP)
//! ca = "../ca.crt.pem"           # the agreement's CA certificate
//! cert = "../nodes/SPVQ-ESM.crt.pem"
//! key = "../nodes/SPVQ-ESM.key.pem"
//! ```
//!
//! Relative paths are relative to the directory of the profile file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A node profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Relay address, `host:port`.
    pub relay: String,
    /// The DNS name or IP address the relay's certificate must be valid for.
    pub server_name: String,
    /// PEM file of the agreement's CA certificate.
    pub ca: PathBuf,
    /// PEM file of this node's certificate.
    pub cert: PathBuf,
    /// PEM file of this node's private key (PKCS#8).
    pub key: PathBuf,
}

impl Profile {
    /// Parses a profile; relative paths are resolved against `base` (the profile's
    /// directory).
    ///
    /// # Errors
    /// The TOML parser's message (line, column, key), e.g. for an unknown key.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let mut p: Profile = toml::from_str(text).map_err(|e| e.to_string())?;
        for path in [&mut p.ca, &mut p.cert, &mut p.key] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(p)
    }

    /// The profile as TOML text, paths as they are.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_and_refuses_unknown_keys() {
        let p = Profile {
            relay: "127.0.0.1:4433".into(),
            server_name: "127.0.0.1".into(),
            ca: "../ca.crt.pem".into(),
            cert: "/abs/n.crt.pem".into(),
            key: "k.pem".into(),
        };
        let back = Profile::parse(&p.to_toml(), Path::new("/pki/profiles")).unwrap();
        assert_eq!(back.ca, PathBuf::from("/pki/profiles/../ca.crt.pem"));
        assert_eq!(back.cert, PathBuf::from("/abs/n.crt.pem"));
        assert_eq!(back.key, PathBuf::from("/pki/profiles/k.pem"));
        let e =
            Profile::parse(&format!("{}colour = 1\n", p.to_toml()), Path::new("/")).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }
}
