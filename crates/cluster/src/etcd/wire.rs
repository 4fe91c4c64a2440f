//! The JSON shapes of etcd's v3 HTTP gateway (`/v3/kv/*`, `/v3/lease/*`), both ways.
//!
//! The gateway is grpc-gateway over etcd's protobuf API: keys and values are base64,
//! 64-bit integers are decimal strings, and a field at its zero value is left out
//! (`succeeded: false`, a `PUT` event's `type`, a key's `lease` of 0). Answers are
//! read with every field optional and then checked, so an answer from an etcd of
//! another version, or from something that is not etcd, is an
//! [`AnswerError`] with a reason, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not JSON, or not the shape of this call's answer.
    #[error("not an etcd answer: {0}")]
    Shape(String),
    /// etcd's own refusal (`{"error", "code"}`), e.g. code 5 for a lease not found.
    #[error("etcd refused (code {code}): {message}")]
    Refused {
        /// gRPC status code.
        code: i64,
        /// etcd's message.
        message: String,
    },
}

/// One key and what etcd keeps with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Revision of the put that created the key.
    pub create_revision: i64,
    /// Revision of the last put to it.
    pub mod_revision: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// Base64 of `bytes`, as the gateway takes keys and values.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The key just past every key starting with `prefix` (etcd's `range_end` for a
/// prefix): the prefix with its last byte below 0xff incremented and the rest cut.
/// An all-0xff or empty prefix ranges to the end of the keyspace (`"\0"`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `/v3/kv/range` of one key, or of every key under `prefix` when `prefix` is true.
pub(crate) fn range(key: &[u8], prefix: bool) -> Value {
    if prefix {
        json!({"key": b64(key), "range_end": b64(&prefix_end(key))})
    } else {
        json!({"key": b64(key)})
    }
}

/// `/v3/kv/put`, attached to `lease` unless it is 0.
pub(crate) fn put(key: &[u8], value: &[u8], lease: i64) -> Value {
    let mut put = json!({"key": b64(key), "value": b64(value)});
    if lease != 0 {
        put["lease"] = json!(lease.to_string());
    }
    put
}

/// `/v3/kv/txn`: put `value` at `key` if the key's `target` revision
/// (`CREATE` or `MOD`) equals `revision`; otherwise read the key back.
/// `CREATE` = 0 means "the key does not exist".
pub(crate) fn put_if(target: &str, key: &[u8], revision: i64, value: &[u8], lease: i64) -> Value {
    let field = match target {
        "CREATE" => "create_revision",
        _ => "mod_revision",
    };
    json!({
        "compare": [{
            "target": target,
            "result": "EQUAL",
            "key": b64(key),
            field: revision.to_string(),
        }],
        "success": [{"request_put": put(key, value, lease)}],
        "failure": [{"request_range": range(key, false)}],
    })
}

/// `/v3/kv/txn`: delete `key` if its value is still `value` (a release that must not
/// delete what another node has since written).
pub(crate) fn delete_if_value(key: &[u8], value: &[u8]) -> Value {
    json!({
        "compare": [{
            "target": "VALUE",
            "result": "EQUAL",
            "key": b64(key),
            "value": b64(value),
        }],
        "success": [{"request_delete_range": {"key": b64(key)}}],
    })
}

#[derive(Deserialize)]
struct RawError {
    error: Option<String>,
    message: Option<String>,
    code: Option<i64>,
}

#[derive(Deserialize)]
struct RawKeyValue {
    key: Option<String>,
    value: Option<String>,
    create_revision: Option<String>,
    mod_revision: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize)]
struct RawRange {
    kvs: Option<Vec<RawKeyValue>>,
}

#[derive(Deserialize)]
struct RawTxnResponse {
    response_range: Option<RawRange>,
}

#[derive(Deserialize)]
struct RawTxn {
    succeeded: Option<bool>,
    responses: Option<Vec<RawTxnResponse>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct RawLease {
    ID: Option<String>,
    TTL: Option<String>,
}

#[derive(Deserialize)]
struct RawKeepAlive {
    result: Option<RawLease>,
}

/// What a transaction did: whether its comparison held, and what its failure branch
/// read (the key as it is now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnAnswer {
    /// The comparison held and the success branch ran.
    pub succeeded: bool,
    /// Keys read by the branch that ran.
    pub read: Vec<KeyValue>,
}

/// A lease as granted or refreshed: its id and the seconds it has left (0 or absent
/// when it has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAnswer {
    /// The lease id.
    pub id: i64,
    /// Seconds left.
    pub ttl: i64,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AnswerError> {
    if let Ok(RawError {
        error: Some(error),
        message,
        code,
    }) = serde_json::from_slice::<RawError>(body)
    {
        return Err(AnswerError::Refused {
            code: code.unwrap_or(-1),
            message: message.unwrap_or(error),
        });
    }
    serde_json::from_slice(body).map_err(|e| AnswerError::Shape(e.to_string()))
}

fn int(field: &str, text: Option<&str>) -> Result<i64, AnswerError> {
    match text {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| AnswerError::Shape(format!("{field} is not an integer: {t:?}"))),
    }
}

fn bytes(field: &str, text: Option<&str>) -> Result<Vec<u8>, AnswerError> {
    STANDARD
        .decode(text.unwrap_or_default())
        .map_err(|e| AnswerError::Shape(format!("{field} is not base64: {e}")))
}

fn key_values(raw: Option<Vec<RawKeyValue>>) -> Result<Vec<KeyValue>, AnswerError> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|kv| {
            Ok(KeyValue {
                key: bytes("key", kv.key.as_deref())?,
                value: bytes("value", kv.value.as_deref())?,
                create_revision: int("create_revision", kv.create_revision.as_deref())?,
                mod_revision: int("mod_revision", kv.mod_revision.as_deref())?,
                lease: int("lease", kv.lease.as_deref())?,
            })
        })
        .collect()
}

/// Reads a `/v3/kv/range` answer.
pub fn parse_range(body: &[u8]) -> Result<Vec<KeyValue>, AnswerError> {
    key_values(parse::<RawRange>(body)?.kvs)
}

/// Reads a `/v3/kv/put` or `/v3/kv/deleterange` answer (only whether it is one).
pub fn parse_ack(body: &[u8]) -> Result<(), AnswerError> {
    parse::<Value>(body).and_then(|v| match v {
        Value::Object(_) => Ok(()),
        other => Err(AnswerError::Shape(format!("not an object: {other}"))),
    })
}

/// Reads a `/v3/kv/txn` answer.
pub fn parse_txn(body: &[u8]) -> Result<TxnAnswer, AnswerError> {
    let raw: RawTxn = parse(body)?;
    let mut read = Vec::new();
    for response in raw.responses.unwrap_or_default() {
        if let Some(range) = response.response_range {
            read.extend(key_values(range.kvs)?);
        }
    }
    Ok(TxnAnswer {
        succeeded: raw.succeeded.unwrap_or(false),
        read,
    })
}

fn lease(raw: RawLease) -> Result<LeaseAnswer, AnswerError> {
    let id = int("ID", raw.ID.as_deref())?;
    if id == 0 {
        return Err(AnswerError::Shape("lease answer without an ID".into()));
    }
    Ok(LeaseAnswer {
        id,
        ttl: int("TTL", raw.TTL.as_deref())?,
    })
}

/// Reads a `/v3/lease/grant` answer.
pub fn parse_grant(body: &[u8]) -> Result<LeaseAnswer, AnswerError> {
    lease(parse(body)?)
}

/// Reads a `/v3/lease/keepalive` answer (one `result` line of the stream).
pub fn parse_keep_alive(body: &[u8]) -> Result<LeaseAnswer, AnswerError> {
    let raw: RawKeepAlive = parse(body)?;
    lease(
        raw.result
            .ok_or_else(|| AnswerError::Shape("keepalive answer without a result".into()))?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_etcd_3_4_answers() {
        // Captured from Debian's etcd 3.4.23.
        let range = br#"{"header":{"revision":"2"},"kvs":[{"key":"YS94","create_revision":"2","mod_revision":"2","version":"1","value":"aGk="}],"count":"1"}"#;
        let kvs = parse_range(range).unwrap();
        assert_eq!(kvs[0].key, b"a/x");
        assert_eq!(kvs[0].value, b"hi");
        assert_eq!((kvs[0].create_revision, kvs[0].lease), (2, 0));
        assert_eq!(parse_range(br#"{"header":{"revision":"2"}}"#).unwrap(), []);

        let lost = br#"{"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"YS94","create_revision":"2","mod_revision":"2","version":"1","value":"aGk="}],"count":"1"}}]}"#;
        let t = parse_txn(lost).unwrap();
        assert!(!t.succeeded);
        assert_eq!(t.read[0].value, b"hi");
        let won = br#"{"header":{"revision":"3"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]}"#;
        assert!(parse_txn(won).unwrap().succeeded);

        let grant = br#"{"header":{"revision":"1"},"ID":"4111120374592604677","TTL":"5"}"#;
        assert_eq!(
            parse_grant(grant).unwrap(),
            LeaseAnswer {
                id: 4111120374592604677,
                ttl: 5
            }
        );
        let expired = br#"{"result":{"header":{"revision":"4"},"ID":"123"}}"#;
        assert_eq!(parse_keep_alive(expired).unwrap().ttl, 0);
        let refused = br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;
        assert_eq!(
            parse_ack(refused),
            Err(AnswerError::Refused {
                code: 5,
                message: "etcdserver: requested lease not found".into()
            })
        );
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        for body in [
            &b""[..],
            b"<html>",
            b"[]",
            br#"{"kvs":[{"key":"%%%"}]}"#,
            br#"{"kvs":[{"key":"YQ==","mod_revision":"x"}]}"#,
            br#"{"TTL":"5"}"#,
        ] {
            let answers = [
                parse_range(body).err(),
                parse_grant(body).err(),
                parse_keep_alive(body).err(),
            ];
            assert!(answers.iter().any(Option::is_some), "{body:?}");
        }
    }

    #[test]
    fn prefix_end_of_edge_prefixes() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    proptest! {
        /// Every key with the prefix sorts below its end, and the end itself does not
        /// carry the prefix.
        #[test]
        fn prefix_end_bounds_the_prefix(prefix in proptest::collection::vec(any::<u8>(), 1..6),
                                        tail in proptest::collection::vec(any::<u8>(), 0..6)) {
            let end = prefix_end(&prefix);
            let mut key = prefix.clone();
            key.extend(&tail);
            prop_assert!(prefix.iter().any(|&b| b < 0xff) == (key < end) || end == [0]);
            prop_assert!(!end.starts_with(&prefix) || end == [0]);
        }

        /// Arbitrary bytes are an answer or a refusal, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_range(&body);
            let _ = parse_txn(&body);
            let _ = parse_grant(&body);
            let _ = parse_keep_alive(&body);
        }
    }
}
