//! `video_id`s unique across the cluster (`design/cluster.md` "Who owns what"): the
//! engine's [`VideoIds`] source on a node of a cluster. A clip creation takes the
//! next id of a block this node reserved in etcd ([`Membership::reserve_video_ids`])
//! from memory, in microseconds, with no etcd round trip; a background task
//! ([`VideoIdBlocks::run`]) reserves the next block once half of the current one is
//! used, so a spare is ready before it is needed. When etcd stays away until both are
//! spent, a creation asking for a video is refused (503, with the reason) rather than
//! handed an id another node may hand out too.
//!
//! Each block's node is recorded in etcd with it, so a read of a video this node
//! does not hold is forwarded to the node that drew its id ([`Cluster::video_node`]),
//! or, that node down, read from its part of a bucket the nodes share.
//!
//! [`Membership::reserve_video_ids`]: dvrclip_cluster::Membership::reserve_video_ids
//! [`Cluster::video_node`]: super::Cluster::video_node

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use dvrclip_cluster::VIDEO_ID_BLOCK;
use dvrclip_engine::VideoIds;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Cluster;

/// The ids this node may hand out: the block in use and a spare.
#[derive(Debug, Default)]
struct Blocks {
    /// Next id of the block in use, and the first after it.
    next: u64,
    end: u64,
    /// The block reserved ahead.
    spare: Option<RangeInclusive<u64>>,
}

impl Blocks {
    fn left(&self) -> u64 {
        self.end.saturating_sub(self.next)
    }

    /// Whether another block should be reserved now.
    fn wants_more(&self) -> bool {
        self.spare.is_none() && self.left() <= VIDEO_ID_BLOCK / 2
    }

    /// `block` becomes the block in use.
    fn take(&mut self, block: RangeInclusive<u64>) {
        (self.next, self.end) = (*block.start(), block.end().saturating_add(1));
    }

    fn add(&mut self, block: RangeInclusive<u64>) {
        if self.left() == 0 {
            self.take(block);
        } else {
            self.spare = Some(block);
        }
    }
}

/// A node's video ids, drawn in blocks from the cluster's counter.
#[derive(Debug)]
pub struct VideoIdBlocks {
    blocks: Mutex<Blocks>,
    /// Woken when a block should be reserved.
    wanted: Notify,
    /// No id below this (ids this node's VOD store already holds).
    floor: u64,
}

impl VideoIdBlocks {
    /// No block yet; ids at least `floor`.
    pub fn new(floor: u64) -> Arc<VideoIdBlocks> {
        Arc::new(VideoIdBlocks {
            blocks: Mutex::new(Blocks::default()),
            wanted: Notify::new(),
            floor,
        })
    }

    /// Ids left to hand out without etcd (the block in use and the spare).
    pub fn available(&self) -> u64 {
        let b = self.blocks.lock();
        b.left() + b.spare.as_ref().map_or(0, |s| s.end() - s.start() + 1)
    }

    /// Keeps a spare block reserved until the task is aborted: reserves one at start
    /// and whenever half the block in use is spent; retries every second while etcd
    /// (or this node's membership) is away.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>) {
        loop {
            if !self.blocks.lock().wants_more() {
                self.wanted.notified().await;
                continue;
            }
            match cluster.reserve_video_ids(self.floor).await {
                Ok(block) => {
                    tracing::debug!(?block, "video ids reserved");
                    self.blocks.lock().add(block);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reserving video ids");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

impl VideoIds for VideoIdBlocks {
    fn next_video_id(&self) -> Result<u64, String> {
        let mut b = self.blocks.lock();
        if b.left() == 0
            && let Some(spare) = b.spare.take()
        {
            b.take(spare);
        }
        let id = b.next;
        let answer = if b.left() == 0 {
            Err("this node's block of video ids is spent and etcd has not answered for another; retry".to_owned())
        } else {
            b.next += 1;
            Ok(id)
        };
        if b.wants_more() {
            self.wanted.notify_one();
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_block_then_the_spare_then_none() {
        let ids = VideoIdBlocks::new(1);
        assert!(ids.next_video_id().is_err());
        ids.blocks.lock().add(1..=VIDEO_ID_BLOCK);
        assert!(!ids.blocks.lock().wants_more());
        let first: Vec<u64> = (0..VIDEO_ID_BLOCK)
            .map(|_| ids.next_video_id().unwrap())
            .collect();
        assert_eq!(first, (1..=VIDEO_ID_BLOCK).collect::<Vec<_>>());
        assert!(ids.blocks.lock().wants_more());
        let b = 10 * VIDEO_ID_BLOCK;
        ids.blocks.lock().add(b + 1..=b + VIDEO_ID_BLOCK);
        ids.blocks.lock().add(1000..=1000 + VIDEO_ID_BLOCK - 1);
        assert_eq!(ids.available(), 2 * VIDEO_ID_BLOCK);
        assert_eq!(ids.next_video_id(), Ok(b + 1));
        for _ in 1..VIDEO_ID_BLOCK {
            ids.next_video_id().unwrap();
        }
        assert_eq!(ids.next_video_id(), Ok(1000));
    }
}
