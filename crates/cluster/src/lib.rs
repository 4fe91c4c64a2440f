//! What the nodes of a dvrclip cluster must agree on, kept in etcd rather than
//! decided by dvrclip: which nodes are up, which node owns each stream's DVR, and
//! stream ids unique across nodes. No consensus, membership or failure detection of
//! our own: etcd's leases do the failure detection (a node's keys vanish at its
//! lease's TTL when it stops refreshing), its transactions do the agreement.
//!
//! - [`etcd`]: the client (etcd's v3 API as JSON over HTTP; why not gRPC is written
//!   there) and the answers' parser ([`etcd::wire`]);
//! - [`membership`]: a node joined under a lease, its claims on streams, id drawing.
//!
//! How a cluster is put together from these (ownership, forwarding, S3 for what must
//! outlive a node) is `design/architecture.md` "Cluster".
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod etcd;
pub mod membership;

pub use etcd::{Etcd, EtcdError};
pub use membership::{ClusterError, Membership, Node, Owner, VIDEO_ID_BLOCK};
