//! C2SP tlog-checkpoint and C2SP signed-note formats, with Ed25519 signatures.
//!
//! A checkpoint (<https://c2sp.org/tlog-checkpoint>) is the text
//!
//! ```text
//! <origin>\n<tree size in decimal>\n<base64 of the 32-byte RFC 9162 root>\n[<extension>\n]*
//! ```
//!
//! and it travels as the text of a signed note (<https://c2sp.org/signed-note>): the text,
//! a blank line, then signature lines `— <key name> <base64(4-byte key ID || signature)>\n`
//! (em dash U+2014). Ed25519 signatures are over the text bytes, final newline included;
//! the key ID is `SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`, and a
//! verifier key is written `<name>+<8 hex digits of key ID>+<base64(0x01 || public key)>`,
//! as Go's `golang.org/x/mod/sumdb/note` does.
//!
//! Parsing is bounded: a note over [`MAX_NOTE_LEN`] bytes or with more than
//! [`MAX_SIGNATURES`] signature lines is refused before any signature is checked, and
//! every step is linear in the input.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine as _;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use crate::merkle::Hash;

/// Largest note (or checkpoint text) accepted, in bytes: 1 MiB.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// Most signature lines accepted in one note (C2SP signed-note asks verifiers to accept at
/// least 16).
pub const MAX_SIGNATURES: usize = 100;

/// C2SP signed-note signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;

/// Length of an Ed25519 public key, in bytes (RFC 8032).
const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Start of every signature line: em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Base64 as Go's `base64.StdEncoding` decodes it (golang.org/x/mod/sumdb/note reads
/// signature lines with it): padding required, non-zero trailing bits accepted. Used to
/// read a signature line's key ID; a line by the verifier's own key must also be canonical
/// ([`STANDARD`]).
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why a checkpoint text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text is over [`MAX_NOTE_LEN`] bytes.
    #[error("checkpoint of {len} bytes is over the limit of {MAX_NOTE_LEN} bytes")]
    TooLarge {
        /// Length of the text, in bytes.
        len: usize,
    },
    /// The text holds an ASCII control character other than newline.
    #[error("checkpoint line {line} holds an ASCII control character")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The text is empty or its first line (the origin) is empty.
    #[error("checkpoint has no origin line")]
    MissingOrigin,
    /// The text does not end with a newline.
    #[error("checkpoint text does not end with a newline")]
    MissingFinalNewline,
    /// The text ends after the origin line.
    #[error("checkpoint has no tree size line")]
    MissingSize,
    /// The text ends after the tree size line.
    #[error("checkpoint has no root hash line")]
    MissingRoot,
    /// A line other than the first is empty (tlog-checkpoint allows no empty line).
    #[error("checkpoint line {line} is empty")]
    EmptyLine {
        /// 1-based line number.
        line: usize,
    },
    /// The tree size holds something other than ASCII digits.
    #[error("checkpoint tree size is not a decimal number")]
    SizeNotDecimal,
    /// The tree size has a leading zero (only `0` itself may start with one).
    #[error("checkpoint tree size has a leading zero")]
    SizeLeadingZero,
    /// The tree size does not fit in 64 bits.
    #[error("checkpoint tree size does not fit in 64 bits")]
    SizeOverflow,
    /// The root hash line is not standard, padded base64.
    #[error("checkpoint root hash is not standard base64")]
    RootNotBase64,
    /// The root hash does not decode to 32 bytes.
    #[error("checkpoint root hash has {got} bytes, want 32")]
    RootLength {
        /// Decoded length, in bytes.
        got: usize,
    },
}

/// A C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed statement of a
/// log's tree size and RFC 9162 root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Identity of the log, e.g. `example.com/log42`: non-empty, one line. Its signature
    /// line's key name should match it (not checked here; see [`open_checkpoint`]).
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 9162 Merkle tree hash of those leaves (see [`crate::merkle::root`]).
    pub root: Hash,
    /// Optional extension lines, opaque, each non-empty and without newline (use of them
    /// is NOT RECOMMENDED by the spec).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, decimal size and base64 root lines, then the extension
    /// lines, each ending in `\n`.
    ///
    /// Nothing is validated: an empty origin, or an origin or extension that is empty or
    /// holds a newline or another control character, gives a text that [`Self::parse`]
    /// (and a verifier) refuses.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint text (the text of a signed note, not the whole note; see
    /// [`open_checkpoint`] for that).
    ///
    /// # Errors
    /// A [`CheckpointError`] naming the first problem found: size limit, control
    /// character, missing final newline or line, empty line, malformed tree size (not
    /// decimal, leading zero, over `u64::MAX`) or root (not base64, not 32 bytes).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_NOTE_LEN {
            return Err(CheckpointError::TooLarge { len: text.len() });
        }
        if text.is_empty() {
            return Err(CheckpointError::MissingOrigin);
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        let mut next_line = |missing: CheckpointError| -> Result<&str, CheckpointError> {
            let (number, line) = lines.next().ok_or(missing)?;
            check_line(number, line)?;
            Ok(line)
        };
        let origin = next_line(CheckpointError::MissingOrigin)?;
        let size = parse_size(next_line(CheckpointError::MissingSize)?)?;
        let root = parse_root(next_line(CheckpointError::MissingRoot)?)?;
        let mut extensions = Vec::new();
        for (number, line) in lines {
            check_line(number, line)?;
            extensions.push(line.to_owned());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

fn check_line(number: usize, line: &str) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(if number == 1 {
            CheckpointError::MissingOrigin
        } else {
            CheckpointError::EmptyLine { line: number }
        });
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    if !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::SizeNotDecimal);
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(CheckpointError::SizeLeadingZero);
    }
    // All ASCII digits and non-empty, so the only possible failure is overflow.
    line.parse().map_err(|_| CheckpointError::SizeOverflow)
}

fn parse_root(line: &str) -> Result<Hash, CheckpointError> {
    let bytes = STANDARD
        .decode(line)
        .map_err(|_| CheckpointError::RootNotBase64)?;
    Hash::try_from(bytes.as_slice()).map_err(|_| CheckpointError::RootLength { got: bytes.len() })
}

/// Why a key could not be made or parsed, or a note signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note (or text to sign) is over [`MAX_NOTE_LEN`] bytes.
    #[error("note of {len} bytes is over the limit of {MAX_NOTE_LEN} bytes")]
    TooLarge {
        /// Length, in bytes.
        len: usize,
    },
    /// The note holds an ASCII control character other than newline.
    #[error("note holds an ASCII control character at byte {offset}")]
    ControlCharacter {
        /// 0-based byte offset.
        offset: usize,
    },
    /// The text to sign is empty or does not end with a newline.
    #[error("note text does not end with a newline")]
    TextMissingFinalNewline,
    /// No blank line separates the text from the signatures.
    #[error("note has no blank line before its signatures")]
    MissingBlankLine,
    /// Nothing follows the blank line.
    #[error("note has no signature lines")]
    MissingSignatures,
    /// The last signature line does not end with a newline.
    #[error("note's last signature line does not end with a newline")]
    UnterminatedSignatureLine,
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note has {count} signature lines, over the limit of {MAX_SIGNATURES}")]
    TooManySignatures {
        /// Signature lines counted.
        count: usize,
    },
    /// A signature line does not start with an em dash (U+2014) and a space, or has no
    /// space between key name and signature.
    #[error("signature line {line} is not of the form \"\u{2014} <key name> <signature>\"")]
    MalformedSignatureLine {
        /// 1-based number among the signature lines.
        line: usize,
    },
    /// A signature line's key name is invalid (see [`NoteError::InvalidKeyName`]).
    #[error("signature line {line} has an invalid key name")]
    SignatureKeyName {
        /// 1-based number among the signature lines.
        line: usize,
    },
    /// A signature is not standard, padded base64.
    #[error("signature line {line} is not standard base64")]
    SignatureBase64 {
        /// 1-based number among the signature lines.
        line: usize,
    },
    /// A signature decodes to fewer than 5 bytes (4-byte key ID and at least one byte).
    #[error("signature line {line} holds {len} bytes, too few for a key ID and a signature")]
    SignatureTooShort {
        /// 1-based number among the signature lines.
        line: usize,
        /// Decoded length, in bytes.
        len: usize,
    },
    /// A signature line names this key (name and key ID) but does not verify: the whole
    /// note is refused, as C2SP signed-note recommends.
    #[error("signature by key {name}+{key_id} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key ID, 8 lowercase hex digits.
        key_id: String,
    },
    /// No signature line is by the expected key.
    #[error("note has no signature by key {name}+{key_id}")]
    NoSignatureByKey {
        /// The key's name.
        name: String,
        /// The key ID, 8 lowercase hex digits.
        key_id: String,
    },
    /// A key name is empty or holds '+' or a Unicode space.
    #[error("key name is empty or holds '+' or a Unicode space")]
    InvalidKeyName,
    /// A verifier key is not of the form `<name>+<key ID>+<key>`.
    #[error("verifier key is not of the form <name>+<8 hex digits>+<base64 key>")]
    MalformedVerifierKey,
    /// A verifier key's key ID is not 8 hex digits.
    #[error("verifier key ID is not 8 hex digits")]
    VerifierKeyIdNotHex,
    /// A verifier key's key is not standard, padded base64.
    #[error("verifier key is not standard base64")]
    VerifierKeyBase64,
    /// A verifier key's signature type is not Ed25519 (0x01).
    #[error("verifier key has signature type {alg:#04x}, only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm {
        /// The type byte found (0 if the key is empty).
        alg: u8,
    },
    /// A verifier key's Ed25519 public key is not 32 bytes.
    #[error("verifier key has a {got}-byte public key, want 32")]
    PublicKeyLength {
        /// Length found, in bytes.
        got: usize,
    },
    /// A verifier key's stated key ID is not the one its name and key give.
    #[error("verifier key states key ID {stated} but its name and key give {computed}")]
    WrongKeyId {
        /// Key ID in the verifier key, 8 hex digits.
        stated: String,
        /// Key ID computed from name and key, 8 hex digits.
        computed: String,
    },
    /// The private key was refused by ring (not Ed25519 PKCS#8, bad seed length, public
    /// key not matching, …).
    #[error("invalid Ed25519 private key: {reason}")]
    InvalidPrivateKey {
        /// ring's reason.
        reason: String,
    },
    /// The system random number generator failed.
    #[error("cannot generate an Ed25519 key: system randomness failed")]
    KeyGeneration,
    /// The note verified but its text is not a valid checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// C2SP signed-note key-name rule: non-empty, no '+' and no Unicode space.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// C2SP signed-note Ed25519 key ID: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
fn ed25519_key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public_key);
    let digest = ctx.finish();
    let mut id = [0u8; 4];
    for (o, b) in id.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    id
}

fn hex4(id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(id))
}

/// Refuses notes or texts over [`MAX_NOTE_LEN`] or holding ASCII control characters other
/// than newline (C2SP signed-note).
fn check_note_chars(s: &str) -> Result<(), NoteError> {
    if s.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: s.len() });
    }
    match s.bytes().position(|b| b < 0x20 && b != b'\n') {
        Some(offset) => Err(NoteError::ControlCharacter { offset }),
        None => Ok(()),
    }
}

/// Signs notes with an Ed25519 key under a C2SP signed-note key name.
#[derive(Debug)]
pub struct NoteSigner {
    name: String,
    key_pair: Ed25519KeyPair,
    key_id: [u8; 4],
}

impl NoteSigner {
    /// A new random Ed25519 key (ring's `SystemRandom`), as PKCS#8 v2 DER bytes (85 bytes,
    /// RFC 5958), for [`Self::from_pkcs8`]. Keep them secret.
    ///
    /// # Errors
    /// [`NoteError::KeyGeneration`] if the system random number generator fails.
    pub fn generate_pkcs8() -> Result<Vec<u8>, NoteError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| NoteError::KeyGeneration)
    }

    /// A signer for key name `name` (e.g. the log's origin) from an Ed25519 private key in
    /// PKCS#8 DER: v2 as [`Self::generate_pkcs8`] makes (its public key is checked against
    /// the private key), or v1 as OpenSSL writes.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] if `name` is empty or holds '+' or a Unicode space;
    /// [`NoteError::InvalidPrivateKey`] if ring refuses the key.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, NoteError> {
        let key_pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| {
            NoteError::InvalidPrivateKey {
                reason: e.to_string(),
            }
        })?;
        Self::new(name, key_pair)
    }

    /// A signer from a raw 32-byte Ed25519 private key seed (RFC 8032 §5.1.5), the form Go's
    /// `golang.org/x/mod/sumdb/note` keeps after the 0x01 type byte of its
    /// `PRIVATE+KEY+…` signer keys.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] for a bad name; [`NoteError::InvalidPrivateKey`] if
    /// `seed` is not 32 bytes.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, NoteError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| {
            NoteError::InvalidPrivateKey {
                reason: e.to_string(),
            }
        })?;
        Self::new(name, key_pair)
    }

    fn new(name: &str, key_pair: Ed25519KeyPair) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key_id = ed25519_key_id(name, key_pair.public_key().as_ref());
        Ok(Self {
            name: name.to_owned(),
            key_pair,
            key_id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID (big-endian), as C2SP signed-note recommends for Ed25519.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The verifier key to give to verifiers, as Go's note package writes it:
    /// `<name>+<8 lowercase hex digits of key ID>+<base64(0x01 || 32-byte public key)>`.
    pub fn verifier_key(&self) -> String {
        let mut key = Vec::with_capacity(1 + ED25519_PUBLIC_KEY_LEN);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key_pair.public_key().as_ref());
        format!(
            "{}+{}+{}",
            self.name,
            hex4(self.key_id),
            STANDARD.encode(key)
        )
    }

    /// Signs `text` and returns the signed note: `text`, a blank line and one signature
    /// line `— <name> <base64(key ID || 64-byte Ed25519 signature of text)>\n`.
    ///
    /// # Errors
    /// [`NoteError::TextMissingFinalNewline`] if `text` is empty or does not end with
    /// `\n`; [`NoteError::TooLarge`] or [`NoteError::ControlCharacter`] for text a
    /// verifier would refuse.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_note_chars(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::TextMissingFinalNewline);
        }
        let signature = self.key_pair.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + signature.as_ref().len());
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(signature.as_ref());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// Verifies C2SP signed notes against one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    public_key: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<8 hex digits of key ID>+<base64(0x01 || 32-byte
    /// Ed25519 public key)>` (Go's `golang.org/x/mod/sumdb/note` format; the base64 part may
    /// itself hold '+').
    ///
    /// # Errors
    /// [`NoteError::MalformedVerifierKey`] without two '+'; [`NoteError::InvalidKeyName`];
    /// [`NoteError::VerifierKeyIdNotHex`]; [`NoteError::VerifierKeyBase64`];
    /// [`NoteError::UnsupportedAlgorithm`] for a type byte other than 0x01;
    /// [`NoteError::PublicKeyLength`]; [`NoteError::WrongKeyId`] if the stated key ID is
    /// not the one computed from name and key.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedVerifierKey);
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::VerifierKeyIdNotHex);
        }
        let stated = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::VerifierKeyIdNotHex)?
            .to_be_bytes();
        let key = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::VerifierKeyBase64)?;
        let (alg, public_key) = match key.split_first() {
            Some((&alg, rest)) => (alg, rest),
            None => return Err(NoteError::UnsupportedAlgorithm { alg: 0 }),
        };
        if alg != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm { alg });
        }
        let public_key = <[u8; ED25519_PUBLIC_KEY_LEN]>::try_from(public_key).map_err(|_| {
            NoteError::PublicKeyLength {
                got: public_key.len(),
            }
        })?;
        let computed = ed25519_key_id(name, &public_key);
        if computed != stated {
            return Err(NoteError::WrongKeyId {
                stated: hex4(stated),
                computed: hex4(computed),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: computed,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID (big-endian).
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Checks a signed note and returns its text (everything before the last blank line,
    /// final newline included) if at least one signature line is by this key (same name
    /// and key ID) and every such line verifies. Lines by other keys are checked for form
    /// only, as Go's golang.org/x/mod/sumdb/note `Open` checks them (a valid key name,
    /// base64 as Go's `StdEncoding` reads it, at least 5 bytes), and otherwise ignored, as
    /// C2SP signed-note requires. Lines by this key must also be canonical base64.
    ///
    /// # Errors
    /// [`NoteError::TooLarge`], [`NoteError::ControlCharacter`], [`NoteError::MissingBlankLine`],
    /// [`NoteError::MissingSignatures`], [`NoteError::UnterminatedSignatureLine`],
    /// [`NoteError::TooManySignatures`] for the note's shape; for a signature line,
    /// [`NoteError::MalformedSignatureLine`], [`NoteError::SignatureKeyName`],
    /// [`NoteError::SignatureBase64`] or [`NoteError::SignatureTooShort`];
    /// [`NoteError::BadSignature`] if a line by this key does not verify;
    /// [`NoteError::NoSignatureByKey`] if no line is by this key.
    pub fn open(&self, note: &str) -> Result<String, NoteError> {
        check_note_chars(note)?;
        let split = note.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
        // The text keeps the first newline of the pair; the signatures start after both.
        let (Some(text), Some(signatures)) = (note.get(..split + 1), note.get(split + 2..)) else {
            return Err(NoteError::MissingBlankLine);
        };
        if signatures.is_empty() {
            return Err(NoteError::MissingSignatures);
        }
        if !signatures.ends_with('\n') {
            return Err(NoteError::UnterminatedSignatureLine);
        }
        let count = signatures.bytes().filter(|&b| b == b'\n').count();
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures { count });
        }
        let mut verified = false;
        for (i, line) in signatures.split_terminator('\n').enumerate() {
            let number = i + 1;
            let (name, blob) = line
                .strip_prefix(SIGNATURE_PREFIX)
                .and_then(|rest| rest.split_once(' '))
                .ok_or(NoteError::MalformedSignatureLine { line: number })?;
            if !is_valid_key_name(name) {
                return Err(NoteError::SignatureKeyName { line: number });
            }
            // Lenient as Go is, so that a line by another key in a form Go accepts (its
            // base64 with non-zero trailing bits) is skipped, not fatal to the note.
            let blob_text = blob;
            let blob = GO_STD_BASE64
                .decode(blob_text)
                .map_err(|_| NoteError::SignatureBase64 { line: number })?;
            let (key_id, signature) = match blob.split_first_chunk::<4>() {
                Some((key_id, signature)) if !signature.is_empty() => (*key_id, signature),
                _ => {
                    return Err(NoteError::SignatureTooShort {
                        line: number,
                        len: blob.len(),
                    })
                }
            };
            if name != self.name || key_id != self.key_id {
                continue;
            }
            // This key's own lines stay strict: canonical base64 only.
            if STANDARD.decode(blob_text).is_err() {
                return Err(NoteError::SignatureBase64 { line: number });
            }
            UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(text.as_bytes(), signature)
                .map_err(|_| NoteError::BadSignature {
                    name: self.name.clone(),
                    key_id: hex4(self.key_id),
                })?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::NoSignatureByKey {
                name: self.name.clone(),
                key_id: hex4(self.key_id),
            });
        }
        Ok(text.to_owned())
    }
}

/// Opens a signed checkpoint: verifies `note` with `verifier` ([`NoteVerifier::open`]) and
/// parses its text ([`Checkpoint::parse`]).
///
/// The checkpoint's origin is not compared with the verifier's key name (tlog-checkpoint
/// only says they SHOULD match): the caller compares `origin` with the log it expects.
///
/// # Errors
/// Any error of [`NoteVerifier::open`], or [`NoteError::Checkpoint`] if the verified text
/// is not a valid checkpoint.
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    let text = verifier.open(note)?;
    Ok(Checkpoint::parse(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Known answers from Go's golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier,
    // TestNewSigner, TestSign, TestOpen) and the package documentation.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; // after PRIVATE+KEY+PeterNeumann+c74f20a3+
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // Example of C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint, "Transparency Log
    // Checkpoints"): its note text.
    const SPEC_CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    // Example of C2SP signed-note (c2sp.org/signed-note): its text holds a blank line.
    const SPEC_NOTE: &str = "Ognuno sta solo sul cuor della terra\n\
                             trafitto da un raggio di sole:\n\
                             \n\
                             ed \u{e8} subito sera.\n\
                             \n\
                             \u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    fn peter_signer() -> NoteSigner {
        let key = STANDARD.decode(PETER_SKEY_B64).unwrap();
        assert_eq!(key[0], ALG_ED25519);
        NoteSigner::from_seed("PeterNeumann", &key[1..]).unwrap()
    }

    fn random_signer(name: &str) -> NoteSigner {
        NoteSigner::from_pkcs8(name, &NoteSigner::generate_pkcs8().unwrap()).unwrap()
    }

    fn verifier_of(s: &NoteSigner) -> NoteVerifier {
        NoteVerifier::parse(&s.verifier_key()).unwrap()
    }

    #[test]
    fn go_note_known_answers() {
        let v = peter();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        let e = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        assert_eq!(e.key_id(), [0xaf, 0x0c, 0xfe, 0x78]);

        // The published note opens, alone or next to another key's signature.
        let note = format!("{TEXT}\n{PETER_SIG}");
        assert_eq!(v.open(&note).unwrap(), TEXT);
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(v.open(&both).unwrap(), TEXT);
        assert_eq!(e.open(&both).unwrap(), TEXT);
        assert_eq!(
            e.open(&note),
            Err(NoteError::NoSignatureByKey {
                name: "EnochRoot".into(),
                key_id: "af0cfe78".into()
            })
        );

        // Go's signer key reproduces Go's verifier key and, Ed25519 being deterministic,
        // Go's signed note byte for byte.
        let s = peter_signer();
        assert_eq!(s.key_id(), v.key_id());
        assert_eq!(s.verifier_key(), PETER_VKEY);
        assert_eq!(s.sign(TEXT).unwrap(), note);
    }

    #[test]
    fn a_signature_line_of_another_key_in_non_canonical_base64_is_skipped_as_go_does() {
        // Enoch's signature with the last base64 digit's unused bits set: Go's
        // base64.StdEncoding (not Strict) decodes it to the same bytes, and note.Open skips
        // the line as unknown to Peter's verifier.
        let canonical = ENOCH_SIG.trim_end();
        let (head, last) = canonical.split_at(canonical.len() - 2); // "...c+QQ" then "Q="
        assert_eq!(last, "Q=");
        let lenient = format!("{head}R=\n");
        assert_eq!(
            GO_STD_BASE64.decode(lenient.trim_end().rsplit_once(' ').unwrap().1),
            STANDARD.decode(ENOCH_SIG.trim_end().rsplit_once(' ').unwrap().1)
        );
        let note = format!("{TEXT}\n{lenient}{PETER_SIG}");
        assert_eq!(peter().open(&note).unwrap(), TEXT);
        // The same non-canonical form on a line by the verifier's own key is refused.
        let peter_canonical = PETER_SIG.trim_end();
        let (ph, plast) = peter_canonical.split_at(peter_canonical.len() - 2);
        assert_eq!(plast, "M=");
        let peter_lenient = format!("{ph}N=\n");
        assert_eq!(
            peter().open(&format!("{TEXT}\n{peter_lenient}")),
            Err(NoteError::SignatureBase64 { line: 1 })
        );
        // What Go refuses stays refused whoever signed: a character outside base64.
        assert_eq!(
            peter().open(&format!("{TEXT}\n{head}*=\n{PETER_SIG}")),
            Err(NoteError::SignatureBase64 { line: 1 })
        );
    }

    #[test]
    fn go_bad_messages_are_refused() {
        let sig_no_newline = &PETER_SIG[..PETER_SIG.len() - 1];
        let bad = [
            (TEXT.to_string(), NoteError::MissingBlankLine),
            (format!("{TEXT}\n"), NoteError::MissingSignatures),
            (
                format!("{TEXT}\n{sig_no_newline}"),
                NoteError::UnterminatedSignatureLine,
            ),
            (
                format!("\x01{TEXT}\n{PETER_SIG}"),
                NoteError::ControlCharacter { offset: 0 },
            ),
            (
                format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
                NoteError::SignatureBase64 { line: 1 },
            ),
            (
                format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
                NoteError::MalformedSignatureLine { line: 2 },
            ),
            (
                format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
                NoteError::TooManySignatures { count: 101 },
            ),
            (
                format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]),
                NoteError::BadSignature {
                    name: "PeterNeumann".into(),
                    key_id: "c74f20a3".into(),
                },
            ),
            (
                format!("{TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
                NoteError::MalformedSignatureLine { line: 1 },
            ),
            (
                format!("{TEXT}\n\u{2014} a+b x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
                NoteError::SignatureKeyName { line: 1 },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n"),
                NoteError::SignatureTooShort { line: 1, len: 3 },
            ),
            (
                format!("{TEXT}\r\n{PETER_SIG}"),
                NoteError::ControlCharacter {
                    offset: TEXT.len(),
                },
            ),
        ];
        for (note, want) in bad {
            assert_eq!(peter().open(&note), Err(want), "{note:?}");
        }
        // 100 signature lines by the key are fine (all are checked).
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(100));
        assert_eq!(peter().open(&many).unwrap(), TEXT);
        // Oversized notes are refused before anything else.
        let huge = format!("{}\n{PETER_SIG}", "a".repeat(MAX_NOTE_LEN));
        assert!(matches!(
            peter().open(&huge),
            Err(NoteError::TooLarge { .. })
        ));
    }

    #[test]
    fn go_verifier_key_manglings_are_refused() {
        // As Go's TestNewVerifier: every proper substring and every single-byte increment.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let k = &PETER_VKEY[i..j];
                    assert!(NoteVerifier::parse(k).is_err(), "{k}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let k = String::from_utf8(m).unwrap();
            assert!(NoteVerifier::parse(&k).is_err(), "{k}");
        }
        // Go's "wrong length key": refused here already as base64, because its last group
        // has non-zero padding bits, which Go's decoder tolerates and this one does not.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(NoteError::VerifierKeyBase64)
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEA=="
            ),
            Err(NoteError::PublicKeyLength { got: 36 })
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::UnsupportedAlgorithm { alg: 0x65 })
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::WrongKeyId {
                stated: "c74f20a4".into(),
                computed: "c74f20a3".into()
            })
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .map(|v| v.key_id()),
            Ok([0xc7, 0x4f, 0x20, 0xa3])
        );
        assert_eq!(
            NoteVerifier::parse(
                "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::InvalidKeyName)
        );
        assert_eq!(
            NoteVerifier::parse("PeterNeumann"),
            Err(NoteError::MalformedVerifierKey)
        );
        assert_eq!(
            NoteVerifier::parse("PeterNeumann+c74f20a3+"),
            Err(NoteError::UnsupportedAlgorithm { alg: 0 })
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::VerifierKeyIdNotHex)
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T"
            ),
            Err(NoteError::VerifierKeyBase64)
        );
    }

    #[test]
    fn sign_open_round_trip() {
        let s = random_signer("example.com/filet-audit");
        let v = verifier_of(&s);
        assert_eq!(v.name(), s.name());
        assert_eq!(v.key_id(), s.key_id());
        let cp = Checkpoint {
            origin: "example.com/filet-audit".into(),
            size: 123_456,
            root: crate::merkle::leaf_hash(b"x"),
            extensions: vec!["ext one".into()],
        };
        let note = s.sign(&cp.to_text()).unwrap();
        assert!(note.starts_with(&cp.to_text()));
        assert_eq!(open_checkpoint(&note, &v), Ok(cp.clone()));
        // A text with blank lines in it: the last blank line separates the signatures.
        let text = "a\n\nb\n\n";
        assert_eq!(v.open(&s.sign(text).unwrap()).unwrap(), text);
        // Other keys' signatures, before or after, are ignored.
        let other = random_signer("witness.example/w1");
        let cosigned = other.sign(&cp.to_text()).unwrap();
        let other_line = cosigned.rsplit_once("\n\n").unwrap().1;
        let our_line = note.rsplit_once("\n\n").unwrap().1;
        let both = format!("{}\n{other_line}{our_line}", cp.to_text());
        assert_eq!(open_checkpoint(&both, &v), Ok(cp.clone()));
        assert_eq!(open_checkpoint(&both, &verifier_of(&other)), Ok(cp));
    }

    #[test]
    fn checkpoint_by_another_key_is_refused() {
        let log = random_signer("example.com/log");
        let impostor = random_signer("example.com/log"); // same name, other key
        let note = impostor.sign(SPEC_CHECKPOINT).unwrap();
        let v = verifier_of(&log);
        assert_eq!(
            open_checkpoint(&note, &v),
            Err(NoteError::NoSignatureByKey {
                name: "example.com/log".into(),
                key_id: hex4(log.key_id()),
            })
        );
        // A verifier whose name and key ID match the line but whose key differs (a key ID
        // collision) must fail the signature, not skip it.
        let colliding = NoteVerifier {
            public_key: v.public_key,
            ..verifier_of(&impostor)
        };
        assert!(matches!(
            open_checkpoint(&note, &colliding),
            Err(NoteError::BadSignature { .. })
        ));
        // The C2SP signed-note example parses, and a verifier of the same name but another
        // key ignores its signature.
        let q = verifier_of(&random_signer("quasimodo.example/salvatore"));
        assert!(matches!(
            q.open(SPEC_NOTE),
            Err(NoteError::NoSignatureByKey { .. })
        ));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let s = peter_signer();
        let v = peter();
        let note = s.sign(SPEC_CHECKPOINT).unwrap();
        assert!(open_checkpoint(&note, &v).is_ok());
        for (i, c) in note.char_indices() {
            let replacement = if c == 'A' { 'B' } else { 'A' };
            let mut m = String::with_capacity(note.len());
            m.push_str(&note[..i]);
            m.push(replacement);
            m.push_str(&note[i + c.len_utf8()..]);
            assert!(v.open(&m).is_err(), "byte {i} changed: {m:?}");
        }
        // A changed text under the original signature line.
        let forged = note.replacen("20852163", "20852164", 1);
        assert_eq!(
            v.open(&forged),
            Err(NoteError::BadSignature {
                name: "PeterNeumann".into(),
                key_id: "c74f20a3".into()
            })
        );
    }

    #[test]
    fn signer_refuses_bad_input() {
        let s = peter_signer();
        assert_eq!(
            s.sign("no newline"),
            Err(NoteError::TextMissingFinalNewline)
        );
        assert_eq!(s.sign(""), Err(NoteError::TextMissingFinalNewline));
        assert_eq!(
            s.sign("a\tb\n"),
            Err(NoteError::ControlCharacter { offset: 1 })
        );
        assert!(matches!(
            s.sign(&"a\n".repeat(MAX_NOTE_LEN)),
            Err(NoteError::TooLarge { .. })
        ));
        let pkcs8 = NoteSigner::generate_pkcs8().unwrap();
        for name in ["", "a+b", "a b", "a\u{a0}b", "a\u{3000}b"] {
            assert_eq!(
                NoteSigner::from_pkcs8(name, &pkcs8).map(|_| ()),
                Err(NoteError::InvalidKeyName),
                "{name:?}"
            );
        }
        assert!(matches!(
            NoteSigner::from_pkcs8("ok", b"not a key"),
            Err(NoteError::InvalidPrivateKey { .. })
        ));
        assert!(matches!(
            NoteSigner::from_seed("ok", &[0; 31]),
            Err(NoteError::InvalidPrivateKey { .. })
        ));
    }

    #[test]
    fn checkpoint_text_known_answer() {
        let cp = Checkpoint::parse(SPEC_CHECKPOINT).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20_852_163);
        assert_eq!(
            STANDARD.encode(cp.root),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), SPEC_CHECKPOINT);

        // A fixed checkpoint of the empty tree, with one extension line.
        let empty = Checkpoint {
            origin: "filet.example/audit".into(),
            size: 0,
            root: crate::merkle::empty_root(),
            extensions: vec!["x y".into()],
        };
        let text = "filet.example/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nx y\n";
        assert_eq!(empty.to_text(), text);
        assert_eq!(Checkpoint::parse(text), Ok(empty));
    }

    #[test]
    fn checkpoint_errors_name_their_cause() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases = [
            (String::new(), CheckpointError::MissingOrigin),
            ("\n".into(), CheckpointError::MissingOrigin),
            (format!("\n1\n{root}\n"), CheckpointError::MissingOrigin),
            ("o".into(), CheckpointError::MissingFinalNewline),
            (
                format!("o\n1\n{root}"),
                CheckpointError::MissingFinalNewline,
            ),
            ("o\n".into(), CheckpointError::MissingSize),
            ("o\n1\n".into(), CheckpointError::MissingRoot),
            (
                format!("o\n\n{root}\n"),
                CheckpointError::EmptyLine { line: 2 },
            ),
            (
                format!("o\n1\n{root}\n\n"),
                CheckpointError::EmptyLine { line: 4 },
            ),
            (
                format!("o\n1\n{root}\na\n\nb\n"),
                CheckpointError::EmptyLine { line: 5 },
            ),
            (format!("o\n+1\n{root}\n"), CheckpointError::SizeNotDecimal),
            (format!("o\n-1\n{root}\n"), CheckpointError::SizeNotDecimal),
            (format!("o\n 1\n{root}\n"), CheckpointError::SizeNotDecimal),
            (format!("o\n0x1\n{root}\n"), CheckpointError::SizeNotDecimal),
            (
                format!("o\n\u{661}\n{root}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (format!("o\n01\n{root}\n"), CheckpointError::SizeLeadingZero),
            (format!("o\n00\n{root}\n"), CheckpointError::SizeLeadingZero),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::SizeOverflow,
            ),
            ("o\n1\nnot base64!\n".into(), CheckpointError::RootNotBase64),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".into(),
                CheckpointError::RootNotBase64,
            ),
            (
                "o\n1\nV3JvbmdSb290\n".into(),
                CheckpointError::RootLength { got: 9 },
            ),
            (
                format!("o\r\n1\n{root}\n"),
                CheckpointError::ControlCharacter { line: 1 },
            ),
            (
                format!("o\n1\n{root}\nx\ty\n"),
                CheckpointError::ControlCharacter { line: 4 },
            ),
            (
                format!("{}\n1\n{root}\n", "o".repeat(MAX_NOTE_LEN)),
                CheckpointError::TooLarge {
                    len: MAX_NOTE_LEN + 48,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
        }
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse(&max).map(|c| c.size), Ok(u64::MAX));
        // A verified note whose text is no checkpoint.
        let s = peter_signer();
        assert_eq!(
            open_checkpoint(&s.sign("o\n01\nx\n").unwrap(), &peter()),
            Err(NoteError::Checkpoint(CheckpointError::SizeLeadingZero))
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,300}", cut in any::<usize>(), junk in ".{0,8}") {
            let v = peter();
            let _ = v.open(&s);
            let _ = NoteVerifier::parse(&s);
            let _ = Checkpoint::parse(&s);
            // Splice junk into a valid note and into a valid checkpoint.
            for valid in [format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}"), SPEC_CHECKPOINT.to_string()] {
                let mut at = cut % (valid.len() + 1);
                while !valid.is_char_boundary(at) {
                    at -= 1;
                }
                let spliced = format!("{}{junk}{}", &valid[..at], &valid[at..]);
                let _ = v.open(&spliced);
                let _ = Checkpoint::parse(&spliced);
                let _ = open_checkpoint(&spliced, &v);
            }
        }

        #[test]
        fn checkpoint_text_round_trips(
            origin in "[^\\x00-\\x1f]{1,40}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            extensions in proptest::collection::vec("[^\\x00-\\x1f]{1,20}", 0..4),
        ) {
            let cp = Checkpoint { origin, size, root, extensions };
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()), Ok(cp));
        }
    }
}
