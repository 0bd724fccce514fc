//! The relay's settings: `relay.toml` (every key optional but the paths; unknown keys are
//! errors) or command-line flags. Every key, its default and its bounds:
//!
//! ```toml
//! listen = "127.0.0.1:4433"          # UDP address of the QUIC endpoint
//! data_dir = "data"                  # alert store, audit log, audit key
//! agreement = "agreement.toml"       # the information-sharing agreement
//!
//! [pki]                              # or: pki_dir = "pki" for the filet-certs layout
//! ca = "pki/ca.crt.pem"
//! cert = "pki/relay.crt.pem"
//! key = "pki/relay.key.pem"
//! crl = "pki/crl.pem"
//!
//! [limits]                           # each from 1 to its maximum (posts_per_minute: 0 too)
//! max_connections = 1000             # open connections; more are refused (at most 100000)
//! max_connections_per_principal = 8  # open connections of one principal (at most 1000)
//! max_streams_per_connection = 8     # concurrent bidirectional streams per connection (at most 1024)
//! idle_timeout_secs = 60             # a silent connection is closed after this (at most 86400)
//! frame_timeout_secs = 10            # a started frame must complete within this (at most 3600)
//! max_in_flight_per_stream = 64      # pipelined requests per stream before reading pauses (at most 4096)
//! posts_per_minute = 600             # per principal, 0 for no limit; more are refused with a retry delay (at most 1000000)
//! mailbox_max = 10000                # unacknowledged alerts per unit; a post to a full mailbox is refused (at most 1000000)
//! mailbox_max_per_sender = 1000      # of those, from one sender unit; more from it are refused (at most 1000000)
//!
//! [commit]
//! max_batch = 1024                   # most operations per group commit (at most 65536)
//! queue = 8192                       # operations waiting for the commit thread (at most 1048576)
//!
//! [audit]
//! origin = "filet.relay/<agreement id>"   # checkpoint origin, fixed at the first start
//!
//! [metrics]
//! listen = "127.0.0.1:9464"          # HTTP address of GET /metrics; not set (the default): off
//! ```
//!
//! The maxima are in [`BOUNDS`]: far above what a province-wide deployment needs, far below
//! what the runtime can hold (a tokio semaphore or channel, a QUIC variable-length
//! integer). A value out of bounds is an error naming the file, the key, the value and the
//! bound.
//!
//! Relative paths are relative to the directory of the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid (the message names the line and key).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and key.
        message: String,
    },
    /// A required setting is missing.
    #[error("{0} is required (in the configuration file or as a flag)")]
    Missing(&'static str),
}

/// Where the relay's certificate, key, the CA and the CRL are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiPaths {
    /// The agreement's CA certificate (PEM).
    pub ca: PathBuf,
    /// The relay's certificate chain (PEM).
    pub cert: PathBuf,
    /// The relay's private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The certificate revocation list (PEM); required: an empty CRL is fine.
    pub crl: PathBuf,
}

impl PkiPaths {
    /// The paths of a `filet-certs` directory.
    pub fn from_dir(dir: &Path) -> Self {
        PkiPaths {
            ca: dir.join("ca.crt.pem"),
            cert: dir.join("relay.crt.pem"),
            key: dir.join("relay.key.pem"),
            crl: dir.join("crl.pem"),
        }
    }
}

/// Limits, each with its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections (default 1000, at most 100 000).
    pub max_connections: usize,
    /// Open connections of one principal (default 8, at most 1000): one node cannot take
    /// every slot.
    pub max_connections_per_principal: usize,
    /// Concurrent bidirectional streams per connection (default 8, at most 1024).
    pub max_streams_per_connection: u32,
    /// Idle timeout, seconds (default 60, at most 86 400: one day).
    pub idle_timeout_secs: u64,
    /// Time a started frame may take, seconds (default 10, at most 3600).
    pub frame_timeout_secs: u64,
    /// Pipelined requests per stream (default 64, at most 4096).
    pub max_in_flight_per_stream: usize,
    /// Posts per principal per minute (default 600, at most 1 000 000; 0: no limit).
    pub posts_per_minute: u32,
    /// Unacknowledged alerts per unit (default 10 000, at most 1 000 000). `located` and
    /// `cancel` are accepted even into a full mailbox.
    pub mailbox_max: usize,
    /// Unacknowledged alerts from one sender unit in one unit's mailbox (default 1000, at
    /// most 1 000 000): one sender cannot fill a mailbox alone.
    pub mailbox_max_per_sender: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            max_connections_per_principal: 8,
            max_streams_per_connection: 8,
            idle_timeout_secs: 60,
            frame_timeout_secs: 10,
            max_in_flight_per_stream: 64,
            posts_per_minute: 600,
            mailbox_max: 10_000,
            mailbox_max_per_sender: 1_000,
        }
    }
}

impl Limits {
    /// The frame timeout.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs.max(1))
    }
}

/// Group commit settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitSettings {
    /// Most operations per commit (default 1024, at most 65 536).
    pub max_batch: usize,
    /// Operations queued for the commit thread (default 8192, at most 1 048 576); when
    /// full, connections wait.
    pub queue: usize,
}

impl Default for CommitSettings {
    fn default() -> Self {
        CommitSettings {
            max_batch: 1024,
            queue: 8192,
        }
    }
}

/// Audit log settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The checkpoint origin (default `filet.relay/<agreement id>`); fixed in the data
    /// directory at the first start.
    pub origin: Option<String>,
}

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// HTTP address of `GET /metrics`; off when not set.
    pub listen: Option<SocketAddr>,
}

/// The bounds of one numeric setting, as [`RelayConfig::load`] checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The key, `section.name` as in `relay.toml`.
    pub key: &'static str,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
}

/// Every numeric setting with its bounds. The maxima are far above what a province-wide
/// deployment needs and far below what breaks the runtime: a tokio semaphore or channel
/// holds fewer than 2^61 permits, a QUIC idle timeout is a variable-length integer of
/// milliseconds, a group commit allocates its batch up front.
pub const BOUNDS: [Bound; 11] = [
    Bound {
        key: "limits.max_connections",
        min: 1,
        max: 100_000,
    },
    Bound {
        key: "limits.max_connections_per_principal",
        min: 1,
        max: 1_000,
    },
    Bound {
        key: "limits.max_streams_per_connection",
        min: 1,
        max: 1_024,
    },
    Bound {
        key: "limits.idle_timeout_secs",
        min: 1,
        max: 86_400,
    },
    Bound {
        key: "limits.frame_timeout_secs",
        min: 1,
        max: 3_600,
    },
    Bound {
        key: "limits.max_in_flight_per_stream",
        min: 1,
        max: 4_096,
    },
    Bound {
        key: "limits.posts_per_minute",
        min: 0,
        max: 1_000_000,
    },
    Bound {
        key: "limits.mailbox_max",
        min: 1,
        max: 1_000_000,
    },
    Bound {
        key: "limits.mailbox_max_per_sender",
        min: 1,
        max: 1_000_000,
    },
    Bound {
        key: "commit.max_batch",
        min: 1,
        max: 65_536,
    },
    Bound {
        key: "commit.queue",
        min: 1,
        max: 1_048_576,
    },
];

/// Checks every numeric setting against [`BOUNDS`] and the audit origin.
///
/// # Errors
/// What is wrong, naming the key, the value and the bound.
pub fn check_settings(
    limits: &Limits,
    commit: &CommitSettings,
    audit: &AuditSettings,
) -> Result<(), String> {
    let l = limits;
    let values: [u64; 11] = [
        l.max_connections as u64,
        l.max_connections_per_principal as u64,
        u64::from(l.max_streams_per_connection),
        l.idle_timeout_secs,
        l.frame_timeout_secs,
        l.max_in_flight_per_stream as u64,
        u64::from(l.posts_per_minute),
        l.mailbox_max as u64,
        l.mailbox_max_per_sender as u64,
        commit.max_batch as u64,
        commit.queue as u64,
    ];
    for (b, v) in BOUNDS.iter().zip(values) {
        if v < b.min {
            return Err(format!(
                "{} is {v}: it must be at least {} (only limits.posts_per_minute = 0 means no limit)",
                b.key, b.min
            ));
        }
        if v > b.max {
            return Err(format!(
                "{} is {v}: it must be at most {} (see docs/operations.md, Limits)",
                b.key, b.max
            ));
        }
    }
    if let Some(o) = &audit.origin {
        // The origin is the log's C2SP signed-note key name: non-empty, no '+', no space.
        if o.is_empty() || o.contains('+') || o.chars().any(char::is_whitespace) {
            return Err(format!(
                "audit.origin is {o:?}: a checkpoint origin must be non-empty, without '+' or spaces (e.g. \"filet.relay/<agreement id>\"), or left out"
            ));
        }
    }
    Ok(())
}

/// The file form of the configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    agreement: Option<PathBuf>,
    pki_dir: Option<PathBuf>,
    pki: Option<PkiPaths>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    commit: CommitSettings,
    #[serde(default)]
    audit: AuditSettings,
    #[serde(default)]
    metrics: MetricsSettings,
}

/// The relay's complete, checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// UDP address to listen on (default `127.0.0.1:4433`).
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Agreement file.
    pub agreement: PathBuf,
    /// PKI files.
    pub pki: PkiPaths,
    /// Limits.
    pub limits: Limits,
    /// Group commit.
    pub commit: CommitSettings,
    /// Audit log.
    pub audit: AuditSettings,
    /// Metrics endpoint.
    pub metrics: MetricsSettings,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--agreement`.
    pub agreement: Option<PathBuf>,
    /// `--pki` (a filet-certs directory).
    pub pki_dir: Option<PathBuf>,
}

/// The `relay.toml` that `filet-relay init` writes: every setting commented out at its
/// default (the metrics endpoint, off by default, at a suggested address), except the
/// paths; each limit with its bounds.
pub const TEMPLATE: &str = r#"# Filet relay configuration. Relative paths are relative to this file's directory.
# Unknown keys are errors. Every commented setting shows its default, except [metrics] listen:
# the metrics endpoint is off unless you set it.

# UDP address of the QUIC endpoint (loopback by default; use the public address to serve nodes).
# listen = "127.0.0.1:4433"

# Alert store, audit log and the relay's keys (back this directory up; see docs/operations.md).
data_dir = "data"

# The information-sharing agreement (reload it live with SIGHUP or `filet-relay reload`).
agreement = "agreement.toml"

# The agreement's PKI as `filet-certs` writes it: ca.crt.pem, relay.crt.pem, relay.key.pem, crl.pem.
pki_dir = "pki"
# Or each file:
# [pki]
# ca = "pki/ca.crt.pem"
# cert = "pki/relay.crt.pem"
# key = "pki/relay.key.pem"
# crl = "pki/crl.pem"

[limits]
# Each limit is a whole number from 1 to the maximum given; out of bounds is an error.
# Open connections; more are refused (at most 100000).
# max_connections = 1000
# Open connections of one principal; more are refused (one node cannot take every slot; at most 1000).
# max_connections_per_principal = 8
# Concurrent bidirectional streams per connection (at most 1024).
# max_streams_per_connection = 8
# A silent connection is closed after this many seconds (nodes send keep-alives every 10 s; at most 86400).
# idle_timeout_secs = 60
# A frame that has started must complete within this many seconds (at most 3600).
# frame_timeout_secs = 10
# Pipelined requests per stream before the relay stops reading it (at most 4096).
# max_in_flight_per_stream = 64
# Posts per principal per minute (0: no limit; at most 1000000); more are refused with a retry delay.
# posts_per_minute = 600
# Unacknowledged alerts per unit (at most 1000000); a post to a full mailbox is refused whole,
# nothing accepted is dropped; located and cancel are accepted even into a full mailbox.
# mailbox_max = 10000
# Of those, from one sender unit (at most 1000000): one sender cannot fill a mailbox alone.
# mailbox_max_per_sender = 1000

[commit]
# Most operations in one group commit (at most 65536).
# max_batch = 1024
# Operations queued for the commit thread; when full, connections wait (never drop; at most 1048576).
# queue = 8192

[audit]
# The checkpoint origin (the log's name); fixed in the data directory at the first start.
# origin = "filet.relay/<agreement id>"

[metrics]
# Prometheus text format over HTTP (GET /metrics). Off by default: uncomment to serve it, on
# loopback here (each relay on a host needs its own port).
# listen = "127.0.0.1:9464"
"#;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4433";

impl RelayConfig {
    /// Reads `relay.toml` (if given) and applies the flags.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key, or the missing setting.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<RelayConfig, ConfigError> {
        let (fc, base) = match file {
            None => (FileConfig::default(), PathBuf::new()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let fc: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: path.to_owned(),
                    message: e.to_string().trim().to_owned(),
                })?;
                (fc, path.parent().map(Path::to_owned).unwrap_or_default())
            }
        };
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let pki = match (o.pki_dir, fc.pki, fc.pki_dir) {
            (Some(dir), _, _) => PkiPaths::from_dir(&dir),
            (None, Some(p), _) => PkiPaths {
                ca: rel(p.ca),
                cert: rel(p.cert),
                key: rel(p.key),
                crl: rel(p.crl),
            },
            (None, None, Some(dir)) => PkiPaths::from_dir(&rel(dir)),
            (None, None, None) => {
                return Err(ConfigError::Missing(
                    "the PKI (--pki DIR, or pki / pki_dir in relay.toml)",
                ))
            }
        };
        let listen = match o.listen.or(fc.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Missing("listen"))?,
        };
        check_settings(&fc.limits, &fc.commit, &fc.audit).map_err(|message| {
            ConfigError::Invalid {
                path: file.map(Path::to_owned).unwrap_or_default(),
                message,
            }
        })?;
        Ok(RelayConfig {
            listen,
            data_dir: o
                .data_dir
                .or(fc.data_dir.map(&rel))
                .ok_or(ConfigError::Missing(
                    "the data directory (--data-dir or data_dir)",
                ))?,
            agreement: o
                .agreement
                .or(fc.agreement.map(&rel))
                .ok_or(ConfigError::Missing(
                    "the agreement (--agreement or agreement)",
                ))?,
            pki,
            limits: fc.limits,
            commit: fc.commit,
            audit: fc.audit,
            metrics: fc.metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_with_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "data_dir = \"d\"\nagreement = \"a.toml\"\npki_dir = \"pki\"\n[limits]\nmailbox_max = 5\n").unwrap();
        let c = RelayConfig::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.data_dir, dir.path().join("d"));
        assert_eq!(c.pki.crl, dir.path().join("pki/crl.pem"));
        assert_eq!(c.limits.mailbox_max, 5);
        assert_eq!(c.limits.posts_per_minute, 600);
    }

    #[test]
    fn a_typo_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "data_dir = \"d\"\n[limits]\nmailbox_maxx = 5\n").unwrap();
        let e = RelayConfig::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("relay.toml") && e.contains("mailbox_maxx") && e.contains("line 3"),
            "{e}"
        );
    }

    #[test]
    fn the_init_template_parses_and_names_every_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, TEMPLATE).unwrap();
        let c = RelayConfig::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.commit, CommitSettings::default());
        assert_eq!(c.metrics.listen, None);
        for key in [
            "max_connections",
            "max_connections_per_principal",
            "max_streams_per_connection",
            "idle_timeout_secs",
            "frame_timeout_secs",
            "max_in_flight_per_stream",
            "posts_per_minute",
            "mailbox_max",
            "mailbox_max_per_sender",
            "max_batch",
            "queue",
            "origin",
            "listen",
        ] {
            assert!(
                TEMPLATE.contains(&format!("# {key} = ")),
                "{key} is not documented in the template"
            );
            // The module doc, which the README and docs/operations.md cite for every key.
            assert!(
                include_str!("config.rs").contains(&format!("\n//! {key} = ")),
                "{key} is not documented in relay/src/config.rs"
            );
        }
    }

    /// `key = value` in the section of `key` (`limits.mailbox_max` → `[limits]`).
    fn file_with(dir: &Path, key: &str, value: &str) -> PathBuf {
        let (section, name) = key.split_once('.').unwrap();
        let path = dir.join("relay.toml");
        std::fs::write(
            &path,
            format!("data_dir = \"d\"\nagreement = \"a.toml\"\npki_dir = \"pki\"\n[{section}]\n{name} = {value}\n"),
        )
        .unwrap();
        path
    }

    #[test]
    fn every_numeric_key_above_its_maximum_is_refused_naming_the_file_key_value_and_maximum() {
        let dir = tempfile::tempdir().unwrap();
        for b in BOUNDS {
            let path = file_with(dir.path(), b.key, &(b.max + 1).to_string());
            let e = RelayConfig::load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "{}: {} is {}: it must be at most {} (see docs/operations.md, Limits)",
                    path.display(),
                    b.key,
                    b.max + 1,
                    b.max
                )
            );
            let path = file_with(dir.path(), b.key, &b.max.to_string());
            assert!(
                RelayConfig::load(Some(&path), Overrides::default()).is_ok(),
                "{} = {} is refused",
                b.key,
                b.max
            );
        }
    }

    #[test]
    fn every_numeric_key_at_u64_max_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for b in BOUNDS {
            let path = file_with(dir.path(), b.key, &u64::MAX.to_string());
            let e = RelayConfig::load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            let name = b.key.split_once('.').unwrap().1;
            assert!(
                e.starts_with(&format!("{}: ", path.display())) && e.contains(name),
                "{}: {e}",
                b.key
            );
        }
    }

    #[test]
    fn the_bounds_are_in_the_template_and_the_operations_guide() {
        let guide = include_str!("../../docs/operations.md");
        for b in BOUNDS {
            let name = b.key.split_once('.').unwrap().1;
            let at = TEMPLATE.find(&format!("\n# {name} = ")).unwrap();
            // The comment lines above the key, up to the previous setting or section.
            let comment: Vec<&str> = TEMPLATE[..at]
                .lines()
                .rev()
                .take_while(|l| !l.contains(" = ") && !l.starts_with('['))
                .collect();
            assert!(
                comment.concat().contains(&format!("at most {}", b.max)),
                "{}: {comment:?}",
                b.key
            );
            let row = guide
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", b.key)))
                .unwrap_or_else(|| panic!("{} is not in the limits table", b.key));
            assert!(row.contains(&format!("| {} |", b.max)), "{}: {row}", b.key);
        }
    }

    #[test]
    fn an_empty_audit_origin_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for (value, shown) in [
            ("\"\"", "\"\""),
            ("\"a b\"", "\"a b\""),
            ("\"a+b\"", "\"a+b\""),
        ] {
            let path = file_with(dir.path(), "audit.origin", value);
            let e = RelayConfig::load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "{}: audit.origin is {shown}: a checkpoint origin must be non-empty, without '+' or spaces (e.g. \"filet.relay/<agreement id>\"), or left out",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn flags_alone_suffice() {
        let c = RelayConfig::load(
            None,
            Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                data_dir: Some("D".into()),
                agreement: Some("A".into()),
                pki_dir: Some("P".into()),
            },
        )
        .unwrap();
        assert_eq!(c.pki.ca, PathBuf::from("P/ca.crt.pem"));
        assert!(RelayConfig::load(None, Overrides::default()).is_err());
    }
}
