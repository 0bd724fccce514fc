//! The relay protocol over QUIC, shared by the node (`filet-client`) and the relay
//! (`filet-relay`): frames on streams and the crypto provider of every TLS context.
//!
//! A frame is `proto::codec`'s: a 4-byte big-endian length, then a bincode body. Reading
//! checks the length against `MAX_FRAME_LEN` before allocating, and bounds the time a
//! started frame may take to arrive (a peer that sends half a frame and goes silent is cut
//! off, not waited for). Writing is `codec::encode_frame` and one `write_all`.
//!
//! `proto` holds the messages and the codec without I/O; this crate holds the I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use filet_proto::codec::{self, FrameError, HEADER_LEN};
use quinn::{ReadExactError, RecvStream};
use rustls::crypto::CryptoProvider;
use serde::de::DeserializeOwned;

/// Errors reading a frame from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// A frame was started but did not arrive in time.
    #[error("frame not completed within {0:?}")]
    Timeout(Duration),
    /// The frame is malformed, oversized or has trailing bytes.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection or stream failed.
    #[error(transparent)]
    Stream(#[from] quinn::ReadError),
}

/// Reads one frame: `Ok(None)` at a clean end of stream (between frames).
///
/// Waiting for the first byte of a frame has no time limit here (the connection's idle
/// timeout covers dead peers); once a frame has started, the rest must arrive within
/// `body_timeout`.
///
/// # Errors
/// [`ReadFrameError`]; after one the stream is out of step and must be closed.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    body_timeout: Duration,
) -> Result<Option<T>, ReadFrameError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header[..1]).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => return Ok(None),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let rest = async {
        match recv.read_exact(&mut header[1..]).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(n)) => {
                return Err(ReadFrameError::Truncated {
                    got: 1 + n,
                    want: HEADER_LEN,
                })
            }
            Err(ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        let len = codec::body_len(header)?;
        let mut body = vec![0u8; len];
        match recv.read_exact(&mut body).await {
            Ok(()) => Ok(body),
            Err(ReadExactError::FinishedEarly(n)) => {
                Err(ReadFrameError::Truncated { got: n, want: len })
            }
            Err(ReadExactError::ReadError(e)) => Err(e.into()),
        }
    };
    let body = tokio::time::timeout(body_timeout, rest)
        .await
        .map_err(|_| ReadFrameError::Timeout(body_timeout))??;
    Ok(Some(codec::decode_body(&body)?))
}

/// The crypto provider of every TLS context of Filet: rustls with *ring* only.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
