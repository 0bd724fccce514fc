//! The PKI directory: the CA, and issuing the relay's and the nodes' certificates into it.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use filet_proto::agreement::Agreement;
use filet_proto::principal::{check_code, check_node, NameError, Principal, UnitRef};
use filet_proto::profile::Profile;
use rcgen::{Issuer, KeyPair};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::crl::RevocationList;
use crate::error::CertError;
use crate::fsutil::{self, CERT_MODE, KEY_MODE};
use crate::spec::{make, CertSpec, IssuedCert};

/// Where each file of a PKI directory lives (see the crate documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the PKI directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }
    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `ca.crt.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt.pem")
    }
    /// `ca.key.pem`.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key.pem")
    }
    /// `relay.crt.pem`.
    pub fn relay_cert(&self) -> PathBuf {
        self.dir.join("relay.crt.pem")
    }
    /// `relay.key.pem`.
    pub fn relay_key(&self) -> PathBuf {
        self.dir.join("relay.key.pem")
    }
    /// `crl.pem`.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    /// `revoked.toml`.
    pub fn revoked(&self) -> PathBuf {
        self.dir.join("revoked.toml")
    }
    /// `nodes/`.
    pub fn nodes_dir(&self) -> PathBuf {
        self.dir.join("nodes")
    }
    /// `profiles/`.
    pub fn profiles_dir(&self) -> PathBuf {
        self.dir.join("profiles")
    }
    /// `nodes/STEM.crt.pem`.
    pub fn node_cert(&self, stem: &str) -> PathBuf {
        self.nodes_dir().join(format!("{stem}.crt.pem"))
    }
    /// `nodes/STEM.key.pem`.
    pub fn node_key(&self, stem: &str) -> PathBuf {
        self.nodes_dir().join(format!("{stem}.key.pem"))
    }
    /// `profiles/STEM.toml`.
    pub fn profile(&self, stem: &str) -> PathBuf {
        self.profiles_dir().join(format!("{stem}.toml"))
    }

    /// The file stem of a node: `PARTY-UNIT` for the unit's default node
    /// ([`default_node_name`]), `PARTY-UNIT-node` for any other.
    pub fn node_stem(principal: &Principal) -> String {
        let unit = &principal.unit;
        if principal.node == default_node_name(unit) {
            format!("{}-{}", unit.party, unit.unit)
        } else {
            format!("{}-{}-{}", unit.party, unit.unit, principal.node)
        }
    }
}

/// The default node name of a unit: lowercase `party-unit-01`, e.g. `spvq-esm-01`.
pub fn default_node_name(unit: &UnitRef) -> String {
    format!("{}-{}-01", unit.party, unit.unit).to_lowercase()
}

/// The host part of a relay address `HOST:PORT` (`[v6]:PORT` too): the name the relay's
/// certificate must carry and the profile's `server_name`.
///
/// # Errors
/// [`CertError::RelayAddress`].
pub fn relay_host(addr: &str) -> Result<String, CertError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa.ip().to_string());
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(host.to_owned())
        }
        _ => Err(CertError::RelayAddress(addr.to_owned())),
    }
}

/// Reads and validates an agreement file.
///
/// # Errors
/// [`CertError::Read`] naming the file, [`CertError::Agreement`].
pub fn load_agreement(path: &Path) -> Result<Agreement, CertError> {
    let text = fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Agreement::parse(&text, &path.display().to_string())?)
}

/// Checks that the agreement (read from `file`) has `unit`.
///
/// # Errors
/// [`CertError::UnknownParty`] or [`CertError::UnknownUnit`], naming the file and listing
/// what it does have.
pub fn check_unit(agreement: &Agreement, file: &Path, unit: &UnitRef) -> Result<(), CertError> {
    let Some(party) = agreement.parties.get(&unit.party) else {
        return Err(CertError::UnknownParty {
            party: unit.party.clone(),
            agreement: file.to_path_buf(),
            known: agreement
                .parties
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if party.units.contains_key(&unit.unit) {
        Ok(())
    } else {
        Err(CertError::UnknownUnit {
            unit: unit.clone(),
            party: unit.party.clone(),
            agreement: file.to_path_buf(),
            known: party.units.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// The agreement's certificate authority: its certificate and its signing key.
#[derive(Debug)]
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA for the agreement `agreement_id` ([`CertSpec::ca`]).
    ///
    /// # Errors
    /// [`CertError::Generate`].
    pub fn generate(agreement_id: &str) -> Result<Ca, CertError> {
        Ca::from_spec(&CertSpec::ca(agreement_id))
    }

    /// A new self-signed CA with any specification (for tests: another CA, an expired CA).
    ///
    /// # Errors
    /// [`CertError::Spec`], [`CertError::Generate`].
    pub fn from_spec(spec: &CertSpec) -> Result<Ca, CertError> {
        let made = make(spec, None)?;
        Ca::from_pem(&made.cert_pem, &made.key_pem).map_err(|(_, reason)| CertError::Spec(reason))
    }

    /// The CA of a certificate and its key, both PEM. The error says whether the key
    /// (`true`) or the certificate is at fault, and why.
    fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, (bool, String)> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| (true, format!("not a usable private key: {e}")))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| (false, format!("no CA certificate: {e}")))?;
        let (_, x509) = X509Certificate::from_der(&cert_der)
            .map_err(|e| (false, format!("not a valid certificate: {e}")))?;
        if !x509.is_ca() {
            return Err((false, "not a CA certificate".into()));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err((true, "this key does not match the CA certificate".into()));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| (false, format!("cannot use the CA certificate: {e}")))?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    /// Loads the CA of the PKI directory `dir`.
    ///
    /// # Errors
    /// [`CertError::NoCa`] (with the hint to run `filet-certs init`), [`CertError::Read`],
    /// [`CertError::Invalid`] naming the file.
    pub fn load(dir: &Path) -> Result<Ca, CertError> {
        let layout = Layout::new(dir);
        let (cert_path, key_path) = (layout.ca_cert(), layout.ca_key());
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    CertError::NoCa {
                        path: path.to_path_buf(),
                    }
                } else {
                    CertError::Read {
                        path: path.to_path_buf(),
                        source,
                    }
                }
            })
        };
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        Ca::from_pem(&cert_pem, &key_pem).map_err(|(is_key, reason)| CertError::Invalid {
            path: if is_key { key_path } else { cert_path },
            reason,
        })
    }

    /// Writes `ca.crt.pem` (0644) and `ca.key.pem` (0600) into `dir`; refuses to replace an
    /// existing CA unless `force`.
    ///
    /// # Errors
    /// [`CertError::Exists`], [`CertError::Write`].
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, CertError> {
        let layout = Layout::new(dir);
        let (cert, key) = (layout.ca_cert(), layout.ca_key());
        fsutil::refuse_existing(
            &[&cert, &key],
            force,
            "; every certificate the old CA issued would stop working",
        )?;
        fsutil::create_dir(dir)?;
        fsutil::write_file(&key, self.key_pem().as_bytes(), KEY_MODE)?;
        fsutil::write_file(&cert, self.cert_pem.as_bytes(), CERT_MODE)?;
        Ok(vec![cert, key])
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `spec` with a new key, signed by this CA.
    ///
    /// # Errors
    /// [`CertError::Spec`], [`CertError::Generate`].
    pub fn issue(&self, spec: &CertSpec) -> Result<IssuedCert, CertError> {
        make(spec, Some(&self.issuer))
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// The files written for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFiles {
    /// The node.
    pub principal: Principal,
    /// Its certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Its profile, when a relay address was given.
    pub profile: Option<PathBuf>,
    /// The certificate's serial, hex.
    pub serial: String,
}

impl NodeFiles {
    /// Every file written, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.cert.clone(), self.key.clone()];
        paths.extend(self.profile.clone());
        paths
    }
}

/// What [`dev`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevReport {
    /// `ca.crt.pem`, `ca.key.pem`.
    pub ca: Vec<PathBuf>,
    /// `crl.pem`, `revoked.toml`.
    pub crl: Vec<PathBuf>,
    /// The names in the relay certificate.
    pub relay_names: Vec<String>,
    /// `relay.crt.pem`, `relay.key.pem`.
    pub relay: Vec<PathBuf>,
    /// One entry per unit of every party, in the agreement's order.
    pub nodes: Vec<NodeFiles>,
    /// A good first profile to try: that of the first unit the agreement's first rules
    /// let send (e.g. `profiles/SPVQ-ESM.toml`), else the first profile.
    pub first_profile: Option<PathBuf>,
}

impl DevReport {
    /// Every file written.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        paths.extend(self.ca.iter().cloned());
        paths.extend(self.crl.iter().cloned());
        paths.extend(self.relay.iter().cloned());
        for node in &self.nodes {
            paths.extend(node.paths());
        }
        paths
    }
}

/// `filet-certs init`: a new CA for the agreement and an empty revocation list.
///
/// # Errors
/// [`CertError::Read`]/[`CertError::Agreement`] for the agreement, [`CertError::Exists`]
/// when a CA exists and not `force`, [`CertError::Write`].
pub fn init(dir: &Path, agreement_path: &Path, force: bool) -> Result<Vec<PathBuf>, CertError> {
    let agreement = load_agreement(agreement_path)?;
    let (_, paths) = init_ca(dir, &agreement.id, force)?;
    Ok(paths)
}

fn init_ca(dir: &Path, agreement_id: &str, force: bool) -> Result<(Ca, Vec<PathBuf>), CertError> {
    let layout = Layout::new(dir);
    fsutil::refuse_existing(
        &[&layout.ca_cert(), &layout.ca_key()],
        force,
        "; every certificate the old CA issued would stop working",
    )?;
    let ca = Ca::generate(agreement_id)?;
    let mut paths = ca.save(dir, true)?;
    paths.extend(crate::crl::write(&layout, &ca, &RevocationList::default())?);
    Ok((ca, paths))
}

/// `filet-certs relay`: the relay's certificate and key, for `names` (DNS names or IP
/// addresses; the first is also the CN). Refuses to replace them unless `force`.
///
/// # Errors
/// [`CertError::NoCa`], [`CertError::Spec`], [`CertError::Exists`], [`CertError::Write`].
pub fn issue_relay(dir: &Path, names: &[String], force: bool) -> Result<Vec<PathBuf>, CertError> {
    let ca = Ca::load(dir)?;
    issue_relay_with(&ca, &Layout::new(dir), names, force)
}

fn issue_relay_with(
    ca: &Ca,
    layout: &Layout,
    names: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let issued = ca.issue(&CertSpec::relay(names)?)?;
    let (cert, key) = (layout.relay_cert(), layout.relay_key());
    issued.write(&cert, &key, force)?;
    Ok(vec![cert, key])
}

/// What `filet-certs node` is asked for.
#[derive(Debug, Clone, Default)]
pub struct NodeRequest<'a> {
    /// Party code (`O`).
    pub party: &'a str,
    /// Unit code (`OU`).
    pub unit: &'a str,
    /// Node name (`CN`); [`default_node_name`] when `None`.
    pub node: Option<&'a str>,
    /// Relay address `HOST:PORT`: when given, a profile is written too.
    pub relay: Option<&'a str>,
    /// Agreement file: when given, the party and unit must be in it.
    pub agreement: Option<&'a Path>,
    /// Replace existing files.
    pub force: bool,
}

/// `filet-certs node`: a node's certificate and key, and its profile when a relay address
/// is given.
///
/// # Errors
/// [`CertError::Name`] for a malformed party, unit or node; [`CertError::UnknownParty`] /
/// [`CertError::UnknownUnit`] naming the agreement file; [`CertError::NoCa`];
/// [`CertError::Exists`]; [`CertError::Write`].
pub fn issue_node(dir: &Path, request: &NodeRequest<'_>) -> Result<NodeFiles, CertError> {
    fn name_err<'a>(
        what: &'static str,
        value: &'a str,
    ) -> impl FnOnce(NameError) -> CertError + 'a {
        move |source| CertError::Name {
            what,
            value: value.to_owned(),
            source,
        }
    }
    check_code("party", request.party).map_err(name_err("party", request.party))?;
    check_code("unit", request.unit).map_err(name_err("unit", request.unit))?;
    let unit = UnitRef {
        party: request.party.to_owned(),
        unit: request.unit.to_owned(),
    };
    let node = request
        .node
        .map_or_else(|| default_node_name(&unit), str::to_owned);
    check_node(&node).map_err(name_err("node", &node))?;
    let principal = Principal { unit, node };
    if let Some(path) = request.agreement {
        check_unit(&load_agreement(path)?, path, &principal.unit)?;
    }
    let relay = request
        .relay
        .map(|addr| relay_host(addr).map(|host| (addr, host)))
        .transpose()?;
    let ca = Ca::load(dir)?;
    issue_node_with(&ca, &Layout::new(dir), principal, relay, request.force)
}

fn issue_node_with(
    ca: &Ca,
    layout: &Layout,
    principal: Principal,
    relay: Option<(&str, String)>,
    force: bool,
) -> Result<NodeFiles, CertError> {
    let stem = Layout::node_stem(&principal);
    let (cert, key, profile) = (
        layout.node_cert(&stem),
        layout.node_key(&stem),
        layout.profile(&stem),
    );
    let mut existing = vec![cert.as_path(), key.as_path()];
    if relay.is_some() {
        existing.push(profile.as_path());
    }
    fsutil::refuse_existing(&existing, force, "")?;
    let issued = ca.issue(&CertSpec::node(&principal))?;
    fsutil::create_dir(&layout.nodes_dir())?;
    issued.write(&cert, &key, true)?;
    let profile = match relay {
        Some((addr, server_name)) => {
            let text = Profile {
                relay: addr.to_owned(),
                server_name,
                ca: PathBuf::from("../ca.crt.pem"),
                cert: PathBuf::from(format!("../nodes/{stem}.crt.pem")),
                key: PathBuf::from(format!("../nodes/{stem}.key.pem")),
            }
            .to_toml();
            fsutil::create_dir(&layout.profiles_dir())?;
            fsutil::write_file(&profile, text.as_bytes(), CERT_MODE)?;
            Some(profile)
        }
        None => None,
    };
    Ok(NodeFiles {
        principal,
        cert,
        key,
        profile,
        serial: issued.serial_hex(),
    })
}

/// `filet-certs dev`: everything a demonstration needs, in one call: a new CA, the relay
/// certificate for the host of `relay_addr`, a certificate, key and profile for the
/// default node of every unit of every party, and an empty revocation list.
///
/// The agreement, the relay address and every node name are checked before anything is
/// written. An existing CA is replaced only with `force`; the relay's and the nodes' files
/// are always rewritten, since they belong to the new CA. Files of units no longer in the
/// agreement are left alone.
///
/// # Errors
/// [`CertError::Read`]/[`CertError::Agreement`] for the agreement,
/// [`CertError::RelayAddress`], [`CertError::Name`] for a unit whose default node name is
/// too long, [`CertError::FileNameClash`], [`CertError::Exists`], [`CertError::Write`].
pub fn dev(
    dir: &Path,
    agreement_path: &Path,
    relay_addr: &str,
    force: bool,
) -> Result<DevReport, CertError> {
    let agreement = load_agreement(agreement_path)?;
    let host = relay_host(relay_addr)?;
    let mut principals = Vec::new();
    let mut stems: BTreeMap<String, UnitRef> = BTreeMap::new();
    for unit in agreement.units() {
        let node = default_node_name(&unit);
        check_node(&node).map_err(|source| CertError::Name {
            what: "node",
            value: node.clone(),
            source,
        })?;
        let principal = Principal { unit, node };
        let stem = Layout::node_stem(&principal);
        if let Some(first) = stems.insert(stem.clone(), principal.unit.clone()) {
            return Err(CertError::FileNameClash {
                first,
                second: principal.unit,
                stem,
            });
        }
        principals.push(principal);
    }
    let layout = Layout::new(dir);
    let (ca, mut ca_paths) = init_ca(dir, &agreement.id, force)?;
    let crl = ca_paths.split_off(2);
    let relay_names = vec![host.clone()];
    let relay = issue_relay_with(&ca, &layout, &relay_names, true)?;
    let nodes = principals
        .into_iter()
        .map(|p| issue_node_with(&ca, &layout, p, Some((relay_addr, host.clone())), true))
        .collect::<Result<Vec<_>, _>>()?;
    let sender = agreement
        .rules
        .iter()
        .flat_map(|rule| rule.from.iter())
        .find_map(|from| nodes.iter().find(|n| from.matches(&n.principal.unit)));
    let first_profile = sender.or(nodes.first()).and_then(|n| n.profile.clone());
    Ok(DevReport {
        ca: ca_paths,
        crl,
        relay_names,
        relay,
        nodes,
        first_profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_hosts() {
        assert_eq!(relay_host("127.0.0.1:4433").unwrap(), "127.0.0.1");
        assert_eq!(relay_host("[::1]:4433").unwrap(), "::1");
        assert_eq!(
            relay_host("relay.filet.example:4433").unwrap(),
            "relay.filet.example"
        );
        for bad in ["relay", ":4433", "relay:port", "::1:4433", "relay:99999"] {
            assert!(
                matches!(relay_host(bad), Err(CertError::RelayAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn default_names_and_stems() {
        let unit = UnitRef::new("SPVQ", "ESM").unwrap();
        assert_eq!(default_node_name(&unit), "spvq-esm-01");
        let p = Principal::new("SPVQ", "ESM", "spvq-esm-01").unwrap();
        assert_eq!(Layout::node_stem(&p), "SPVQ-ESM");
        let p = Principal::new("SPVQ", "ESM", "poste-02").unwrap();
        assert_eq!(Layout::node_stem(&p), "SPVQ-ESM-poste-02");
    }
}
