//! A shipped DVR batch (`dvrclip_spool::shipped`: an object of the store anyone with
//! the bucket's keys may have written) on any bytes, behind the right magic and
//! length so the frames are reached: no panic, and what decodes encodes to a batch
//! that decodes the same.
#![no_main]

use bytes::Bytes;
use dvrclip_spool::shipped::{MAGIC, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode(&Bytes::copy_from_slice(data));
    let mut object = MAGIC.to_vec();
    object.extend_from_slice(&((data.len() + 16) as u64).to_le_bytes());
    object.extend_from_slice(data);
    if let Ok(entries) = decode(&Bytes::from(object)) {
        let again = Bytes::from(encode(&entries).unwrap().concat());
        assert_eq!(decode(&again).unwrap(), entries);
    }
});
