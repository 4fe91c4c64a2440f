//! Unguessable keys and the safe way to compare them: the one place the project
//! draws randomness for ids and tokens (stream ingest and play keys, clip ids, API
//! tokens, VOD media keys), compares a secret a client sent, and digests a stream
//! key for an index (the engine's, a cluster's records), so no index holds a key.
//!
//! Everything here is small and pure but for the OS RNG; it holds no state.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// `N` bytes from the operating system's RNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| Error::Entropy)?;
    Ok(b)
}

/// `N` random bytes as `2 × N` lowercase hex digits (URL- and file-name-safe).
pub fn random_hex<const N: usize>() -> Result<String> {
    Ok(hex(&random_bytes::<N>()?))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Equality whose running time depends only on the lengths, not on where the
/// inputs differ, so the timing of an answer says nothing about how close a guess
/// was.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// Longest name of one path component (rendition, uploaded file, key), bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Whether `s` is a safe single path component: 1–[`MAX_NAME_BYTES`] bytes of
/// `[A-Za-z0-9._-]`, not starting with a dot (so never `.` or `..`). Rendition
/// names, uploaded file names and keys must be, so that one can never address
/// another's files.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_BYTES
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// SHA-256 of a stream key and what it opens: what a key index maps, so the index
/// never holds a key itself.
pub type KeyDigest = [u8; 32];

/// Which of a stream's keys a digest is of: an ingest key never opens playlists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// The push URL's key.
    Ingest,
    /// The live playlist's key.
    Play,
}

/// The digest of `key` as a key of `kind`.
pub fn key_digest(kind: KeyKind, key: &str) -> KeyDigest {
    let tag: &[u8] = match kind {
        KeyKind::Ingest => b"ingest\0",
        KeyKind::Play => b"play\0",
    };
    Sha256::new()
        .chain_update(tag)
        .chain_update(key.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_is_fresh_lowercase_hex() {
        let (a, b) = (random_hex::<16>().unwrap(), random_hex::<16>().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"1234$abcdef", b"1234$abcdef"));
        assert!(!constant_time_eq(b"1234$abcdef", b"1234$abcdeg"));
        assert!(!constant_time_eq(b"1234$abcde", b"1234$abcdef"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name("seg_00001.m4s"));
        assert!(is_safe_name(&"x".repeat(MAX_NAME_BYTES)));
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a%2fb",
            "a b",
            "é",
            &"x".repeat(MAX_NAME_BYTES + 1),
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }
}
