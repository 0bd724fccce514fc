//! Filet's PKI: one certificate authority per agreement, the relay's certificate, the
//! nodes' certificates, and the revocation list (requirements §3). The `filet-certs` command is a
//! thin layer over this library; the relay and the node client use its loading helpers
//! ([`load_certs`], [`load_key`], [`load_crls`], [`check_key_permissions`]) and
//! [`principal_of`].
//!
//! # Certificates
//!
//! Every key is ECDSA P-256 (signatures ECDSA with SHA-256); every serial is 16 random
//! bytes (top bit cleared). Keys are written as PKCS#8 PEM with mode 0600 (the file is
//! created with that mode, so it is never readable by others), certificates as PEM 0644.
//!
//! | certificate | subject | extensions | validity |
//! |---|---|---|---|
//! | CA | `O=Filet, CN=Filet CA <agreement id>` | CA (path length 0), keyCertSign, cRLSign | 10 years |
//! | relay | `CN=<first name>` | serverAuth only, digitalSignature, a DNS or IP SAN per name | 825 days |
//! | node | exactly `O=<party>, OU=<unit>, CN=<node>` | clientAuth only, digitalSignature | 397 days |
//!
//! The principal of a node certificate is `PARTY/UNIT/node` ([`principal_of`]). Tests craft
//! hostile certificates with the public [`CertSpec`] and [`Ca::issue`] / [`self_signed`].
//!
//! # Directory layout
//!
//! ```text
//! PKI/ca.crt.pem                  the agreement's CA certificate
//! PKI/ca.key.pem                  its private key (0600)
//! PKI/relay.crt.pem               the relay's certificate
//! PKI/relay.key.pem               its private key (0600)
//! PKI/crl.pem                     the current revocation list, signed by the CA
//! PKI/revoked.toml                what crl.pem is made from: CRL number, revoked serials
//! PKI/nodes/PARTY-UNIT.crt.pem    a node's certificate (default node name)
//! PKI/nodes/PARTY-UNIT.key.pem    its private key (0600)
//! PKI/nodes/PARTY-UNIT-node.*     the same, for a node with another name
//! PKI/profiles/PARTY-UNIT.toml    the node's profile (paths relative to profiles/)
//! ```
//!
//! A profile ([`filet_proto::profile::Profile`]) reads, for `SPVQ/ESM`:
//!
//! ```toml
//! relay = "127.0.0.1:4433"
//! server_name = "127.0.0.1"
//! ca = "../ca.crt.pem"
//! cert = "../nodes/SPVQ-ESM.crt.pem"
//! key = "../nodes/SPVQ-ESM.key.pem"
//! ```
//!
//! The default node name of a unit is lowercase `party-unit-01` ([`default_node_name`]),
//! e.g. `spvq-esm-01`.
//!
//! # Operations
//!
//! - [`dev`]: everything at once for a demonstration (CA, relay, a node and a profile per
//!   unit, empty CRL).
//! - [`init`]: a CA and an empty CRL. [`issue_relay`], [`issue_node`]: one certificate.
//! - [`revoke`], [`revoke_node`], [`revoke_serial`]: adds a certificate (named by its file,
//!   its node name or its serial) to `revoked.toml` and re-signs `crl.pem` with the next
//!   CRL number (valid 30 days).
//! - [`renew_crl`]: re-signs `crl.pem` with the same revocations and the next CRL number,
//!   valid 30 days from now: run it before the relay's copy passes its nextUpdate.
//! - [`describe`], [`describe_crl`], [`show`]: what a certificate or CRL says.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crl;
mod der;
mod error;
mod fsutil;
mod identity;
mod load;
mod pki;
mod spec;

pub use crl::{
    normalize_serial, renew_crl, revoke, revoke_node, revoke_serial, Revocation, RevocationList,
    RevocationReason, CRL_VALIDITY,
};
pub use error::CertError;
pub use identity::{
    describe, describe_crl, principal_of, serial_hex, show, CertInfo, CrlInfo, RevokedInfo,
    SubjectError,
};
pub use load::{check_key_permissions, load_certs, load_crls, load_key};
pub use pki::{
    check_unit, default_node_name, dev, init, issue_node, issue_relay, load_agreement, relay_host,
    Ca, DevReport, Layout, NodeFiles, NodeRequest,
};
pub use spec::{
    self_signed, Attr, AttrValue, CertSpec, Eku, IssuedCert, KeyUsage, BACKDATE, CA_VALIDITY,
    NODE_VALIDITY, RELAY_VALIDITY, SERIAL_LEN,
};
