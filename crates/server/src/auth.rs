//! Who may call the JSON API: the [`Authorize`] trait an embedding server plugs its
//! own check into, and the default, Gcore's `Authorization: APIKey <token>`
//! ([`ApiKey`], `ref/api.md`, its opening paragraph).
//!
//! The scheme word is case-insensitive (RFC 9110 §11.1); the token is any run of
//! visible ASCII (Gcore's look like `1234$abcdef`) and is compared in constant time
//! so response timing does not reveal how much of a guess was right.

use dvrclip_engine::secret::constant_time_eq;
use http::HeaderMap;

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

/// Decides whether a request may call the API, from its headers. Every refusal
/// answers 401 with `WWW-Authenticate: APIKey`.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok` when the request may proceed.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError>;
}

impl<F> Authorize for F
where
    F: Fn(&HeaderMap) -> Result<(), AuthError> + Send + Sync + 'static,
{
    fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        self(headers)
    }
}

/// Gcore's scheme: `Authorization: APIKey <token>` with one configured token.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Accepts `token`.
    pub fn new(token: impl Into<String>) -> Self {
        ApiKey(token.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

impl Authorize for ApiKey {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        check(value, &self.0)
    }
}

/// Checks an `Authorization` header value against the configured key: `APIKey`
/// (any case), one or more spaces, the token; spaces or tabs around the whole are
/// optional whitespace (RFC 9110 §5.6.3, §11.6.2: `credentials = auth-scheme
/// [ 1*SP ( token68 / #auth-param ) ]`). Nothing else passes.
pub fn check(header: Option<&[u8]>, expected: &str) -> Result<(), AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let text = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
    // OWS only: `str::trim` would also take Unicode spaces and line breaks.
    let text = text.trim_matches([' ', '\t']);
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Malformed)?;
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

    /// Optional whitespace is spaces and tabs (RFC 9110 §5.6.3), not whatever Unicode
    /// calls a space (`str::trim` let `\u{3000}APIKey …` in; the independent oracle of
    /// `fuzz/fuzz_targets/auth_header.rs` disagreed).
    #[test]
    fn only_spaces_and_tabs_surround_the_credentials() {
        for h in ["\t APIKey 1234$abcdef \t", " APIKey 1234$abcdef"] {
            assert_eq!(check(Some(h.as_bytes()), KEY), Ok(()), "{h:?}");
        }
        for h in [
            "\u{3000}APIKey 1234$abcdef",
            "APIKey 1234$abcdef\u{85}",
            "\nAPIKey 1234$abcdef",
            "APIKey 1234$abcdef\r",
            "APIKey\t1234$abcdef",
        ] {
            assert_eq!(
                check(Some(h.as_bytes()), KEY),
                Err(AuthError::Malformed),
                "{h:?}"
            );
        }
    }
}
