//! [`TestNet`]: a disposable agreement — a temporary directory with the example agreement
//! and a dev PKI (generated once per test process by `filet_certs::dev`, then copied) —
//! that configures relays and connects nodes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use filet_client::{Node, NodeConfig};
use filet_proto::profile::Profile;
use filet_relay::config::{Overrides, RelayConfig};
use tempfile::TempDir;

use crate::{TestRelay, AGREEMENT};

/// A disposable agreement: a temporary directory with the example agreement
/// (`agreement.toml`), a dev PKI (`pki/`, as `filet-certs dev` writes it) and room for
/// data directories. Removed when dropped.
pub struct TestNet {
    dir: TempDir,
    /// The agreement file.
    pub agreement: PathBuf,
    /// The PKI directory (`filet-certs` layout).
    pub pki: PathBuf,
}

/// The files of one dev PKI, generated once per test process and copied into each
/// [`TestNet`] (the key pairs of 19 units take a while in a debug build).
struct PkiTemplate {
    files: Vec<(PathBuf, Vec<u8>, u32)>,
}

fn pki_template() -> &'static PkiTemplate {
    static TEMPLATE: OnceLock<PkiTemplate> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let agreement = tmp.path().join("agreement.toml");
        std::fs::write(&agreement, AGREEMENT).expect("write the agreement");
        let pki = tmp.path().join("pki");
        filet_certs::dev(&pki, &agreement, "127.0.0.1:4433", false).expect("filet_certs::dev");
        let mut files = Vec::new();
        let mut dirs = vec![pki.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("read the PKI directory") {
                let path = e.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&pki).expect("under pki").to_owned();
                    let mode = std::fs::metadata(&path)
                        .expect("metadata")
                        .permissions()
                        .mode();
                    files.push((rel, std::fs::read(&path).expect("read a PKI file"), mode));
                }
            }
        }
        PkiTemplate { files }
    })
}

impl TestNet {
    /// A new directory with the example agreement and a dev PKI whose profiles name
    /// `127.0.0.1:4433` (tests override the address: see [`TestNet::node_config`]).
    ///
    /// # Panics
    /// If the files cannot be written.
    pub fn new() -> TestNet {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let agreement = dir.path().join("agreement.toml");
        std::fs::write(&agreement, AGREEMENT).expect("write the agreement");
        let pki = dir.path().join("pki");
        for (rel, bytes, mode) in &pki_template().files {
            let path = pki.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create a PKI directory");
            }
            std::fs::write(&path, bytes).expect("write a PKI file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                .expect("set a PKI file's mode");
        }
        TestNet {
            dir,
            agreement,
            pki,
        }
    }

    /// A new directory with the example agreement and no PKI yet: `pki` names the
    /// directory for `filet-certs dev` to write.
    ///
    /// # Panics
    /// If the agreement cannot be written.
    pub fn without_pki() -> TestNet {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let agreement = dir.path().join("agreement.toml");
        std::fs::write(&agreement, AGREEMENT).expect("write the agreement");
        let pki = dir.path().join("pki");
        TestNet {
            dir,
            agreement,
            pki,
        }
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default data directory, `<dir>/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The relay's configuration: `127.0.0.1:0`, [`TestNet::data_dir`], this agreement and
    /// PKI, default limits (edit `limits` before starting).
    ///
    /// # Panics
    /// Never for these inputs (the configuration has every required setting).
    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig::load(
            None,
            Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                data_dir: Some(self.data_dir()),
                agreement: Some(self.agreement.clone()),
                pki_dir: Some(self.pki.clone()),
            },
        )
        .expect("a complete relay configuration")
    }

    /// Starts the relay in this runtime with [`TestNet::relay_config`].
    pub async fn start_relay(&self) -> TestRelay {
        TestRelay::start(self.relay_config()).await
    }

    /// The path of the dev profile of `unit` (`PARTY/UNIT`).
    pub fn profile_path(&self, unit: &str) -> PathBuf {
        self.pki
            .join("profiles")
            .join(format!("{}.toml", unit.replace('/', "-")))
    }

    /// Rewrites the dev profile of `unit` to dial `relay` and returns its path (for the
    /// `filet` command).
    ///
    /// # Panics
    /// If the profile cannot be read or written.
    pub fn write_profile(&self, unit: &str, relay: SocketAddr) -> PathBuf {
        let path = self.profile_path(unit);
        let text = std::fs::read_to_string(&path).expect("read a dev profile");
        let mut p: Profile = Profile::parse(&text, Path::new("")).expect("a valid profile");
        p.relay = relay.to_string();
        std::fs::write(&path, p.to_toml()).expect("write the profile");
        path
    }

    /// The node configuration of the default node of `unit`, dialing `relay`.
    ///
    /// # Panics
    /// If the profile or a file it names cannot be read.
    pub fn node_config(&self, unit: &str, relay: SocketAddr) -> NodeConfig {
        let mut cfg = NodeConfig::from_profile_file(&self.profile_path(unit))
            .unwrap_or_else(|e| panic!("profile of {unit}: {e}"));
        cfg.relay = relay.to_string();
        cfg
    }

    /// Connects the default node of `unit` to `relay`.
    ///
    /// # Panics
    /// If the node cannot connect (use [`Node::connect`] to test refusals).
    pub async fn node(&self, unit: &str, relay: SocketAddr) -> Node {
        Node::connect(&self.node_config(unit, relay))
            .await
            .unwrap_or_else(|e| panic!("{unit} cannot connect to {relay}: {e}"))
    }

    /// The agreement's CA, loaded from the PKI (to issue hostile certificates).
    ///
    /// # Panics
    /// If the CA cannot be loaded.
    pub fn ca(&self) -> filet_certs::Ca {
        filet_certs::Ca::load(&self.pki).expect("the dev CA")
    }
}

impl Default for TestNet {
    fn default() -> Self {
        TestNet::new()
    }
}
