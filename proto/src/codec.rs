//! Frames: a 4-byte big-endian body length, then the body in bincode 2.0.1 (serde,
//! standard configuration: little-endian varint integers).
//!
//! This is the only module that names bincode, so that the encoding can be swapped behind
//! [`encode_frame`] / [`decode_body`]. Every length is checked against [`MAX_FRAME_LEN`]
//! before anything is allocated, decoding is bounded (8 × that limit, see `DECODE_LIMIT`),
//! and a body with
//! bytes left over after the message is refused.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest frame body, in bytes (256 KiB). A length prefix above it is refused before the
/// body is read.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Size of the length prefix, in bytes.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes is over the limit of {MAX_FRAME_LEN} bytes")]
    TooLong {
        /// The announced or encoded length.
        len: usize,
    },
    /// The length prefix is zero: no message is empty.
    #[error("empty frame")]
    Empty,
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The body holds a message and then more bytes.
    #[error("frame has {extra} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The message could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Bound of bincode's decoder, in bytes. The body itself is at most [`MAX_FRAME_LEN`]
/// bytes; the decoder counts what it would allocate, and a varint of one byte counts as
/// the 8 bytes of the integer it becomes. So a body of N bytes may claim up to 8·N: the
/// bound is 8 × [`MAX_FRAME_LEN`] (2 MiB), which still caps every allocation a frame can
/// cause, and no frame the encoder accepts is refused by the decoder.
const DECODE_LIMIT: usize = 8 * MAX_FRAME_LEN;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `msg` as a whole frame: length prefix and body.
///
/// # Errors
/// [`FrameError::TooLong`] if the body would exceed [`MAX_FRAME_LEN`];
/// [`FrameError::Encode`] if serde fails.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(msg, &mut out, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len });
    }
    let prefix = u32::try_from(len).map_err(|_| FrameError::TooLong { len })?;
    out[..HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(out)
}

/// Reads a length prefix and checks it: the body length in bytes.
///
/// # Errors
/// [`FrameError::Empty`] for 0, [`FrameError::TooLong`] above [`MAX_FRAME_LEN`].
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        Err(FrameError::Empty)
    } else if len > MAX_FRAME_LEN {
        Err(FrameError::TooLong { len })
    } else {
        Ok(len)
    }
}

/// Decodes one message from a frame body (without its length prefix), with decoding
/// bounded by `DECODE_LIMIT`.
///
/// # Errors
/// [`FrameError::Malformed`] if the bytes are not a `T` (including invalid UTF-8 in a
/// string and an unknown enum variant), [`FrameError::TrailingBytes`] if bytes are left
/// over, [`FrameError::TooLong`] if the body is over the limit.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len: body.len() });
    }
    let (msg, used) = bincode::serde::decode_from_slice(body, config()).map_err(|e| {
        FrameError::Malformed(match e {
            // serde's own message, without bincode's debug wrapping.
            bincode::error::DecodeError::OtherString(s) => s,
            bincode::error::DecodeError::Utf8 { inner } => {
                format!("a string is not valid UTF-8 ({inner})")
            }
            bincode::error::DecodeError::UnexpectedEnd { additional } => {
                format!("the message ends {additional} byte(s) too early")
            }
            e => e.to_string(),
        })
    })?;
    if used != body.len() {
        return Err(FrameError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    Ok(msg)
}

/// Encodes a value without a length prefix, for storage records (same encoding as frame
/// bodies).
///
/// # Errors
/// [`FrameError::Encode`] if serde fails; [`FrameError::TooLong`] over [`MAX_FRAME_LEN`].
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let v = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if v.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len: v.len() });
    }
    Ok(v)
}

/// Decodes a value written by [`encode_value`]; the same checks as [`decode_body`].
///
/// # Errors
/// As [`decode_body`].
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    decode_body(bytes)
}

/// Takes one whole frame off the front of `buf` if one is there: `Ok(None)` when more
/// bytes are needed (a cheap check before any parsing, as in mini-redis).
///
/// # Errors
/// As [`body_len`] and [`decode_body`]; after an error the stream is out of step and must
/// be closed.
pub fn try_decode_frame<T: DeserializeOwned>(buf: &mut Vec<u8>) -> Result<Option<T>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = body_len([buf[0], buf[1], buf[2], buf[3]])?;
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let msg = decode_body(&buf[HEADER_LEN..HEADER_LEN + len])?;
    buf.drain(..HEADER_LEN + len);
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertDraft, Category, Risk};
    use crate::wire::{ClientFrame, Request, ServerFrame};
    use proptest::prelude::*;

    #[test]
    fn golden_frame() {
        let f = ClientFrame {
            id: 7,
            request: Request::Ack {
                alert: crate::id::AlertId([0xAB; 16]),
            },
        };
        let bytes = encode_frame(&f).unwrap();
        // id 7 (varint), variant 4 (Ack), then 16 raw bytes.
        let mut want = vec![0, 0, 0, 18, 7, 4];
        want.extend([0xAB; 16]);
        assert_eq!(bytes, want);
        let back: ClientFrame = decode_body(&bytes[4..]).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn refuses_trailing_bytes_and_oversize() {
        let mut bytes = encode_frame(&ClientFrame {
            id: 1,
            request: Request::WhoAmI,
        })
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_body::<ClientFrame>(&bytes[4..]),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
        assert!(matches!(
            body_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes()),
            Err(FrameError::TooLong { len }) if len == MAX_FRAME_LEN + 1
        ));
        assert!(matches!(body_len([0; 4]), Err(FrameError::Empty)));
        let mut d = AlertDraft::new(Category::Runaway, Risk::Minor, "R", "c");
        d.note = Some("x".repeat(MAX_FRAME_LEN));
        let big = ClientFrame {
            id: 1,
            request: Request::Post {
                draft: d,
                idempotency_key: [0; 16],
            },
        };
        assert!(matches!(
            encode_frame(&big),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn refuses_invalid_utf8_and_unknown_variants() {
        // Post with a draft whose first string is invalid UTF-8 would need a long body;
        // a closing frame with a 1-byte string 0xFF is enough.
        let body = [2u8, 1, 0xFF];
        assert!(matches!(
            decode_body::<ServerFrame>(&body),
            Err(FrameError::Malformed(_))
        ));
        let body = [1u8, 99];
        assert!(matches!(
            decode_body::<ClientFrame>(&body),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn splits_a_stream_into_frames() {
        let a = encode_frame(&ClientFrame {
            id: 1,
            request: Request::Inbox { after_seq: 0 },
        })
        .unwrap();
        let b = encode_frame(&ClientFrame {
            id: 2,
            request: Request::Subscribe,
        })
        .unwrap();
        let mut buf: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        buf.truncate(buf.len() - 1);
        let first: ClientFrame = try_decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(first.id, 1);
        assert!(try_decode_frame::<ClientFrame>(&mut buf).unwrap().is_none());
        buf.push(*b.last().unwrap());
        let second: ClientFrame = try_decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(second.request, Request::Subscribe);
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body::<ClientFrame>(&body);
            let _ = decode_body::<ServerFrame>(&body);
        }
    }
}
