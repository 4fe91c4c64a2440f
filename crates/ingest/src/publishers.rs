//! Who publishes to which stream now, across the push doors (RTMP, SRT): one
//! connection per stream at a time, as Gcore ("one protocol at a time"). A slot is
//! held by a [`Lease`] and freed when it drops, however the connection ends.

use std::collections::HashSet;
use std::sync::Arc;

use dvrclip_engine::StreamId;
use parking_lot::Mutex;

/// The streams being published, one connection each.
#[derive(Debug, Default)]
pub struct Publishers(Mutex<HashSet<StreamId>>);

impl Publishers {
    /// Takes `id`'s slot, or `None` when another connection holds it.
    pub fn claim(self: &Arc<Self>, id: StreamId) -> Option<Lease> {
        self.0.lock().insert(id).then(|| Lease {
            publishers: Arc::clone(self),
            stream: id,
        })
    }

    /// Whether `id` has a publisher now.
    pub fn is_publishing(&self, id: StreamId) -> bool {
        self.0.lock().contains(&id)
    }
}

/// A stream's publisher slot, freed when dropped.
#[derive(Debug)]
pub struct Lease {
    publishers: Arc<Publishers>,
    stream: StreamId,
}

impl Lease {
    /// The stream this slot is for.
    pub fn stream(&self) -> StreamId {
        self.stream
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.publishers.0.lock().remove(&self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_per_stream_until_the_lease_drops() {
        let p = Arc::new(Publishers::default());
        let a = p.claim(StreamId(1)).unwrap();
        assert!(p.claim(StreamId(1)).is_none());
        assert!(p.claim(StreamId(2)).is_some());
        assert!(p.is_publishing(StreamId(1)));
        drop(a);
        assert!(!p.is_publishing(StreamId(1)));
        assert!(p.claim(StreamId(1)).is_some());
    }
}
