//! The `Host` header field of a request, checked before it is routed (RFC 9112 §3.2):
//! "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
//! request message that lacks a Host header field and to any request message that
//! contains more than one Host header field line or a Host header field with an
//! invalid field value."
//!
//! Caches and proxies in front of the server key on `Host`; a request they would
//! read differently from us is refused rather than answered. An HTTP/1.0 request may
//! omit it (HTTP/1.0 had none); HTTP/2 and later carry `:authority` instead, so only
//! HTTP/1.1 must have one. The value's grammar is RFC 9110 §7.2, `Host = uri-host
//! [ ":" port ]`, with `uri-host` and `port` from RFC 3986 §3.2.2-3.2.3. An empty
//! value is valid (§3.2: sent when the target URI has no authority).

use http::Version;
use http::header::{self, HeaderMap};

/// Why a request's `Host` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 request without one.
    #[error("an HTTP/1.1 request needs a Host header field (RFC 9112 §3.2)")]
    Missing,
    /// More than one `Host` field line.
    #[error("more than one Host header field (RFC 9112 §3.2)")]
    Repeated,
    /// A value that is not `uri-host [ ":" port ]`.
    #[error("the Host header field is not host[:port] (RFC 9110 §7.2)")]
    Invalid,
}

/// Checks the `Host` field lines of a request of `version`.
pub fn check(version: Version, headers: &HeaderMap) -> Result<(), HostError> {
    let mut values = headers.get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (None, _) if version == Version::HTTP_11 => Err(HostError::Missing),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(HostError::Repeated),
        (Some(v), None) if is_valid(v.as_bytes()) => Ok(()),
        (Some(_), None) => Err(HostError::Invalid),
    }
}

/// `uri-host [ ":" port ]`: an `IP-literal` in brackets or a `reg-name` (which
/// covers `IPv4address`), then an optional `:` and digits.
fn is_valid(v: &[u8]) -> bool {
    let (host_ok, port) = if let Some(rest) = v.strip_prefix(b"[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]": their characters are
        // hex digits, ":", "." and, for IPvFuture, unreserved and sub-delims.
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
        match &rest[close + 1..] {
            [] => (ok, &[][..]),
            [b':', port @ ..] => (ok, port),
            _ => return false,
        }
    } else {
        let (host, port) = match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &[][..]),
        };
        (is_reg_name(host), port)
    };
    host_ok && port.iter().all(u8::is_ascii_digit)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        if b == b'%' {
            let hex = host.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) || is_sub_delim(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_hosts(hosts: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn one_valid_host_passes() {
        for v in [
            &b"127.0.0.1:8080"[..],
            b"example.com",
            b"example.com:",
            b"EXAMPLE.com:443",
            b"[::1]:8080",
            b"[2001:db8::7]",
            b"[v7.fe80::a+en1]",
            b"xn--caf-dma.example",
            b"caf%C3%A9.example",
            b"a_b~c",
            // §3.2: "the client MUST send a Host header field with an empty field
            // value" when the target has no authority.
            b"",
        ] {
            let h = with_hosts(&[v]);
            assert_eq!(check(Version::HTTP_11, &h), Ok(()), "{v:?}");
        }
    }

    #[test]
    fn missing_repeated_and_invalid_hosts_are_refused() {
        let none = HeaderMap::new();
        assert_eq!(check(Version::HTTP_11, &none), Err(HostError::Missing));
        // HTTP/1.0 had no Host; HTTP/2 carries :authority instead.
        assert_eq!(check(Version::HTTP_10, &none), Ok(()));
        assert_eq!(check(Version::HTTP_2, &none), Ok(()));
        // "more than one Host header field line", even when they agree, in any version.
        for version in [Version::HTTP_10, Version::HTTP_11] {
            let two = with_hosts(&[b"a.example", b"a.example"]);
            assert_eq!(check(version, &two), Err(HostError::Repeated));
        }
        for v in [
            &b"a b"[..],
            b"user@example.com",
            b"example.com:80a",
            b"example.com/path",
            b"[::1",
            b"[]:80",
            b"[::1]x",
            b"::1",
            b"ex%zzample",
            b"ex%4",
            b"caf\xc3\xa9.example",
            b"a\"b",
        ] {
            let h = with_hosts(&[v]);
            assert_eq!(
                check(Version::HTTP_11, &h),
                Err(HostError::Invalid),
                "{v:?}"
            );
            assert_eq!(
                check(Version::HTTP_10, &h),
                Err(HostError::Invalid),
                "{v:?}"
            );
        }
    }
}
