//! A client of etcd's v3 API as JSON over HTTP: the key-value calls, transactions of
//! one comparison, and leases, which is all the cluster needs.
//!
//! # Why the JSON gateway, not `etcd-client`
//! `etcd-client` speaks gRPC through tonic and compiles etcd's protos with `protoc`
//! at build time: a second HTTP/2 stack, a code generator, and a system package
//! (`protobuf-compiler`) for every build of the workspace, including the embedders'
//! who never run a cluster. etcd serves the same API as JSON over HTTP (its
//! grpc-gateway, `/v3/...`, on every etcd since 3.4), which the HTTP client already in
//! the tree (`reqwest`, used by the puller and the VOD store) reaches. What it costs:
//! base64 keys, decimal-string integers, and no watch stream here — a node reads
//! what it needs when it needs it (who owns a stream, which nodes are up), which is
//! one request on a path that is about to forward a request anyway.
//!
//! Each call goes to the endpoints in turn until one answers (a cluster of etcd
//! members is one service); an answer is capped at [`MAX_ANSWER_BYTES`] and read by
//! [`wire`], so a wrong or hostile endpoint costs a refusal, not memory.

pub mod wire;

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Url};
use serde_json::{Value, json};

pub use wire::{AnswerError, KeyValue, LeaseAnswer, TxnAnswer};

/// Largest answer read from etcd, bytes: a range over every stream record of a large
/// deployment fits (etcd's own request limit is 1.5 MiB per value).
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Why a call to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered.
    #[error("etcd unreachable ({endpoints}): {last}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// What the last one did.
        last: String,
    },
    /// An endpoint answered `call` with something it cannot mean, or refused it.
    #[error("etcd {call}: {source}")]
    Answer {
        /// The path called (`kv/range`, …).
        call: &'static str,
        /// What was wrong with the answer.
        source: AnswerError,
    },
    /// An endpoint that is not an HTTP URL.
    #[error("not an etcd endpoint: {0:?}")]
    Endpoint(String),
}

/// Handle on an etcd cluster; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Etcd {
    client: Client,
    endpoints: Vec<Url>,
}

impl Etcd {
    /// A client of the members at `endpoints` (`http://host:2379`), each call bounded
    /// by `timeout`.
    pub fn new(endpoints: &[&str], timeout: Duration) -> Result<Etcd, EtcdError> {
        let endpoints = endpoints
            .iter()
            .map(|e| {
                Url::parse(e)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| EtcdError::Endpoint((*e).to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Endpoint(String::new()));
        }
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| EtcdError::Endpoint(e.to_string()))?;
        Ok(Etcd { client, endpoints })
    }

    /// POSTs `body` to `/v3/{call}` on the first endpoint that answers; the answer's
    /// bytes, whatever its status (etcd's refusals are JSON bodies).
    async fn call(&self, call: &'static str, body: &Value) -> Result<Vec<u8>, EtcdError> {
        let mut last = String::new();
        for endpoint in &self.endpoints {
            let Ok(url) = endpoint.join(&format!("v3/{call}")) else {
                continue;
            };
            match self.answer(url, body).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => last = e,
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self
                .endpoints
                .iter()
                .map(Url::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            last,
        })
    }

    async fn answer(&self, url: Url, body: &Value) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("answer over {MAX_ANSWER_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn read<T>(
        &self,
        call: &'static str,
        body: Value,
        parse: fn(&[u8]) -> Result<T, AnswerError>,
    ) -> Result<T, EtcdError> {
        let bytes = self.call(call, &body).await?;
        parse(&bytes).map_err(|source| EtcdError::Answer { call, source })
    }

    /// The value at `key`, if any.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let kvs = self
            .read("kv/range", wire::range(key, false), wire::parse_range)
            .await?;
        Ok(kvs.into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, EtcdError> {
        self.read("kv/range", wire::range(prefix, true), wire::parse_range)
            .await
    }

    /// Sets `key` to `value`, attached to `lease` (0: none).
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<(), EtcdError> {
        self.read("kv/put", wire::put(key, value, lease), wire::parse_ack)
            .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &[u8]) -> Result<(), EtcdError> {
        self.read("kv/deleterange", wire::range(key, false), wire::parse_ack)
            .await
    }

    /// Creates `key` with `value` (attached to `lease`) unless it exists; when it does,
    /// the answer carries it as it is.
    pub async fn create(
        &self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<TxnAnswer, EtcdError> {
        self.read(
            "kv/txn",
            wire::put_if("CREATE", key, 0, value, lease),
            wire::parse_txn,
        )
        .await
    }

    /// Sets `key` to `value` if it was last written at `mod_revision`; when it was
    /// not, the answer carries it as it is now.
    pub async fn swap(
        &self,
        key: &[u8],
        mod_revision: i64,
        value: &[u8],
    ) -> Result<TxnAnswer, EtcdError> {
        self.read(
            "kv/txn",
            wire::put_if("MOD", key, mod_revision, value, 0),
            wire::parse_txn,
        )
        .await
    }

    /// Deletes `key` if its value is still `value`; whether it did.
    pub async fn delete_if(&self, key: &[u8], value: &[u8]) -> Result<bool, EtcdError> {
        let t = self
            .read("kv/txn", wire::delete_if_value(key, value), wire::parse_txn)
            .await?;
        Ok(t.succeeded)
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&self, ttl: Duration) -> Result<LeaseAnswer, EtcdError> {
        let body = json!({"TTL": ttl.as_secs().max(1).to_string()});
        self.read("lease/grant", body, wire::parse_grant).await
    }

    /// Refreshes `lease`; its TTL is 0 when it has already expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<LeaseAnswer, EtcdError> {
        let body = json!({"ID": lease.to_string()});
        self.read("lease/keepalive", body, wire::parse_keep_alive)
            .await
    }

    /// Ends `lease` now, deleting every key attached to it.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        let body = json!({"ID": lease.to_string()});
        self.read("lease/revoke", body, wire::parse_ack).await
    }
}
