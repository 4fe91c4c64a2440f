//! Where a shipped DVR lies in the object store: `dvr/{stream}/{generation:016x}/`
//! holding `gen.json` ([`GenerationRec`]: the generations this one continues) and
//! the batches `{n:016x}.dvr` (`dvrclip_spool::shipped`). Names only; reading and
//! writing them is the shipper's and the restore's.

use dvrclip_engine::StreamId;

/// The prefix of stream `id`'s objects.
pub fn stream_prefix(id: StreamId) -> String {
    format!("dvr/{}/", id.0)
}

pub(super) fn generation_prefix(id: StreamId, generation: u64) -> String {
    format!("dvr/{}/{generation:016x}/", id.0)
}

/// The key of a generation's description.
pub fn generation_key(id: StreamId, generation: u64) -> String {
    format!("{}gen.json", generation_prefix(id, generation))
}

/// The key of batch `n` of a generation.
pub fn batch_key(id: StreamId, generation: u64, n: u64) -> String {
    format!("{}{n:016x}.dvr", generation_prefix(id, generation))
}

/// `gen.json`: what a generation was restored from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRec {
    /// 1.
    pub version: u32,
    /// The stream.
    pub stream: u64,
    /// This generation.
    pub generation: u64,
    /// The generations whose objects this one's DVR continues, oldest first.
    pub base: Vec<u64>,
}

/// Generations a chain names at most: older ones are left out of a new chain (and
/// their objects swept).
pub const MAX_CHAIN: usize = 64;
