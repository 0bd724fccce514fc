//! RFC 9162 §2.1 Merkle tree hashing, proofs and verification. (Being written.)
