//! API authentication: `Authorization: APIKey <token>` (DESIGN §5).
//!
//! The scheme word is case-insensitive (RFC 9110 §11.1); the token is any run of
//! visible ASCII (Gcore's look like `1234$abcdef`) and is compared in constant time
//! so response timing does not reveal how much of a guess was right.

/// Why a request is not authenticated. Every variant answers 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization header; send `Authorization: APIKey <token>`")]
    Missing,
    /// Not `APIKey <token>`.
    #[error("malformed Authorization header; expected `APIKey <token>`")]
    Malformed,
    /// The token is wrong.
    #[error("invalid API key")]
    Invalid,
}

/// Checks an `Authorization` header value against the configured key.
pub fn check(header: Option<&[u8]>, expected: &str) -> Result<(), AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let text = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("apikey")
        || token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AuthError::Malformed);
    }
    if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Invalid)
    }
}

/// Equality whose running time depends only on the lengths, not on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "1234$abcdef";

    #[test]
    fn scheme_is_case_insensitive() {
        for h in [
            "APIKey 1234$abcdef",
            "apikey 1234$abcdef",
            "APIKEY  1234$abcdef",
        ] {
            assert_eq!(check(Some(h.as_bytes()), KEY), Ok(()), "{h}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(check(None, KEY), Err(AuthError::Missing));
        assert_eq!(
            check(Some(b"Bearer 1234$abcdef"), KEY),
            Err(AuthError::Malformed)
        );
        assert_eq!(check(Some(b"APIKey"), KEY), Err(AuthError::Malformed));
        assert_eq!(
            check(Some(b"APIKey a\x01b"), KEY),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check(Some(b"APIKey 1234$abcdeg"), KEY),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            check(Some(b"APIKey 1234$abcde"), KEY),
            Err(AuthError::Invalid)
        );
    }
}
