//! Frames from the network: `codec::decode_body` of both directions' messages, and
//! `try_decode_frame` over a stream of bytes. Never a panic; a decoded message re-encodes
//! to bytes that decode and re-encode to the same bytes (one canonical encoding).
#![no_main]

use filet_proto::codec::{decode_body, encode_frame, try_decode_frame};
use filet_proto::wire::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;

fn canonical<T>(msg: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = encode_frame(msg).expect("a decoded message encodes");
    let again: T = decode_body(&bytes[4..]).expect("an encoded message decodes");
    assert_eq!(encode_frame(&again).expect("encodes again"), bytes);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = decode_body::<ClientFrame>(data) {
        canonical(&f);
    }
    if let Ok(f) = decode_body::<ServerFrame>(data) {
        canonical(&f);
    }
    let mut buf = data.to_vec();
    while let Ok(Some(_)) = try_decode_frame::<ClientFrame>(&mut buf) {}
    let mut buf = data.to_vec();
    while let Ok(Some(_)) = try_decode_frame::<ServerFrame>(&mut buf) {}
});
