//! The object store under the VOD: one small trait ([`VodStore`]) over keys such as
//! `videos/7.json` and `media/7-3fa2….mp4`, and its implementation on the
//! `object_store` crate ([`ObjectVodStore`]): the local filesystem under `--data-dir`
//! by default, any S3-compatible store when `--s3-bucket` is set (ref/api.md "Videos (VOD)").
//!
//! Owns how bytes get in and out: a whole small object, a large one streamed piece
//! by piece (one PUT up to [`MULTIPART_THRESHOLD`], a multipart upload beyond, never
//! the whole file in memory), ranged reads as a stream. What the keys mean, and the
//! order of writes that makes a video crash-safe, live in [`super::Vod`].
//!
//! Every write is atomic: object_store's local store writes a staging file
//! (`name#N`) and renames it; S3 shows an object only once its PUT or multipart
//! upload completes. A crash leaves staging files (local, swept by
//! [`VodStore::sweep_staging`]) or an incomplete multipart upload (S3: invisible,
//! aborted by the bucket's lifecycle rule), never a partial object.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Objects up to this size are one PUT (its payload is the pieces themselves, not a
/// copy); larger ones a multipart upload in parts of this size (S3's minimum part
/// is 5 MiB).
pub const MULTIPART_THRESHOLD: u64 = 8 << 20;
/// Multipart parts in flight at once: bounds the memory of one upload to about
/// this many parts.
const PARTS_IN_FLIGHT: usize = 2;
/// Read size when serving a local file.
const LOCAL_READ_BYTES: usize = 256 << 10;

/// A failed store operation, with the operation and key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{op} {key}: not found")]
    NotFound {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
    },
    /// The store refused or failed.
    #[error("{op} {key}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The key or prefix.
        key: String,
        /// object_store's error.
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("{op} {key}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The key or path.
        key: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The pieces did not add up to the announced length.
    #[error("put {key}: {got} bytes written, {expected} announced")]
    Length {
        /// The key.
        key: String,
        /// Announced.
        expected: u64,
        /// Written.
        got: u64,
    },
    /// The store could not be opened at all (bad configuration, unusable directory).
    #[error("VOD store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the object is absent (as opposed to the store failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    fn from_os(op: &'static str, key: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                op,
                key: key.to_owned(),
            },
            source => StoreError::Store {
                op,
                key: key.to_owned(),
                source,
            },
        }
    }
}

/// A stream of an object's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;
/// The pieces of an object being written, in order.
pub type Pieces<'a> = Box<dyn Iterator<Item = Bytes> + Send + 'a>;

/// Where videos are kept: put, ranged get, head, list and delete of objects by key
/// (`/`-separated, no leading slash). Object-safe, so the server holds an
/// `Arc<dyn VodStore>` and tests can put a failing one in its place.
pub trait VodStore: Send + Sync + fmt::Debug + 'static {
    /// Writes a small object whole, atomically.
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Writes an object of `len` bytes from `pieces`, atomically, holding at most a
    /// few parts in memory. Fails if the pieces do not add up to `len`.
    fn put_pieces<'a>(
        &'a self,
        key: &'a str,
        len: u64,
        pieces: Pieces<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Reads a small object whole.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, StoreError>>;

    /// Streams bytes `range` (non-empty, inside the object) of an object. Fails
    /// before the first byte when the object is missing or the store is down.
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>>;

    /// The object's size, `None` if absent.
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Every object under `prefix` (a folder such as `videos`), as (key, size).
    fn list<'a>(&'a self, prefix: &'a str)
    -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>>;

    /// Removes an object; an absent one is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes what interrupted writes left under `prefix` that [`VodStore::list`]
    /// does not show; returns how many. Nothing to do for stores whose unfinished
    /// writes are invisible.
    fn sweep_staging<'a>(&'a self, _prefix: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async { Ok(0) })
    }

    /// Where it stores, for logs (`file:///var/lib/dvrclip`, `s3://bucket`).
    fn describe(&self) -> String;
}

/// Where the VOD store lives, resolved from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A directory on this machine.
    Local(PathBuf),
    /// An S3-compatible bucket; credentials come from the standard `AWS_*`
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Endpoint URL for non-AWS stores (MinIO, Ceph, R2…); `http://` allowed.
        endpoint: Option<String>,
        /// Region (`us-east-1` when neither this nor `AWS_REGION` says).
        region: Option<String>,
    },
}

/// [`VodStore`] on an `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectVodStore {
    inner: Arc<dyn ObjectStore>,
    /// The root directory when local: staging files are swept there.
    local_root: Option<PathBuf>,
    describe: String,
    /// Why writes are refused, when they are ([`ObjectVodStore::read_only`]).
    read_only: Option<String>,
}

impl ObjectVodStore {
    /// Opens the store `config` names. A local directory is created if missing.
    pub fn open(config: &StoreConfig) -> Result<ObjectVodStore, StoreError> {
        match config {
            StoreConfig::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    op: "create",
                    key: dir.display().to_string(),
                    source,
                })?;
                let fs =
                    LocalFileSystem::new_with_prefix(dir).map_err(|source| StoreError::Store {
                        op: "open",
                        key: dir.display().to_string(),
                        source,
                    })?;
                let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                Ok(ObjectVodStore {
                    inner: Arc::new(fs),
                    describe: format!("file://{}", root.display()),
                    local_root: Some(root),
                    read_only: None,
                })
            }
            StoreConfig::S3 {
                bucket,
                endpoint,
                region,
            } => ObjectVodStore::s3(s3_builder(
                AmazonS3Builder::from_env(),
                bucket,
                endpoint.as_deref(),
                region.as_deref(),
            )),
        }
    }

    /// An S3 store from a builder (see [`s3_builder`]; tests add credentials).
    pub fn s3(builder: AmazonS3Builder) -> Result<ObjectVodStore, StoreError> {
        let bucket = builder
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Bucket)
            .unwrap_or_default();
        let s3 = builder.build().map_err(|source| StoreError::Store {
            op: "open",
            key: format!("s3://{bucket}"),
            source,
        })?;
        Ok(ObjectVodStore {
            inner: Arc::new(s3),
            local_root: None,
            describe: format!("s3://{bucket}"),
            read_only: None,
        })
    }

    /// The same store with every key under `prefix/`: the videos of one node of a
    /// cluster sharing a bucket (`design/cluster.md` "Videos"), so that a node's
    /// recovery, which settles the records it finds and removes media no record
    /// names, never touches another node's.
    pub fn within(self, prefix: &str) -> ObjectVodStore {
        ObjectVodStore {
            inner: Arc::new(PrefixStore::new(self.inner, prefix)),
            local_root: self.local_root.map(|r| r.join(prefix)),
            describe: format!("{}/{prefix}", self.describe),
            read_only: self.read_only,
        }
    }

    /// The same store refusing every write and removal with `why`: another node's
    /// videos, read while that node is down (`super::shared`).
    pub fn read_only(self, why: impl Into<String>) -> ObjectVodStore {
        ObjectVodStore {
            describe: format!("{} (read-only)", self.describe),
            read_only: Some(why.into()),
            ..self
        }
    }

    fn writable(&self) -> Result<(), StoreError> {
        match &self.read_only {
            Some(why) => Err(StoreError::Unavailable(why.clone())),
            None => Ok(()),
        }
    }

    /// The names of the folders right under `prefix` (`nodes` → the node ids with
    /// videos in a shared bucket): one listing with a delimiter, not of every key.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let p = path("list", prefix)?;
        let listed = self
            .inner
            .list_with_delimiter(Some(&p))
            .await
            .map_err(|e| StoreError::from_os("list", prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|f| f.filename().map(str::to_owned))
            .collect())
    }

    /// Around any `object_store` backend (tests use this with custom retry settings).
    pub fn new(inner: Arc<dyn ObjectStore>, describe: impl Into<String>) -> Self {
        ObjectVodStore {
            inner,
            local_root: None,
            describe: describe.into(),
            read_only: None,
        }
    }
}

/// How long an S3 request keeps retrying before its error surfaces. `object_store`'s
/// default (10 retries within 3 minutes) would hold a player's GET for minutes when
/// the endpoint is gone; 20 s rides out a blip and still answers 503 in time.
pub fn s3_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    }
}

/// `base` (credentials, usually from the `AWS_*` environment) aimed at `bucket`, with
/// an endpoint for non-AWS stores (plain `http://` then allowed), a region, and the
/// [`s3_retry`] policy.
pub fn s3_builder(
    base: AmazonS3Builder,
    bucket: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> AmazonS3Builder {
    let mut b = base.with_bucket_name(bucket).with_retry(s3_retry());
    if let Some(e) = endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(r) = region {
        b = b.with_region(r);
    }
    b
}

fn path(op: &'static str, key: &str) -> Result<Path, StoreError> {
    Path::parse(key).map_err(|e| StoreError::Store {
        op,
        key: key.to_owned(),
        source: e.into(),
    })
}

impl VodStore for ObjectVodStore {
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.writable()?;
            let p = path("put", key)?;
            self.inner
                .put(&p, PutPayload::from(body))
                .await
                .map_err(|e| StoreError::from_os("put", key, e))?;
            Ok(())
        })
    }

    fn put_pieces<'a>(
        &'a self,
        key: &'a str,
        len: u64,
        pieces: Pieces<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.writable()?;
            let p = path("put", key)?;
            let err = |e| StoreError::from_os("put", key, e);
            let mut got = 0u64;
            if len <= MULTIPART_THRESHOLD {
                // One PUT whose payload is the pieces themselves: no copy.
                let payload: PutPayload = pieces.inspect(|b| got += b.len() as u64).collect();
                if got != len {
                    return Err(StoreError::Length {
                        key: key.to_owned(),
                        expected: len,
                        got,
                    });
                }
                self.inner.put(&p, payload).await.map_err(err)?;
                return Ok(());
            }
            let upload = self.inner.put_multipart(&p).await.map_err(err)?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_THRESHOLD as usize);
            for piece in pieces {
                got += piece.len() as u64;
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    // Aborting is best effort: the upload is dead either way.
                    let _ = w.abort().await;
                    return Err(err(e));
                }
                w.put(piece);
            }
            if got != len {
                let _ = w.abort().await;
                return Err(StoreError::Length {
                    key: key.to_owned(),
                    expected: len,
                    got,
                });
            }
            w.finish().await.map_err(err)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        Box::pin(async move {
            let p = path("get", key)?;
            let err = |e| StoreError::from_os("get", key, e);
            self.inner
                .get(&p)
                .await
                .map_err(err)?
                .bytes()
                .await
                .map_err(err)
        })
    }

    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            let p = path("get", key)?;
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..GetOptions::default()
            };
            let r = self
                .inner
                .get_opts(&p, opts)
                .await
                .map_err(|e| StoreError::from_os("get", key, e))?;
            let owned = key.to_owned();
            Ok(match r.payload {
                GetResultPayload::File(file, _) => local_stream(file, r.range, owned),
                GetResultPayload::Stream(s) => s
                    .map_err(move |e| StoreError::from_os("get", &owned, e))
                    .boxed(),
            })
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let p = path("head", key)?;
            match self.inner.head(&p).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(StoreError::from_os("head", key, e)),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        Box::pin(async move {
            let p = path("list", prefix)?;
            let metas: Vec<_> = self
                .inner
                .list(Some(&p))
                .try_collect()
                .await
                .map_err(|e| StoreError::from_os("list", prefix, e))?;
            Ok(metas
                .into_iter()
                .map(|m| (m.location.to_string(), m.size))
                .collect())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.writable()?;
            let p = path("delete", key)?;
            match self.inner.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(StoreError::from_os("delete", key, e)),
            }
        })
    }

    fn sweep_staging<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            self.writable()?;
            let Some(root) = &self.local_root else {
                return Ok(0);
            };
            let dir = root.join(prefix);
            let io = |source| StoreError::Io {
                op: "sweep",
                key: dir.display().to_string(),
                source,
            };
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io(e)),
            };
            let mut removed = 0;
            while let Some(entry) = entries.next_entry().await.map_err(io)? {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                // object_store's staging files are `{name}#{digits}` (local.rs).
                let staging = name
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if staging {
                    tokio::fs::remove_file(entry.path()).await.map_err(io)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Reads `range` of a local file in [`LOCAL_READ_BYTES`] reads (object_store's own
/// file stream reads 8 KiB at a time, each on the blocking pool).
fn local_stream(file: std::fs::File, range: Range<u64>, key: String) -> ByteStream {
    let file = tokio::fs::File::from_std(file);
    let state = (file, range.start, range.end, false, key);
    stream::try_unfold(state, |(mut file, pos, end, seeked, key)| async move {
        if pos >= end {
            return Ok(None);
        }
        let io = |source| StoreError::Io {
            op: "read",
            key: key.clone(),
            source,
        };
        if !seeked {
            file.seek(std::io::SeekFrom::Start(pos)).await.map_err(io)?;
        }
        let want = (end - pos).min(LOCAL_READ_BYTES as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.truncate(n);
        Ok(Some((
            Bytes::from(buf),
            (file, pos + n as u64, end, true, key),
        )))
    })
    .boxed()
}

/// A store that fails every call with the reason it could not be opened: the
/// server still runs (live DVR, clips) and each video goes to `error` with it.
#[derive(Debug)]
pub struct UnavailableStore(pub String);

impl UnavailableStore {
    fn err(&self) -> StoreError {
        StoreError::Unavailable(self.0.clone())
    }
}

impl VodStore for UnavailableStore {
    fn put<'a>(&'a self, _: &'a str, _: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn put_pieces<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: Pieces<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn get_range<'a>(
        &'a self,
        _: &'a str,
        _: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn head<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn list<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { Err(self.err()) })
    }
    fn describe(&self) -> String {
        format!("unavailable ({})", self.0)
    }
}
