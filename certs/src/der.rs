//! Just enough DER to write a certificate subject that rcgen cannot (a repeated attribute,
//! raw bytes) and to re-sign the certificate with it.
//!
//! rcgen keeps a distinguished name as a map, so it cannot repeat an attribute, and it only
//! writes well-formed strings. Hostile test certificates need both, so [`crate::CertSpec`]
//! lets rcgen make the certificate with an empty subject, then swaps the encoded subject
//! (and, for a self-signed certificate, the issuer) and signs the new to-be-signed part
//! with the same key.

use rcgen::SigningKey;

use crate::spec::{Attr, AttrValue};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xa0;

/// Appends the DER length of `len` bytes.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one tag-length-value.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// One tag-length-value read from a buffer.
struct Tlv<'a> {
    /// The (one-byte) tag.
    tag: u8,
    /// The whole encoding: tag, length and content.
    whole: &'a [u8],
    /// The content octets.
    content: &'a [u8],
    /// What follows in the buffer.
    rest: &'a [u8],
}

/// Reads one tag-length-value with a one-byte tag.
fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, String> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated DER")?;
    let (&first, after_len) = after_tag.split_first().ok_or("truncated DER length")?;
    let (len, after_len) = if first < 0x80 {
        (usize::from(first), after_len)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() || after_len.len() < n {
            return Err("unsupported DER length".into());
        }
        let len = after_len[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &after_len[n..])
    };
    if after_len.len() < len {
        return Err("truncated DER content".into());
    }
    let header = input.len() - after_len.len();
    Ok(Tlv {
        tag,
        whole: &input[..header + len],
        content: &after_len[..len],
        rest: &after_len[len..],
    })
}

/// The encoded object identifier.
fn oid(arcs: &[u64]) -> Result<Vec<u8>, String> {
    let [first, second, rest @ ..] = arcs else {
        return Err(format!(
            "object identifier {arcs:?} has fewer than two arcs"
        ));
    };
    if *first > 2 || (*first < 2 && *second >= 40) {
        return Err(format!("object identifier {arcs:?} is not valid"));
    }
    let mut body = Vec::new();
    for arc in std::iter::once(first * 40 + second).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        body.extend(groups.iter().rev());
    }
    Ok(tlv(OID, &body))
}

/// Encodes a distinguished name: one single-valued RDN per attribute, in order.
pub(crate) fn name(subject: &[(Attr, AttrValue)]) -> Result<Vec<u8>, String> {
    let mut rdns = Vec::new();
    for (attr, value) in subject {
        let mut atv = oid(&attr.oid())?;
        let (tag, bytes) = value.tag_and_bytes();
        atv.extend(tlv(tag, &bytes));
        rdns.extend(tlv(SET, &tlv(SEQUENCE, &atv)));
    }
    Ok(tlv(SEQUENCE, &rdns))
}

/// Replaces the subject (and the issuer too when `issuer` is given) of the certificate
/// `cert`, and signs the result with `key`.
pub(crate) fn resign_with_names(
    cert: &[u8],
    subject: &[u8],
    issuer: Option<&[u8]>,
    key: &impl SigningKey,
) -> Result<Vec<u8>, String> {
    let outer = read_tlv(cert)?;
    if outer.tag != SEQUENCE || !outer.rest.is_empty() {
        return Err("not a certificate".into());
    }
    let tbs = read_tlv(outer.content)?;
    let algorithm = read_tlv(tbs.rest)?.whole;
    if tbs.tag != SEQUENCE {
        return Err("not a certificate".into());
    }
    let mut fields = Vec::new();
    let mut remaining = tbs.content;
    while !remaining.is_empty() {
        let field = read_tlv(remaining)?;
        fields.push((field.tag, field.whole));
        remaining = field.rest;
    }
    // version?, serialNumber, signature, issuer, validity, subject, ...
    let base = usize::from(fields.first().map(|f| f.0) == Some(VERSION));
    if fields.len() < base + 6 {
        return Err("certificate has too few fields".into());
    }
    let mut new_tbs = Vec::new();
    for (i, (_, whole)) in fields.iter().enumerate() {
        let field: &[u8] = match (i.checked_sub(base), issuer) {
            (Some(2), Some(issuer)) => issuer,
            (Some(4), _) => subject,
            _ => whole,
        };
        new_tbs.extend_from_slice(field);
    }
    let new_tbs = tlv(SEQUENCE, &new_tbs);
    let signature = key
        .sign(&new_tbs)
        .map_err(|e| format!("cannot sign: {e}"))?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut out = new_tbs;
    out.extend_from_slice(algorithm);
    out.extend(tlv(BIT_STRING, &bits));
    Ok(tlv(SEQUENCE, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_lengths_and_oids() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read_tlv(&long).unwrap().content.len(), 300);
        // 2.5.4.10 (organizationName) and 1.2.840.10045.2.1 (ecPublicKey)
        assert_eq!(
            oid(&[2, 5, 4, 10]).unwrap(),
            vec![0x06, 3, 0x55, 0x04, 0x0a]
        );
        assert_eq!(
            oid(&[1, 2, 840, 10045, 2, 1]).unwrap(),
            vec![0x06, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]
        );
        assert!(oid(&[3, 1]).is_err());
        assert!(read_tlv(&[0x30, 5, 1]).is_err());
    }
}
