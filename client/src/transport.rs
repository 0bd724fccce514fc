//! Frames over QUIC streams and the crypto provider (re-exported from `filet-net`, which the
//! relay shares), and how this node names a failed connection for people.

pub use filet_net::{provider, read_frame, ReadFrameError};

/// Names a QUIC/TLS close for people: TLS alerts arrive as QUIC `CRYPTO_ERROR` codes
/// `0x100 + alert` (RFC 9001 §4.8).
pub fn describe_connection_error(e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError as C;
    match e {
        C::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            format!("the relay closed the connection: {reason}")
        }
        C::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            let reason = String::from_utf8_lossy(&c.reason);
            match code.checked_sub(0x100).filter(|a| *a < 256) {
                Some(alert) => format!(
                    "the relay refused the TLS handshake ({}){}",
                    tls_alert_hint(alert as u8, &reason),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ),
                // CONNECTION_REFUSED (RFC 9000 §20.1): the relay is at its connection limit
                // or shutting down.
                None if code == 0x2 => "the relay is busy: it refused the connection (at its connection limit, or shutting down); retry later".to_owned(),
                None => format!("the relay closed the connection (code {code:#x}): {reason}"),
            }
        }
        C::TransportError(t) => {
            // Raised here, by this node: its own TLS refused the relay.
            let code = u64::from(t.code);
            match code.checked_sub(0x100).filter(|a| *a < 256) {
                Some(alert) => {
                    let advice = if t.reason.contains("Expired") || t.reason.contains("NotValidYet")
                    {
                        "the relay's certificate is out of its dates (or this machine's clock is wrong): tell the relay's operator"
                    } else {
                        "check the profile's server_name and ca"
                    };
                    format!("this node refused the relay's certificate (TLS alert {alert}): {}; {advice}", t.reason)
                }
                None => format!("transport error: {t}"),
            }
        }
        C::TimedOut => "the relay did not answer (timed out); is it running and reachable?".into(),
        C::Reset => "the relay reset the connection".into(),
        C::LocallyClosed => "connection closed".into(),
        other => other.to_string(),
    }
}

fn tls_alert_hint(alert: u8, reason: &str) -> String {
    let (name, hint) = match alert {
        // rustls sends unknown_ca for three causes; the reason tells them apart.
        48 if reason.contains("UnknownRevocationStatus") => ("unknown_ca", "the relay cannot tell whether this node's certificate is revoked: its revocation list is not from the CA that issued the certificate; tell the relay's operator"),
        48 if reason.contains("ExpiredRevocationList") => ("unknown_ca", "the relay's revocation list is past its nextUpdate and the relay refuses certificates until it is renewed; tell the relay's operator"),
        42 => ("bad_certificate", "the certificate was refused: is it a node certificate of this agreement's CA, with EKU clientAuth?"),
        43 => ("unsupported_certificate", "the certificate's type or key usage is not accepted: a node certificate needs EKU clientAuth"),
        44 => ("certificate_revoked", "this node's certificate is revoked; ask the operator for a new one"),
        45 => ("certificate_expired", "this node's certificate is expired or not yet valid; check the dates and the clock"),
        46 => ("certificate_unknown", "the certificate was refused"),
        48 => ("unknown_ca", "the certificate is not issued by this agreement's CA"),
        40 => ("handshake_failure", "no common TLS parameters"),
        49 => ("access_denied", "the relay refused this node"),
        50 => ("decode_error", "a TLS message could not be read: is this a Filet relay?"),
        51 => ("decrypt_error", "a signature did not verify: the node's certificate may be issued by another CA of the same name (a PKI made again), or the node's key may not match its certificate"),
        70 => ("protocol_version", "the relay speaks TLS 1.3 only"),
        80 => ("internal_error", "the relay had an internal TLS error; see its log"),
        116 => ("certificate_required", "the relay requires a client certificate; give the node's certificate and key"),
        120 => ("no_application_protocol", "the relay does not speak filet/1"),
        _ => ("alert", "see the relay's log"),
    };
    format!("TLS alert {alert} {name}: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_revocation_status_is_not_called_another_ca() {
        let unknown = tls_alert_hint(48, "invalid peer certificate: UnknownRevocationStatus");
        assert_eq!(unknown, "TLS alert 48 unknown_ca: the relay cannot tell whether this node's certificate is revoked: its revocation list is not from the CA that issued the certificate; tell the relay's operator");
        let expired = tls_alert_hint(48, "invalid peer certificate: ExpiredRevocationList");
        assert!(
            expired.contains("revocation list is past its nextUpdate"),
            "{expired}"
        );
        assert_eq!(
            tls_alert_hint(48, "invalid peer certificate: UnknownIssuer"),
            "TLS alert 48 unknown_ca: the certificate is not issued by this agreement's CA"
        );
    }
}
