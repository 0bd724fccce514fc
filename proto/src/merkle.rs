//! RFC 9162 §2.1 Merkle tree hashing, proofs and their verification.
//!
//! The tree is the one of RFC 9162 §2.1.1 (identical to RFC 6962 §2.1): SHA-256, leaves
//! hashed as `SHA-256(0x00 || entry)`, interior nodes as `SHA-256(0x01 || left || right)`,
//! the left subtree of a tree of `n > 1` leaves holding the largest power of two below `n`.
//!
//! Storage is abstracted by [`HashStore`]: it holds the hash of every *complete* subtree
//! (`2^level` leaves starting at a multiple of `2^level`) and nothing else. Roots and proofs
//! read `O(log n)` stored hashes: every node of the tree is either a complete subtree (one
//! read) or lies on the right edge, where it decomposes into at most 64 complete subtrees,
//! and a proof needs at most one such right-edge node. Nothing here ever walks the leaves.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) is the algorithm of
//! RFC 9162 §2.1.3.2 and §2.1.4.2, preceded by an exact proof-length check, so it computes
//! at most 130 hashes, allocates nothing and never panics, whatever the sizes, index or
//! proof length.

use ring::digest;

/// A SHA-256 hash: a leaf hash, a node hash or a tree root (32 bytes).
pub type Hash = [u8; 32];

/// Length of a [`Hash`](type@Hash), in bytes.
pub const HASH_LEN: usize = 32;

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let digest = ctx.finish();
    let mut out = [0u8; HASH_LEN];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

/// Leaf hash of RFC 9162 §2.1.1: `SHA-256(0x00 || entry)`, for an entry of any length.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// Interior node hash of RFC 9162 §2.1.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// Root of the empty tree, RFC 9162 §2.1.1: `SHA-256("")` (`e3b0c442…b855`).
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// Turns untrusted bytes (e.g. a decoded base64 string) into a [`Hash`](type@Hash).
///
/// # Errors
/// [`VerifyError::HashLength`] unless `bytes` is exactly [`HASH_LEN`] (32) bytes long.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, VerifyError> {
    Hash::try_from(bytes).map_err(|_| VerifyError::HashLength { got: bytes.len() })
}

/// Storage of complete-subtree hashes: `(level k, index i)` is the Merkle tree hash
/// (RFC 9162 §2.1.1) of leaves `[i * 2^k, (i + 1) * 2^k)`. Level 0 holds leaf hashes.
///
/// Only complete subtrees are ever asked for: for a tree of `n` leaves, `(k, i)` with
/// `(i + 1) * 2^k <= n`.
pub trait HashStore {
    /// Why a hash could not be read (I/O error, hash not stored, …).
    type Error;

    /// Returns the hash of the complete subtree at `(level, index)`.
    ///
    /// # Errors
    /// The store's own error, e.g. when that subtree is not stored (yet).
    fn get(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// A [`HashStore`] that can grow, as [`append_leaf`] needs.
pub trait HashStoreMut: HashStore {
    /// Appends `hash` at `level`; its index is the number of hashes already at that level.
    ///
    /// # Errors
    /// The store's own error (I/O, full, …).
    fn push(&mut self, level: u8, hash: Hash) -> Result<(), Self::Error>;
}

/// Appends one leaf hash to a tree of `size_before` leaves: pushes `leaf` at level 0 and
/// every complete subtree it completes (while the new index at a level is odd, it is
/// combined with its left sibling and the result pushed at `level + 1`).
///
/// Reads at most 64 hashes and pushes at most 65. `size_before` must be the number of leaves
/// already in `store`; the store is not asked to check it.
///
/// # Errors
/// The store's error, from reading a left sibling or from a push; the store may then hold
/// a partial append.
pub fn append_leaf<S: HashStoreMut + ?Sized>(
    store: &mut S,
    size_before: u64,
    leaf: Hash,
) -> Result<(), S::Error> {
    store.push(0, leaf)?;
    let mut hash = leaf;
    let mut index = size_before;
    let mut level: u8 = 0;
    // Each round clears one trailing one bit of `index`, so at most 64 rounds.
    while index & 1 == 1 {
        let left = store.get(level, index - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        index >>= 1;
        store.push(level, hash)?;
    }
    Ok(())
}

/// Largest power of two strictly below `n`, for `n >= 2` (RFC 9162 §2.1.1's `k`);
/// 1 for smaller `n`, which callers never pass.
fn split_point(n: u64) -> u64 {
    n.saturating_sub(1).checked_ilog2().map_or(1, |b| 1u64 << b)
}

/// Hash of the tree node covering leaves `[start, end)`, where that range is a node of a
/// RFC 9162 tree (so `start` is a multiple of a power of two `>= end - start`). A complete
/// node is one read; a right-edge node is folded from the complete subtrees of the binary
/// decomposition of `end - start`, smallest (rightmost) first: `popcount(end - start)`
/// reads, no allocation. The empty range hashes to [`empty_root`].
fn subtree_hash<S: HashStore + ?Sized>(store: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let mut rest = end.saturating_sub(start);
    let mut pos = end;
    let mut acc: Option<Hash> = None;
    while rest != 0 {
        let level = rest.trailing_zeros();
        rest &= rest - 1;
        // The widths taken sum to `end - start`, so `pos` never goes below `start`.
        pos -= 1u64 << level;
        // `level < 64`, so it fits in a u8.
        let hash = store.get(level as u8, pos >> level)?;
        acc = Some(match acc {
            None => hash,
            Some(right) => node_hash(&hash, &right),
        });
    }
    Ok(acc.unwrap_or_else(empty_root))
}

/// Merkle tree hash (RFC 9162 §2.1.1) of the first `size` leaves in `store`; a `size` of 0
/// gives [`empty_root`]. Reads `popcount(size)` (at most 64) stored hashes.
///
/// # Errors
/// The store's error, e.g. when `size` is beyond what it holds.
pub fn root<S: HashStore + ?Sized>(store: &S, size: u64) -> Result<Hash, S::Error> {
    subtree_hash(store, 0, size)
}

/// Why a proof could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index (0-based).
        index: u64,
        /// The tree size, in leaves.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew {
        /// The old tree size, in leaves.
        old_size: u64,
        /// The new tree size, in leaves.
        new_size: u64,
    },
    /// A consistency proof from the empty tree was asked for; RFC 9162 §2.1.4 defines
    /// none (every tree extends the empty tree, see [`verify_consistency`]).
    #[error("consistency proofs start from a tree of at least one leaf")]
    EmptyOldTree,
    /// The store failed to return a hash.
    #[error("hash store failed: {0}")]
    Store(E),
}

/// Number of hashes in the RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in a tree of
/// `size` leaves (`index < size`); at most 64.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut start, mut end, mut len) = (0u64, size, 0usize);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            end = mid;
        } else {
            start = mid;
        }
        len += 1;
    }
    len
}

/// Number of hashes in the RFC 9162 §2.1.4.1 consistency proof from `old_size` to
/// `new_size` (`0 < old_size <= new_size`); at most 65 (a leaf at depth 64, which exists
/// only in trees of more than 2^63 leaves, plus its 64 ancestors' siblings).
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (mut start, mut end, mut len, mut complete) = (0u64, new_size, 0usize, true);
    loop {
        if old_size - start == end - start {
            return if complete { len } else { len + 1 };
        }
        let mid = start + split_point(end - start);
        if old_size <= mid {
            end = mid;
        } else {
            start = mid;
            complete = false;
        }
        len += 1;
    }
}

/// RFC 9162 §2.1.3.1 inclusion proof of leaf `index` (0-based) in the tree of the first
/// `size` leaves: the sibling hashes from the leaf up to the root, lowest first, as
/// [`verify_inclusion`] takes them. At most 64 hashes.
///
/// Reads one stored hash per proof element, plus `popcount` of the right-edge sibling's
/// width for the (at most one) sibling that is not a complete subtree: `O(log n)` reads.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= size`; [`ProofError::Store`] if a hash
/// cannot be read (e.g. `size` is beyond what the store holds).
pub fn inclusion_proof<S: HashStore + ?Sized>(
    store: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, size));
    // Walk down from the root, collecting siblings top-down; PATH lists them bottom-up.
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            proof.push(subtree_hash(store, mid, end).map_err(ProofError::Store)?);
            end = mid;
        } else {
            proof.push(subtree_hash(store, start, mid).map_err(ProofError::Store)?);
            start = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.4.1 consistency proof from the tree of the first `old_size` leaves to the
/// tree of the first `new_size` leaves (`0 < old_size <= new_size`), in the order
/// [`verify_consistency`] takes it. Empty when the sizes are equal; at most 65 hashes.
///
/// Reads one stored hash per proof element, plus `popcount` of the width of the (at most
/// one) right-edge node that is not a complete subtree: `O(log n)` reads.
///
/// # Errors
/// [`ProofError::OldSizeExceedsNew`] if `old_size > new_size`; [`ProofError::EmptyOldTree`]
/// if `old_size == 0`; [`ProofError::Store`] if a hash cannot be read.
pub fn consistency_proof<S: HashStore + ?Sized>(
    store: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    // SUBPROOF(m, D[start:end], complete), unrolled top-down; the output is reversed at
    // the end, which puts the innermost term first as in RFC 9162 §2.1.4.1.
    let (mut start, mut end, mut complete) = (0u64, new_size, true);
    loop {
        if old_size - start == end - start {
            if !complete {
                proof.push(subtree_hash(store, start, end).map_err(ProofError::Store)?);
            }
            break;
        }
        let mid = start + split_point(end - start);
        if old_size <= mid {
            proof.push(subtree_hash(store, mid, end).map_err(ProofError::Store)?);
            end = mid;
        } else {
            proof.push(subtree_hash(store, start, mid).map_err(ProofError::Store)?);
            start = mid;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size (includes every index of an empty tree).
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index (0-based).
        index: u64,
        /// The claimed tree size, in leaves.
        size: u64,
    },
    /// The proof does not have the number of hashes these sizes (and index) require.
    #[error("wrong proof length: got {got} hashes, want {want}")]
    ProofLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes RFC 9162 §2.1.3.1 / §2.1.4.1 give for these parameters.
        want: usize,
    },
    /// The root computed from the leaf and the inclusion proof is not the expected root.
    #[error("root mismatch: the inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The old root recomputed from the consistency proof is not the expected old root.
    #[error("old root mismatch: the consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The new root recomputed from the consistency proof is not the expected new root.
    #[error("new root mismatch: the consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// The old tree is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew {
        /// The claimed old tree size, in leaves.
        old_size: u64,
        /// The claimed new tree size, in leaves.
        new_size: u64,
    },
    /// The old tree is empty, which every tree extends, but the proof is not empty.
    #[error("old tree size is 0 but the consistency proof has {len} hashes")]
    NonEmptyProofFromEmptyTree {
        /// Hashes in the proof.
        len: usize,
    },
    /// Old and new sizes are equal, so the proof must be empty, and it is not.
    #[error("old and new tree sizes are equal but the consistency proof has {len} hashes")]
    NonEmptyProofForEqualSizes {
        /// Hashes in the proof.
        len: usize,
    },
    /// A hash given as bytes is not 32 bytes long (see [`hash_from_slice`]).
    #[error("hash of {got} bytes, want 32")]
    HashLength {
        /// Length of the bytes given.
        got: usize,
    },
}

/// RFC 9162 §2.1.3.2: checks that `proof` (lowest sibling first, as from
/// [`inclusion_proof`]) shows the leaf with hash `leaf` at 0-based `index` in the tree of
/// `size` leaves whose root is `root`.
///
/// Computes at most 64 hashes whatever the proof length (its length is checked first);
/// allocates nothing.
///
/// # Errors
/// [`VerifyError::IndexOutOfRange`] if `index >= size`; [`VerifyError::ProofLength`] if
/// the proof is not exactly as long as RFC 9162 §2.1.3.1 gives; [`VerifyError::RootMismatch`]
/// if the recomputed root differs from `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    let length_error = VerifyError::ProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(length_error);
    }
    // RFC 9162 §2.1.3.2 steps 2-4, literally.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(length_error);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(length_error);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `new_size` leaves with root `new_root`
/// extends the tree of `old_size` leaves with root `old_root`, given `proof` as from
/// [`consistency_proof`].
///
/// Beyond RFC 9162 (which assumes `0 < old_size < new_size`): equal sizes need an empty
/// proof and equal roots; an old size of 0 needs an empty proof and `old_root` equal to
/// [`empty_root`] (the root of an empty tree is defined, so any other value is refused);
/// so `(0, 0)` needs both roots equal to [`empty_root`].
///
/// Size 0 beside transparency-dev/merkle (`proof/verify.go`, `RootFromConsistencyProof`,
/// which requires `0 < size1 <= size2`): there, equal sizes (0 and 0 included) need an
/// empty proof and equal roots, whatever the roots are, and `size1 == 0 < size2` is an
/// error ("consistency proof from empty tree is meaningless"). Here `0 < new_size` is
/// accepted with an empty proof, since the empty tree is a prefix of every tree once its
/// root is the empty-tree hash; and a size-0 root other than [`empty_root`] is refused
/// (Go accepts `(0, 0, X, X)` for any `X`).
///
/// Computes at most 130 hashes whatever the proof length (its length is checked first);
/// allocates nothing.
///
/// # Errors
/// [`VerifyError::OldSizeExceedsNew`], [`VerifyError::NonEmptyProofFromEmptyTree`],
/// [`VerifyError::NonEmptyProofForEqualSizes`] for those cases;
/// [`VerifyError::ProofLength`] if the proof is not exactly as long as RFC 9162 §2.1.4.1
/// gives (an empty proof included); [`VerifyError::OldRootMismatch`] or
/// [`VerifyError::NewRootMismatch`] if a recomputed root differs.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(VerifyError::NonEmptyProofFromEmptyTree { len: proof.len() });
        }
        if *old_root != empty_root() {
            return Err(VerifyError::OldRootMismatch);
        }
        if new_size == 0 && new_root != old_root {
            return Err(VerifyError::NewRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::NonEmptyProofForEqualSizes { len: proof.len() });
        }
        if old_root != new_root {
            return Err(VerifyError::NewRootMismatch);
        }
        return Ok(());
    }
    let want = consistency_proof_len(old_size, new_size);
    let length_error = VerifyError::ProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(length_error);
    }
    // RFC 9162 §2.1.4.2 steps 1-7. Step 2: a power-of-two old tree is a node of the new
    // tree, so its root is not in the proof and seeds the computation.
    let (seed, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (first, rest),
            None => return Err(length_error),
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if snode == 0 {
            return Err(length_error);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(length_error);
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch);
    }
    Ok(())
}

/// Why a [`MemoryTree`] could not serve a [`HashStore`] request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemoryTreeError {
    /// No hash is stored at `(level, index)`: not a complete subtree of the tree held.
    #[error("no hash stored at level {level}, index {index}")]
    Missing {
        /// The level asked for.
        level: u8,
        /// The index asked for.
        index: u64,
    },
    /// A push at a level above the highest existing level plus one.
    #[error("cannot push at level {level}: the tree has {levels} levels")]
    LevelGap {
        /// The level pushed to.
        level: u8,
        /// Levels held.
        levels: usize,
    },
}

/// In-memory tree (one `Vec` of hashes per level, about `2 * 32` bytes per leaf) for tests,
/// the auditor's offline verification and benchmarks. It is a [`HashStoreMut`], so the
/// proof functions of this module work on it directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (hashed with [`leaf_hash`]).
    pub fn push_leaf(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    /// Appends a leaf hash, and every complete subtree it completes (the same hashes as
    /// [`append_leaf`] pushes, without its fallible store interface).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0usize;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return; // Unreachable: the row was just ensured.
            };
            row.push(hash);
            // The new hash's index is `row.len() - 1`; an even index completes nothing.
            if row.len() % 2 == 1 {
                return;
            }
            let Some(left) = row.len().checked_sub(2).and_then(|i| row.get(i)) else {
                return; // Unreachable: the length is even and non-zero.
            };
            hash = node_hash(left, &hash);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |row| row.len() as u64)
    }

    /// Merkle tree hash of all leaves ([`empty_root`] when empty).
    pub fn root(&self) -> Hash {
        // The complete subtrees of the root's decomposition are the last hash of each level
        // whose bit is set in the size; fold them from the smallest (rightmost).
        let size = self.size();
        let mut acc: Option<Hash> = None;
        for (level, row) in self.levels.iter().enumerate() {
            let bit = u32::try_from(level)
                .ok()
                .and_then(|l| size.checked_shr(l))
                .unwrap_or(0);
            if bit & 1 == 1 {
                if let Some(hash) = row.last() {
                    acc = Some(match acc {
                        None => *hash,
                        Some(right) => node_hash(hash, &right),
                    });
                }
            }
        }
        acc.unwrap_or_else(empty_root)
    }
}

impl HashStore for MemoryTree {
    type Error = MemoryTreeError;

    fn get(&self, level: u8, index: u64) -> Result<Hash, MemoryTreeError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(MemoryTreeError::Missing { level, index })
    }
}

impl HashStoreMut for MemoryTree {
    fn push(&mut self, level: u8, hash: Hash) -> Result<(), MemoryTreeError> {
        let level_index = usize::from(level);
        if level_index == self.levels.len() {
            self.levels.push(Vec::new());
        }
        let levels = self.levels.len();
        self.levels
            .get_mut(level_index)
            .ok_or(MemoryTreeError::LevelGap { level, levels })?
            .push(hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};

    fn hex(s: &str) -> Hash {
        assert_eq!(s.len(), 64, "{s}");
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    // ---- Naive recursive reference (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1), O(n) per call.

    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = ref_k(n);
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        ref_subproof(m, d, true)
    }

    /// The operations RFC 9162 §2.1.3.2 performs for (index, size): `true` where the proof
    /// hash goes on the left. The verifier's result depends only on this and the hashes.
    fn inclusion_shape(index: u64, size: u64) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let (mut f, mut s, mut ops) = (index, size - 1, Vec::new());
        while s != 0 {
            let left = f & 1 == 1 || f == s;
            ops.push(left);
            if left {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
            f >>= 1;
            s >>= 1;
        }
        Some(ops)
    }

    /// Same for RFC 9162 §2.1.4.2 with 0 < old < new: whether the old root seeds the
    /// computation, and for each further proof hash whether it updates both roots.
    fn consistency_shape(old: u64, new: u64) -> Option<(bool, Vec<bool>)> {
        if old == 0 || old >= new {
            return None;
        }
        let (mut f, mut s, mut ops) = (old - 1, new - 1, Vec::new());
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        while s != 0 {
            let both = f & 1 == 1 || f == s;
            ops.push(both);
            if both {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
            f >>= 1;
            s >>= 1;
        }
        Some((old.is_power_of_two(), ops))
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn tree_of(d: &[Hash]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for h in d {
            t.push_leaf_hash(*h);
        }
        t
    }

    // ---- Known answers.

    // The RFC 6962 test tree: leaf inputs, node hashes of every complete subtree and roots
    // of every prefix, pinned from transparency-dev/merkle testonly/constants.go
    // (LeafInputs, NodeHashes, RootHashes, EmptyRootHash).
    const TEST_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const TEST_NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];
    const TEST_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn test_tree() -> MemoryTree {
        let mut t = MemoryTree::new();
        for leaf in TEST_LEAVES {
            t.push_leaf(&hex_bytes(leaf));
        }
        t
    }

    #[test]
    fn hashes_and_roots_of_the_rfc6962_test_tree() {
        assert_eq!(empty_root(), hex(TEST_ROOTS[0]));
        let mut t = MemoryTree::new();
        assert_eq!(t.root(), hex(TEST_ROOTS[0]));
        for (i, leaf) in TEST_LEAVES.iter().enumerate() {
            t.push_leaf(&hex_bytes(leaf));
            assert_eq!(t.root(), hex(TEST_ROOTS[i + 1]), "size {}", i + 1);
        }
        for (level, row) in TEST_NODES.iter().enumerate() {
            for (index, want) in row.iter().enumerate() {
                assert_eq!(t.get(level as u8, index as u64), Ok(hex(want)));
            }
        }
        // Prefix roots from the full tree's complete subtrees only.
        for (size, want) in TEST_ROOTS.iter().enumerate() {
            assert_eq!(root(&t, size as u64), Ok(hex(want)), "size {size}");
        }
    }

    // Proofs pinned from transparency-dev/merkle proof/verify_test.go (inclusionProofs,
    // consistencyProofs; its leaf numbers there are 1-based, here 0-based).
    #[test]
    fn known_inclusion_proofs() {
        let t = test_tree();
        let cases: [(u64, u64, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            assert_eq!(inclusion_proof(&t, index, size).unwrap(), want);
            let leaf = t.get(0, index).unwrap();
            let root = hex(TEST_ROOTS[size as usize]);
            assert_eq!(verify_inclusion(&leaf, index, size, &want, &root), Ok(()));
        }
        assert_eq!(inclusion_proof(&t, 0, 1).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn known_consistency_proofs() {
        let t = test_tree();
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            assert_eq!(
                consistency_proof(&t, old, new).unwrap(),
                want,
                "{old}->{new}"
            );
            let (r1, r2) = (hex(TEST_ROOTS[old as usize]), hex(TEST_ROOTS[new as usize]));
            assert_eq!(verify_consistency(old, new, &r1, &r2, &want), Ok(()));
        }
    }

    // ---- Conformance with transparency-dev/merkle's testdata (`proto/tests/data/merkle`, with its SOURCE.md and LICENSE).

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InclusionCase {
        leaf_idx: u64,
        tree_size: u64,
        root: String,
        leaf_hash: String,
        proof: Option<Vec<String>>,
        want_err: bool,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsistencyCase {
        size1: u64,
        size2: u64,
        root1: String,
        root2: String,
        proof: Option<Vec<String>>,
        want_err: bool,
    }

    fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                json_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }

    /// Base64 → [`Hash`](type@Hash) through the product's own length check.
    fn b64_hash(s: &str) -> Result<Hash, VerifyError> {
        hash_from_slice(&STANDARD.decode(s).unwrap())
    }

    fn b64_proof(p: &Option<Vec<String>>) -> Result<Vec<Hash>, VerifyError> {
        p.iter().flatten().map(|s| b64_hash(s)).collect()
    }

    fn run_inclusion_case(c: &InclusionCase) -> Result<(), VerifyError> {
        let leaf = b64_hash(&c.leaf_hash)?;
        let root = b64_hash(&c.root)?;
        let proof = b64_proof(&c.proof)?;
        verify_inclusion(&leaf, c.leaf_idx, c.tree_size, &proof, &root)
    }

    fn run_consistency_case(c: &ConsistencyCase) -> Result<(), VerifyError> {
        let root1 = b64_hash(&c.root1)?;
        let root2 = b64_hash(&c.root2)?;
        let proof = b64_proof(&c.proof)?;
        verify_consistency(c.size1, c.size2, &root1, &root2, &proof)
    }

    #[test]
    fn conformance_vectors() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/merkle/"));
        let (mut inclusion, mut consistency) = (Vec::new(), Vec::new());
        json_files(&dir.join("inclusion"), &mut inclusion);
        json_files(&dir.join("consistency"), &mut consistency);
        let mut all = Vec::new();
        json_files(dir, &mut all);
        let mut cases = 0usize;
        for path in &inclusion {
            let c: InclusionCase =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let got = run_inclusion_case(&c);
            assert_eq!(got.is_err(), c.want_err, "{}: {got:?}", path.display());
            cases += 1;
        }
        for path in &consistency {
            let c: ConsistencyCase =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let got = run_consistency_case(&c);
            assert_eq!(got.is_err(), c.want_err, "{}: {got:?}", path.display());
            cases += 1;
        }
        assert_eq!(cases, all.len(), "every JSON file is one case");
        assert!(cases > 100, "only {cases} cases read");
    }

    // ---- Exhaustive small trees and property tests against the reference.

    #[test]
    fn all_proofs_of_small_trees_match_the_reference() {
        let d = leaves(70);
        let mut t = MemoryTree::new();
        let mut via_append = MemoryTree::new();
        for n in 1..=d.len() {
            t.push_leaf_hash(d[n - 1]);
            append_leaf(&mut via_append, (n - 1) as u64, d[n - 1]).unwrap();
            assert_eq!(t, via_append);
            let root_n = ref_mth(&d[..n]);
            assert_eq!(t.root(), root_n);
            assert_eq!(root(&t, n as u64), Ok(root_n));
            for m in 0..n {
                let p = inclusion_proof(&t, m as u64, n as u64).unwrap();
                assert_eq!(p, ref_path(m, &d[..n]), "path {m} in {n}");
                assert_eq!(p.len(), inclusion_shape(m as u64, n as u64).unwrap().len());
                assert_eq!(
                    verify_inclusion(&d[m], m as u64, n as u64, &p, &root_n),
                    Ok(())
                );
            }
            for m in 1..=n {
                let p = consistency_proof(&t, m as u64, n as u64).unwrap();
                assert_eq!(p, ref_proof(m, &d[..n]), "proof {m} -> {n}");
                let root_m = ref_mth(&d[..m]);
                assert_eq!(
                    verify_consistency(m as u64, n as u64, &root_m, &root_n, &p),
                    Ok(())
                );
            }
        }
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut h = *h;
        h[bit / 8] ^= 1 << (bit % 8);
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn proofs_agree_with_reference_and_resist_bit_flips(
            n in 1usize..=300,
            index_seed in any::<u64>(),
            old_seed in any::<u64>(),
            elem_seed in any::<u64>(),
        ) {
            let d = leaves(n);
            let t = tree_of(&d);
            let (n64, index) = (n as u64, index_seed % n as u64);
            let old = 1 + old_seed % n64;
            let root_n = ref_mth(&d);
            prop_assert_eq!(t.root(), root_n);

            // Inclusion.
            let leaf = d[index as usize];
            let p = inclusion_proof(&t, index, n64).unwrap();
            prop_assert_eq!(&p, &ref_path(index as usize, &d));
            prop_assert_eq!(verify_inclusion(&leaf, index, n64, &p, &root_n), Ok(()));
            for bit in 0..256 {
                prop_assert!(verify_inclusion(&leaf, index, n64, &p, &flip(&root_n, bit)).is_err());
                prop_assert!(verify_inclusion(&flip(&leaf, bit), index, n64, &p, &root_n).is_err());
                if !p.is_empty() {
                    let mut q = p.clone();
                    let e = (elem_seed % p.len() as u64) as usize;
                    q[e] = flip(&q[e], bit);
                    prop_assert!(verify_inclusion(&leaf, index, n64, &q, &root_n).is_err());
                }
            }
            let shape = inclusion_shape(index, n64);
            for bit in 0..64 {
                let i2 = index ^ (1 << bit);
                prop_assert!(verify_inclusion(&leaf, i2, n64, &p, &root_n).is_err(), "index {} -> {}", index, i2);
                // A flipped size verifies exactly when RFC 9162 §2.1.3.2 does the very same
                // computation for it (e.g. leaf 0 of 3 and of 4): the size is only bound
                // to the root by the signed checkpoint. See size_is_bound_by_the_root_only.
                let n2 = n64 ^ (1 << bit);
                let same = inclusion_shape(index, n2) == shape;
                prop_assert_eq!(verify_inclusion(&leaf, index, n2, &p, &root_n).is_ok(), same, "size {} -> {}", n64, n2);
            }

            // Consistency.
            let root_old = ref_mth(&d[..old as usize]);
            let c = consistency_proof(&t, old, n64).unwrap();
            prop_assert_eq!(&c, &ref_proof(old as usize, &d));
            prop_assert_eq!(verify_consistency(old, n64, &root_old, &root_n, &c), Ok(()));
            if old < n64 {
                for bit in 0..256 {
                    prop_assert!(verify_consistency(old, n64, &flip(&root_old, bit), &root_n, &c).is_err());
                    prop_assert!(verify_consistency(old, n64, &root_old, &flip(&root_n, bit), &c).is_err());
                    let mut q = c.clone();
                    let e = (elem_seed % c.len() as u64) as usize;
                    q[e] = flip(&q[e], bit);
                    prop_assert!(verify_consistency(old, n64, &root_old, &root_n, &q).is_err());
                }
                let shape = consistency_shape(old, n64);
                for bit in 0..64 {
                    let o2 = old ^ (1 << bit);
                    let same = consistency_shape(o2, n64) == shape;
                    prop_assert_eq!(verify_consistency(o2, n64, &root_old, &root_n, &c).is_ok(), same, "old {} -> {}", old, o2);
                    let n2 = n64 ^ (1 << bit);
                    let same = consistency_shape(old, n2) == shape;
                    prop_assert_eq!(verify_consistency(old, n2, &root_old, &root_n, &c).is_ok(), same, "new {} -> {}", n64, n2);
                }
            } else {
                prop_assert!(c.is_empty());
                prop_assert!(verify_consistency(old, n64, &root_old, &flip(&root_n, 0), &c).is_err());
            }
        }

        #[test]
        fn verification_of_hostile_input_never_panics(
            index in any::<u64>(),
            size in prop_oneof![any::<u64>(), (u64::MAX - 70)..=u64::MAX, 0u64..70],
            old in prop_oneof![any::<u64>(), (u64::MAX - 70)..=u64::MAX, 0u64..70],
            len in prop_oneof![0usize..=70, Just(1000)],
            fill in any::<u8>(),
        ) {
            let proof = vec![[fill; 32]; len];
            let h = [fill; 32];
            let _ = verify_inclusion(&h, index, size, &proof, &h);
            let _ = verify_inclusion(&h, index % size.max(1), size, &proof, &h);
            let _ = verify_consistency(old, size, &h, &h, &proof);
            let _ = verify_consistency(old.min(size), size, &h, &h, &proof);
        }
    }

    #[test]
    fn size_is_bound_by_the_root_only() {
        // RFC 9162 verification cannot tell some sizes apart: the inclusion proof of leaf 0
        // in the tree of 3 leaves also "verifies" leaf 0 in a tree of 4 leaves whose root
        // would be the 3-leaf root. Harmless, because a log signs (size, root) together in a
        // checkpoint, but callers must take size and root from the same signed checkpoint.
        let t = test_tree();
        let p = inclusion_proof(&t, 0, 3).unwrap();
        let r3 = hex(TEST_ROOTS[3]);
        let leaf = t.get(0, 0).unwrap();
        assert_eq!(verify_inclusion(&leaf, 0, 3, &p, &r3), Ok(()));
        assert_eq!(verify_inclusion(&leaf, 0, 4, &p, &r3), Ok(()));
        assert_eq!(
            verify_inclusion(&leaf, 0, 4, &p, &hex(TEST_ROOTS[4])),
            Err(VerifyError::RootMismatch)
        );
    }

    // ---- Hostile input and error cases.

    #[test]
    fn a_consistency_proof_between_empty_trees_needs_both_roots_empty() {
        let e = empty_root();
        let x = [7u8; 32];
        // The documented rule: equal sizes need equal roots, size 0 the empty-tree root.
        assert_eq!(
            verify_consistency(0, 0, &e, &x, &[]),
            Err(VerifyError::NewRootMismatch)
        );
        assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
        // Where this differs from transparency-dev/merkle: Go accepts (0, 0, X, X), and
        // refuses 0 < size2 that this accepts with the empty-tree root.
        assert_eq!(
            verify_consistency(0, 0, &x, &x, &[]),
            Err(VerifyError::OldRootMismatch)
        );
        assert_eq!(verify_consistency(0, 3, &e, &x, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 3, &e, &x, &[x]),
            Err(VerifyError::NonEmptyProofFromEmptyTree { len: 1 })
        );
    }

    #[test]
    fn verify_errors_name_their_cause() {
        let h = [7u8; 32];
        let e = empty_root();
        assert_eq!(
            verify_inclusion(&h, 0, 0, &[], &e),
            Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&h, u64::MAX, u64::MAX, &[], &h),
            Err(VerifyError::IndexOutOfRange {
                index: u64::MAX,
                size: u64::MAX
            })
        );
        assert_eq!(
            verify_inclusion(&h, u64::MAX - 1, u64::MAX, &vec![h; 1000], &h),
            Err(VerifyError::ProofLength {
                got: 1000,
                want: 63
            })
        );
        assert_eq!(
            verify_inclusion(&h, 0, 1, &[h], &h),
            Err(VerifyError::ProofLength { got: 1, want: 0 })
        );
        assert_eq!(verify_inclusion(&h, 0, 1, &[], &h), Ok(()));
        assert_eq!(
            verify_consistency(2, 1, &h, &h, &[]),
            Err(VerifyError::OldSizeExceedsNew {
                old_size: 2,
                new_size: 1
            })
        );
        assert_eq!(
            verify_consistency(0, 5, &e, &h, &[h]),
            Err(VerifyError::NonEmptyProofFromEmptyTree { len: 1 })
        );
        assert_eq!(verify_consistency(0, 5, &e, &h, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 5, &h, &h, &[]),
            Err(VerifyError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 3, &h, &h, &[h]),
            Err(VerifyError::NonEmptyProofForEqualSizes { len: 1 })
        );
        assert_eq!(
            verify_consistency(3, 3, &h, &e, &[]),
            Err(VerifyError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(1, 2, &h, &h, &[]),
            Err(VerifyError::ProofLength { got: 0, want: 1 })
        );
        assert!(matches!(
            verify_consistency(u64::MAX - 1, u64::MAX, &h, &h, &vec![h; 1000]),
            Err(VerifyError::ProofLength { got: 1000, .. })
        ));
        assert_eq!(
            hash_from_slice(b"WrongRoot"),
            Err(VerifyError::HashLength { got: 9 })
        );
        assert_eq!(
            VerifyError::RootMismatch.to_string(),
            "root mismatch: the inclusion proof does not lead to the expected root"
        );
    }

    #[test]
    fn proof_errors_name_their_cause() {
        let t = test_tree();
        assert_eq!(
            inclusion_proof(&t, 8, 8),
            Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            consistency_proof(&t, 5, 4),
            Err(ProofError::OldSizeExceedsNew {
                old_size: 5,
                new_size: 4
            })
        );
        assert_eq!(consistency_proof(&t, 0, 4), Err(ProofError::EmptyOldTree));
        // Beyond the stored tree: the store says so, nothing panics.
        assert!(matches!(
            inclusion_proof(&t, 0, 9),
            Err(ProofError::Store(MemoryTreeError::Missing { .. }))
        ));
        assert!(matches!(
            consistency_proof(&t, 3, u64::MAX),
            Err(ProofError::Store(MemoryTreeError::Missing { .. }))
        ));
        assert!(matches!(
            root(&t, u64::MAX),
            Err(MemoryTreeError::Missing { .. })
        ));
        let mut m = MemoryTree::new();
        assert_eq!(
            m.push(2, [0; 32]),
            Err(MemoryTreeError::LevelGap {
                level: 2,
                levels: 0
            })
        );
    }

    // ---- Huge trees without memory: a consistent synthetic store.

    /// Leaves alternate along the Thue–Morse sequence (leaf j is "odd" iff popcount(j) is
    /// odd), so the subtree at (k, i) is one of two hashes per level, chosen by the parity
    /// of popcount(i): a consistent tree of any size in O(64) memory. Counts reads and
    /// refuses any (level, index) that is not a complete subtree of `size` leaves.
    struct ThueMorse {
        size: u64,
        table: [[Hash; 2]; 64],
        reads: Cell<usize>,
    }

    impl ThueMorse {
        fn new(size: u64) -> Self {
            let mut table = [[[0u8; 32]; 2]; 64];
            table[0] = [leaf_hash(b"even"), leaf_hash(b"odd")];
            for k in 1..64 {
                let [a, b] = table[k - 1];
                table[k] = [node_hash(&a, &b), node_hash(&b, &a)];
            }
            Self {
                size,
                table,
                reads: Cell::new(0),
            }
        }
        fn leaf(&self, index: u64) -> Hash {
            self.table[0][(index.count_ones() & 1) as usize]
        }
    }

    impl HashStore for ThueMorse {
        type Error = String;
        fn get(&self, level: u8, index: u64) -> Result<Hash, String> {
            self.reads.set(self.reads.get() + 1);
            let end = index
                .checked_add(1)
                .and_then(|i| i.checked_mul(1u64.checked_shl(u32::from(level))?));
            match end {
                Some(end) if end <= self.size && level < 64 => {
                    Ok(self.table[usize::from(level)][(index.count_ones() & 1) as usize])
                }
                _ => Err(format!("({level}, {index}) is not a complete subtree")),
            }
        }
    }

    #[test]
    fn thue_morse_store_is_a_real_tree() {
        let n = 37usize;
        let s = ThueMorse::new(n as u64);
        let d: Vec<Hash> = (0..n as u64).map(|i| s.leaf(i)).collect();
        for m in 0..=n {
            assert_eq!(root(&s, m as u64), Ok(ref_mth(&d[..m])));
        }
    }

    #[test]
    fn proofs_read_logarithmically_many_hashes() {
        let n: u64 = (1 << 20) + 12345;
        let bound = 4 * n.ilog2() as usize; // 80
        let s = ThueMorse::new(n);
        let root_n = root(&s, n).unwrap();
        assert_eq!(s.reads.get(), n.count_ones() as usize);
        for index in [0, 1, 12345, 1 << 19, (1 << 20) - 1, 1 << 20, n - 2, n - 1] {
            s.reads.set(0);
            let p = inclusion_proof(&s, index, n).unwrap();
            assert!(
                s.reads.get() < bound,
                "inclusion {index}: {} reads",
                s.reads.get()
            );
            assert_eq!(
                verify_inclusion(&s.leaf(index), index, n, &p, &root_n),
                Ok(())
            );
        }
        for old in [
            1,
            2,
            3,
            1000,
            12345,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 1,
            n - 1,
            n,
        ] {
            let root_old = root(&s, old).unwrap();
            s.reads.set(0);
            let p = consistency_proof(&s, old, n).unwrap();
            assert!(
                s.reads.get() < bound,
                "consistency {old}: {} reads",
                s.reads.get()
            );
            assert_eq!(verify_consistency(old, n, &root_old, &root_n, &p), Ok(()));
        }
    }

    #[test]
    fn proofs_at_sizes_near_u64_max() {
        let sizes = [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) + 1,
            (1 << 63) - 1,
        ];
        for &n in &sizes {
            let s = ThueMorse::new(n);
            let root_n = root(&s, n).unwrap();
            for index in [0, 1, n / 2, n - 2, n - 1] {
                let p = inclusion_proof(&s, index, n).unwrap();
                assert!(p.len() <= 64);
                assert_eq!(
                    verify_inclusion(&s.leaf(index), index, n, &p, &root_n),
                    Ok(())
                );
                assert!(verify_inclusion(&s.leaf(index), index, n, &p, &flip(&root_n, 3)).is_err());
                s.reads.set(0);
            }
            for old in [1, 2, 3, n / 2, n - 2, n - 1] {
                let root_old = root(&s, old).unwrap();
                let p = consistency_proof(&s, old, n).unwrap();
                assert!(p.len() <= 65);
                assert_eq!(verify_consistency(old, n, &root_old, &root_n, &p), Ok(()));
                assert!(verify_consistency(old, n, &root_old, &flip(&root_n, 9), &p).is_err());
            }
        }
        // The store also refuses anything but complete subtrees at these sizes.
        let s = ThueMorse::new(u64::MAX);
        assert!(s.get(63, 1).is_err());
        assert!(s.get(63, 0).is_ok());
    }

    #[test]
    fn appending_to_a_huge_tree_reads_at_most_64_hashes() {
        // append_leaf at size 2^40 - 1 completes 40 subtrees; check the pushes via a store
        // that records them on top of the synthetic tree.
        struct Recorder {
            base: ThueMorse,
            pushed: Vec<(u8, Hash)>,
        }
        impl HashStore for Recorder {
            type Error = String;
            fn get(&self, level: u8, index: u64) -> Result<Hash, String> {
                self.base.get(level, index)
            }
        }
        impl HashStoreMut for Recorder {
            fn push(&mut self, level: u8, hash: Hash) -> Result<(), String> {
                self.pushed.push((level, hash));
                Ok(())
            }
        }
        let size = (1u64 << 40) - 1;
        let full = ThueMorse::new(size + 1);
        let mut r = Recorder {
            base: ThueMorse::new(size),
            pushed: Vec::new(),
        };
        append_leaf(&mut r, size, full.leaf(size)).unwrap();
        assert_eq!(r.pushed.len(), 41);
        for (i, (level, hash)) in r.pushed.iter().enumerate() {
            assert_eq!(usize::from(*level), i);
            assert_eq!(Ok(*hash), full.get(*level, size >> level));
        }
        assert_eq!(r.base.reads.get(), 40);
    }
}
