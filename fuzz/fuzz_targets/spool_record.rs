//! The spool's journal parser on any bytes (a journal cut by a crash or scribbled
//! on): no panic, never past the buffer, and every record it reads re-encodes to a
//! frame that reads back as the same record.
#![no_main]

use dvrclip_spool::record::{decode, decode_all, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, used, _) = decode_all(data);
    assert!(used <= data.len());
    for r in records {
        let mut frame = Vec::new();
        encode(&r, &mut frame).unwrap();
        let (again, n) = decode(&frame).unwrap().unwrap();
        assert_eq!((again, n), (r, frame.len()));
    }
});
