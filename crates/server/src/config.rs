//! Server configuration: every knob of `dvrclip serve`, from flags, `DVRCLIP_*`
//! environment variables and an optional TOML file, in that order of precedence.
//!
//! Each key is declared once (the `keys!` list below gives its flag, variable, file
//! key and help); its default lives in [`Config::resolve`]. Defaults are those of
//! `ref/api.md` "Limits"; a value here is never re-read while serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use dvrclip_engine::secret::random_hex;

use crate::http::body::BodyLimits;
use crate::http::serve::ConnectionLimits;
use crate::vod::StoreConfig;
use crate::vod::shared::node_prefix;

/// Declares every configuration key once: the struct of flags (each `--kebab-name`,
/// with its `DVRCLIP_*` variable) that is also the TOML file's schema (the same
/// names in snake_case), and the merge of flags over the file.
macro_rules! keys {
    ($( $(#[$meta:meta])* $name:ident: $ty:ty = $env:literal, )*) => {
        /// `dvrclip serve` flags. Each also reads an environment variable; a config
        /// file (`--config`) fills whatever neither gave.
        #[derive(Debug, Clone, Default, Args, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ServeArgs {
            /// TOML file with any of the keys below (snake_case, e.g. `api_key = "..."`).
            #[arg(long, env = "DVRCLIP_CONFIG")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            $(
                $(#[$meta])*
                #[arg(long, env = $env)]
                pub $name: Option<$ty>,
            )*
        }

        impl ServeArgs {
            /// Each key from `self`, else from `file`.
            fn or(self, file: ServeArgs) -> ServeArgs {
                ServeArgs {
                    config: self.config,
                    $( $name: self.$name.or(file.$name), )*
                }
            }
        }
    };
}

keys! {
    /// Address to listen on.
    listen: SocketAddr = "DVRCLIP_LISTEN",
    /// Base URL of public links (clip playlists and MP4s, ingest), e.g. `https://clips.example.com`.
    public_url: String = "DVRCLIP_PUBLIC_URL",
    /// Token clients send as `Authorization: APIKey <token>`.
    api_key: String = "DVRCLIP_API_KEY",
    /// Directory for VOD files and state.
    data_dir: PathBuf = "DVRCLIP_DATA_DIR",
    /// Memory budget, MiB: DVR and clip chunks, open connections and request bodies
    /// still arriving (a sixteenth is kept for those).
    memory_budget_mib: u64 = "DVRCLIP_MEMORY_BUDGET_MIB",
    /// Largest media segment upload, MiB.
    max_segment_mib: u64 = "DVRCLIP_MAX_SEGMENT_MIB",
    /// Open connections at most.
    max_connections: usize = "DVRCLIP_MAX_CONNECTIONS",
    /// Seconds a client may take to send its request headers, and so how long a
    /// kept-alive connection may stay idle.
    header_timeout_secs: u64 = "DVRCLIP_HEADER_TIMEOUT_SECS",
    /// Seconds an upload body may stay idle.
    body_idle_secs: u64 = "DVRCLIP_BODY_IDLE_SECS",
    /// Seconds allowed for a whole segment upload.
    upload_deadline_secs: u64 = "DVRCLIP_UPLOAD_DEADLINE_SECS",
    /// Seconds a client may read nothing of a response before it is cut off.
    send_timeout_secs: u64 = "DVRCLIP_SEND_TIMEOUT_SECS",
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    shutdown_grace_secs: u64 = "DVRCLIP_SHUTDOWN_GRACE_SECS",
    /// Start a built-in looping demo stream (no encoder needed).
    #[arg(num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::FalseyValueParser::new())]
    demo: bool = "DVRCLIP_DEMO",
    /// Keep VOD in this S3 bucket instead of `--data-dir` (credentials from the
    /// standard `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` environment variables).
    s3_bucket: String = "DVRCLIP_S3_BUCKET",
    /// Where complete clips are archived, every rendition as served, so any node
    /// serves them after this one forgot them: `s3://bucket` (with the `--s3-*`
    /// endpoint, region and credentials) or a directory. Off unless set.
    clip_archive: String = "DVRCLIP_CLIP_ARCHIVE",
    /// S3 endpoint URL for non-AWS stores (MinIO, Ceph…); `http://` is allowed.
    s3_endpoint: String = "DVRCLIP_S3_ENDPOINT",
    /// S3 region (else `AWS_REGION`, else `us-east-1`).
    s3_region: String = "DVRCLIP_S3_REGION",
    /// Address to take RTMP pushes on (`rtmp://host:port/live/{ingest key}`). Off
    /// unless set, except with `--demo`: the listen address's IP, port 1935 (port 0
    /// when listening on port 0).
    rtmp_listen: SocketAddr = "DVRCLIP_RTMP_LISTEN",
    /// Directory of the spool that keeps the DVR, clips and streams across restarts
    /// (`off`: memory only). Default: `/dev/shm/dvrclip-{port}` (survives a process
    /// restart), else `{data-dir}/spool`; memory only when listening on port 0. On a
    /// disk it survives a reboot too.
    spool_dir: String = "DVRCLIP_SPOOL_DIR",
    /// When spooled uploads reach stable storage: `batch` (default: once a second; a
    /// power cut may lose the last second) or `on-ack` (before the upload's 201).
    spool_sync: String = "DVRCLIP_SPOOL_SYNC",
    /// Spool payload files mapped at once at most (default 32768, half of Linux's
    /// default `vm.max_map_count`); past it chunks are read into memory instead.
    spool_max_maps: usize = "DVRCLIP_SPOOL_MAX_MAPS",
    /// UDP address to take SRT pushes on (`srt://host:port?streamid={ingest key}`).
    /// Off unless set, except with `--demo`: the listen address's IP, port 8890 (port
    /// 0 when listening on port 0).
    srt_listen: SocketAddr = "DVRCLIP_SRT_LISTEN",
    /// Passphrase SRT callers must encrypt with (10 to 79 bytes); none by default,
    /// and then callers that encrypt are refused.
    srt_passphrase: String = "DVRCLIP_SRT_PASSPHRASE",
    /// Join a cluster agreeing through etcd at these endpoints (comma-separated
    /// `http://host:2379`); off unless set (`design/cluster.md`).
    cluster_etcd: String = "DVRCLIP_CLUSTER_ETCD",
    /// This node's id in the cluster, unique among live nodes (default: a random one).
    node_id: String = "DVRCLIP_NODE_ID",
    /// The URL other nodes reach this node's HTTP at (default: `http://` and the bound
    /// listen address, which must then not be a wildcard).
    advertise_url: String = "DVRCLIP_ADVERTISE_URL",
    /// Seconds of the node's etcd lease: how long after a crash its streams can be
    /// claimed by another node (default 5).
    lease_ttl: u64 = "DVRCLIP_LEASE_TTL",
}

/// What a node of a cluster needs (`--cluster-etcd` and its companions).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// This node's id.
    pub node_id: String,
    /// Where other nodes reach this node's HTTP; `None`: the bound listen address.
    pub advertise_url: Option<String>,
    /// The lease's time to live.
    pub lease_ttl: Duration,
}

/// Size and time limits on what clients send (`ref/api.md` "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Media segment body, bytes.
    pub segment_bytes: u64,
    /// Init segment and playlist body, bytes.
    pub small_file_bytes: u64,
    /// JSON request body, bytes.
    pub json_bytes: u64,
    /// Request headers must arrive within this. hyper's timer runs from the moment a
    /// connection waits for a request, so this also closes idle keep-alive connections.
    pub header_timeout: Duration,
    /// A body may pause this long between frames.
    pub body_idle: Duration,
    /// A whole upload must finish within this.
    pub upload_deadline: Duration,
    /// A response write may find the client's socket full this long (nginx's
    /// `send_timeout`); then the connection is dropped.
    pub send_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Open connections at most; past it the server stops accepting until one closes
    /// (the kernel's backlog holds the rest), so file descriptors stay bounded.
    pub max_connections: usize,
}

impl Limits {
    /// How a body of at most `max_bytes` may arrive.
    pub fn body(&self, max_bytes: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle: self.body_idle,
            deadline: self.upload_deadline,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            segment_bytes: 50 << 20,
            small_file_bytes: 1 << 20,
            json_bytes: 1 << 20,
            header_timeout: Duration::from_secs(30),
            body_idle: Duration::from_secs(15),
            upload_deadline: Duration::from_secs(120),
            send_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_connections: 10_000,
        }
    }
}

/// Everything the server needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Public base URL without a trailing slash.
    pub public_url: String,
    /// API token. Never empty: without one configured, `--demo` uses `demo` and
    /// anything else a random token printed at start-up (there is no open mode).
    pub api_key: String,
    /// Whether `api_key` was chosen by the server rather than configured.
    pub api_key_generated: bool,
    /// VOD and state directory.
    pub data_dir: PathBuf,
    /// Where VOD is stored: `data_dir`, or an S3 bucket.
    pub vod_store: StoreConfig,
    /// The key prefix of this node's videos in `vod_store`: `nodes/{node id}` for a
    /// cluster node storing videos in a bucket (the nodes may share it), else none.
    pub vod_within: Option<String>,
    /// Memory budget, bytes: chunks, open connections, bodies still arriving.
    pub memory_budget_bytes: u64,
    /// Client limits.
    pub limits: Limits,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Run the demo stream.
    pub demo: bool,
    /// Where RTMP pushes are taken; `None`: no RTMP. The binary replaces a port 0
    /// with the bound one, so `push_url` names it.
    pub rtmp_listen: Option<SocketAddr>,
    /// The spool directory; `None`: memory only (a restart loses the DVR and clips).
    pub spool_dir: Option<PathBuf>,
    /// When spooled writes are synced.
    pub spool_sync: dvrclip_spool::SyncPolicy,
    /// Spool payload files mapped at once at most.
    pub spool_max_maps: usize,
    /// Where SRT pushes are taken (UDP); `None`: no SRT. A port 0 is replaced by the
    /// bound one, as for RTMP.
    pub srt_listen: Option<SocketAddr>,
    /// The SRT passphrase, if any (checked to be 10 to 79 bytes).
    pub srt_passphrase: Option<String>,
    /// Where complete clips are archived (`--clip-archive`); `None`: nowhere.
    pub clip_archive: Option<StoreConfig>,
    /// The cluster this node joins; `None`: one process, no etcd.
    pub cluster: Option<ClusterConfig>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these keys.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags (already merged with env by clap) over the optional file over defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => ServeArgs::default(),
        };
        let a = args.clone().or(file);
        let cluster = cluster_config(&a)?;
        let listen = a
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = a
            .public_url
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public URL {public_url:?} must start with http:// or https://"
            )));
        }
        let defaults = Limits::default();
        let secs = |key: Option<u64>, default: Duration| key.map_or(default, Duration::from_secs);
        let limits = Limits {
            segment_bytes: a
                .max_segment_mib
                .map_or(defaults.segment_bytes, |m| m << 20),
            header_timeout: secs(a.header_timeout_secs, defaults.header_timeout),
            body_idle: secs(a.body_idle_secs, defaults.body_idle),
            upload_deadline: secs(a.upload_deadline_secs, defaults.upload_deadline),
            send_timeout: secs(a.send_timeout_secs, defaults.send_timeout),
            max_connections: a.max_connections.unwrap_or(defaults.max_connections).max(1),
            ..defaults
        };
        let demo = a.demo.unwrap_or(false);
        let (api_key, api_key_generated) = match a.api_key {
            Some(k) if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConfigError::Invalid(
                    "the API key must be non-empty visible ASCII".into(),
                ));
            }
            Some(k) => (k, false),
            None if demo => ("demo".to_owned(), true),
            None => {
                let key = random_hex::<16>().map_err(|e| {
                    ConfigError::Invalid(format!("no OS randomness for an API key: {e}"))
                })?;
                (key, true)
            }
        };
        let data_dir = a.data_dir.unwrap_or_else(|| PathBuf::from("dvrclip-data"));
        let clip_archive = match a.clip_archive.as_deref() {
            None => None,
            Some("") => return Err(ConfigError::Invalid("the clip archive is empty".into())),
            Some(url) => match url.strip_prefix("s3://") {
                Some(bucket) if bucket.is_empty() || bucket.contains('/') => {
                    return Err(ConfigError::Invalid(format!(
                        "clip archive {url:?}: name a bucket alone, as s3://bucket"
                    )));
                }
                Some(bucket) => Some(StoreConfig::S3 {
                    bucket: bucket.to_owned(),
                    endpoint: a.s3_endpoint.clone(),
                    region: a.s3_region.clone(),
                }),
                None => Some(StoreConfig::Local(PathBuf::from(url))),
            },
        };
        let archive_on_s3 = matches!(clip_archive, Some(StoreConfig::S3 { .. }));
        let vod_store = match a.s3_bucket {
            Some(bucket) if bucket.is_empty() => {
                return Err(ConfigError::Invalid("the S3 bucket name is empty".into()));
            }
            Some(bucket) => StoreConfig::S3 {
                bucket,
                endpoint: a.s3_endpoint,
                region: a.s3_region,
            },
            None if !archive_on_s3 && (a.s3_endpoint.is_some() || a.s3_region.is_some()) => {
                return Err(ConfigError::Invalid(
                    "--s3-endpoint and --s3-region need --s3-bucket or an s3:// --clip-archive"
                        .into(),
                ));
            }
            None => StoreConfig::Local(data_dir.join("vod")),
        };
        // Nodes of a cluster may share a bucket: each keeps its videos under its own
        // id, which must then be the same after a restart (a random one would lose
        // them).
        let vod_within = match (&cluster, &vod_store) {
            (Some(_), StoreConfig::S3 { .. }) if a.node_id.is_none() => {
                return Err(ConfigError::Invalid(
                    "a cluster node storing videos in a bucket (--s3-bucket) needs --node-id: \
                     its videos are kept under nodes/{node id}/ and found there after a restart"
                        .into(),
                ));
            }
            (Some(c), StoreConfig::S3 { .. }) => Some(node_prefix(&c.node_id)),
            _ => None,
        };
        let spool_dir = match a.spool_dir.as_deref() {
            Some("off") => None,
            Some("") => return Err(ConfigError::Invalid("the spool directory is empty".into())),
            Some(dir) => Some(PathBuf::from(dir)),
            None => default_spool_dir(listen, &data_dir),
        };
        let spool_sync = a
            .spool_sync
            .as_deref()
            .unwrap_or("batch")
            .parse()
            .map_err(ConfigError::Invalid)?;
        let spool_max_maps = match a.spool_max_maps {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "--spool-max-maps must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => dvrclip_spool::DEFAULT_MAX_MAPS,
        };
        if let Some(len) = a.srt_passphrase.as_ref().map(String::len) {
            if !(10..=79).contains(&len) {
                return Err(ConfigError::Invalid(format!(
                    "the SRT passphrase must be 10 to 79 bytes long, not {len}"
                )));
            }
        }
        let next_to_listen = |port: u16| {
            demo.then(|| SocketAddr::new(listen.ip(), if listen.port() == 0 { 0 } else { port }))
        };
        let rtmp_listen = a.rtmp_listen.or_else(|| next_to_listen(1935));
        let srt_listen = a.srt_listen.or_else(|| next_to_listen(8890));
        // Not built for a cluster (design/cluster.md "Built so far"): the demo stream
        // takes an id the cluster's counter may hand out again. RTMP and SRT
        // publishes are placed as uploads are (`publish_route`).
        if cluster.is_some() && demo {
            return Err(ConfigError::Invalid(
                "--cluster-etcd is not for --demo: its stream takes an id outside the cluster's counter"
                    .into(),
            ));
        }
        Ok(Config {
            spool_dir,
            spool_sync,
            spool_max_maps,
            listen,
            public_url,
            api_key,
            api_key_generated,
            data_dir,
            vod_store,
            vod_within,
            memory_budget_bytes: a.memory_budget_mib.unwrap_or(4096) << 20,
            limits,
            shutdown_grace: secs(a.shutdown_grace_secs, Duration::from_secs(10)),
            demo,
            rtmp_listen,
            srt_listen,
            srt_passphrase: a.srt_passphrase,
            clip_archive,
            cluster,
        })
    }

    /// The configuration of a service embedded in another server: links under
    /// `public_url`, the API behind `api_key`, the default limits, VOD under
    /// `dvrclip-data/`. The listen address is the host's business and unused.
    pub fn embedded(public_url: &str, api_key: &str) -> Result<Config, ConfigError> {
        Config::resolve(&ServeArgs {
            public_url: Some(public_url.to_owned()),
            api_key: Some(api_key.to_owned()),
            spool_dir: Some("off".to_owned()),
            ..ServeArgs::default()
        })
    }

    /// The limits of connections, for the accept loop.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: self.limits.header_timeout,
            max_headers: self.limits.max_headers,
            max_connections: self.limits.max_connections,
            send_timeout: self.limits.send_timeout,
            grace: self.shutdown_grace,
        }
    }
}

/// The cluster keys, checked: the others mean nothing without `cluster_etcd`.
fn cluster_config(a: &ServeArgs) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(endpoints) = &a.cluster_etcd else {
        if a.node_id.is_some() || a.advertise_url.is_some() || a.lease_ttl.is_some() {
            return Err(ConfigError::Invalid(
                "--node-id, --advertise-url and --lease-ttl need --cluster-etcd".into(),
            ));
        }
        return Ok(None);
    };
    let etcd: Vec<String> = endpoints
        .split(',')
        .map(|e| e.trim().trim_end_matches('/').to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if etcd.is_empty() || !etcd.iter().all(|e| is_http_url(e)) {
        return Err(ConfigError::Invalid(format!(
            "--cluster-etcd {endpoints:?} must name http:// endpoints, comma-separated"
        )));
    }
    let node_id = match &a.node_id {
        Some(id)
            if id.is_empty()
                || id.len() > 64
                || id == "."
                || id == ".."
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            return Err(ConfigError::Invalid(format!(
                "--node-id {id:?}: 1 to 64 of A-Z a-z 0-9 - _ ."
            )));
        }
        Some(id) => id.clone(),
        None => format!(
            "node-{}",
            random_hex::<4>()
                .map_err(|e| ConfigError::Invalid(format!("no OS randomness: {e}")))?
        ),
    };
    let advertise_url = a
        .advertise_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned());
    if let Some(u) = &advertise_url
        && !is_http_url(u)
    {
        return Err(ConfigError::Invalid(format!(
            "--advertise-url {u:?} must start with http:// or https://"
        )));
    }
    let lease_ttl = a.lease_ttl.unwrap_or(5);
    if !(1..=300).contains(&lease_ttl) {
        return Err(ConfigError::Invalid(format!(
            "--lease-ttl {lease_ttl}: 1 to 300 seconds"
        )));
    }
    Ok(Some(ClusterConfig {
        etcd,
        node_id,
        advertise_url,
        lease_ttl: Duration::from_secs(lease_ttl),
    }))
}

fn is_http_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len()
}

/// Where the spool lives unless configured: tmpfs (`/dev/shm`, a process restart
/// loses nothing, no disk I/O) named by the port so two servers on one host never
/// share one, else next to the VOD. A server on port 0 (tests, scripts) gets a new
/// port each start, so a spool named by it could never be found again: memory only.
fn default_spool_dir(listen: SocketAddr, data_dir: &std::path::Path) -> Option<PathBuf> {
    if listen.port() == 0 {
        return None;
    }
    let shm = std::path::Path::new("/dev/shm");
    Some(if shm.is_dir() {
        shm.join(format!("dvrclip-{}", listen.port()))
    } else {
        data_dir.join("spool")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("dvrclip-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "api_key = \"file$key\"\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            api_key: Some("flag$key".into()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.api_key, "flag$key");
        assert!(!c.api_key_generated);
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.public_url, "http://127.0.0.1:9000");
        assert_eq!(c.limits.segment_bytes, 50 << 20);
    }

    #[test]
    fn an_api_key_always_exists() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.api_key.len(), 32);
        assert!(c.api_key_generated);
        let demo = ServeArgs {
            demo: Some(true),
            ..ServeArgs::default()
        };
        assert_eq!(Config::resolve(&demo).unwrap().api_key, "demo");
    }

    #[test]
    fn rtmp_listens_with_demo_next_to_the_http_port() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.rtmp_listen, None);
        let demo = |listen: &str| {
            Config::resolve(&ServeArgs {
                demo: Some(true),
                listen: Some(listen.parse().unwrap()),
                ..ServeArgs::default()
            })
            .unwrap()
            .rtmp_listen
        };
        assert_eq!(demo("0.0.0.0:8080"), Some("0.0.0.0:1935".parse().unwrap()));
        // Tests listen on port 0: RTMP too, so parallel servers never collide.
        assert_eq!(demo("127.0.0.1:0"), Some("127.0.0.1:0".parse().unwrap()));
        let set = Config::resolve(&ServeArgs {
            rtmp_listen: Some("127.0.0.1:1936".parse().unwrap()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(set.rtmp_listen, Some("127.0.0.1:1936".parse().unwrap()));
    }

    #[test]
    fn srt_listens_with_demo_next_to_the_http_port() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.srt_listen, None);
        let demo = |listen: &str| {
            Config::resolve(&ServeArgs {
                demo: Some(true),
                listen: Some(listen.parse().unwrap()),
                ..ServeArgs::default()
            })
            .unwrap()
            .srt_listen
        };
        assert_eq!(demo("0.0.0.0:8080"), Some("0.0.0.0:8890".parse().unwrap()));
        assert_eq!(demo("127.0.0.1:0"), Some("127.0.0.1:0".parse().unwrap()));
        let short = Config::resolve(&ServeArgs {
            srt_passphrase: Some("short".into()),
            ..ServeArgs::default()
        });
        assert!(matches!(short, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn clip_archive_is_a_bucket_or_a_directory() {
        let archive = |url: &str, endpoint: Option<&str>| {
            Config::resolve(&ServeArgs {
                clip_archive: Some(url.into()),
                s3_endpoint: endpoint.map(str::to_owned),
                ..ServeArgs::default()
            })
            .map(|c| c.clip_archive)
        };
        assert_eq!(
            Config::resolve(&ServeArgs::default()).unwrap().clip_archive,
            None
        );
        assert_eq!(
            archive("s3://clips", Some("http://127.0.0.1:9000")).unwrap(),
            Some(StoreConfig::S3 {
                bucket: "clips".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: None,
            })
        );
        assert_eq!(
            archive("/var/lib/clips", None).unwrap(),
            Some(StoreConfig::Local("/var/lib/clips".into()))
        );
        for bad in ["", "s3://", "s3://b/prefix"] {
            assert!(
                matches!(archive(bad, None), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
    }

    /// Nodes of a cluster may share a VOD bucket: each keeps its videos under
    /// `nodes/{node id}`, so the id must be given (a random one changes at restart).
    #[test]
    fn a_cluster_node_keeps_its_videos_under_its_id_in_a_bucket() {
        let args = |node_id: Option<&str>, bucket: Option<&str>| ServeArgs {
            cluster_etcd: Some("http://127.0.0.1:2379".into()),
            node_id: node_id.map(str::to_owned),
            s3_bucket: bucket.map(str::to_owned),
            ..ServeArgs::default()
        };
        let within = |a: &ServeArgs| Config::resolve(a).map(|c| c.vod_within);
        assert_eq!(
            within(&args(Some("n1"), Some("v"))).unwrap().as_deref(),
            Some("nodes/n1")
        );
        assert_eq!(within(&args(Some("n1"), None)).unwrap(), None);
        assert!(matches!(
            within(&args(None, Some("v"))),
            Err(ConfigError::Invalid(_))
        ));
        let one_node = ServeArgs {
            s3_bucket: Some("v".into()),
            ..ServeArgs::default()
        };
        assert_eq!(within(&one_node).unwrap(), None);
        for bad in [".", ".."] {
            assert!(within(&args(Some(bad), None)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_flags_need_the_etcd_endpoints() {
        assert!(
            Config::resolve(&ServeArgs::default())
                .unwrap()
                .cluster
                .is_none()
        );
        let orphan = ServeArgs {
            node_id: Some("a".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Config::resolve(&orphan),
            Err(ConfigError::Invalid(_))
        ));
        let c = Config::resolve(&ServeArgs {
            cluster_etcd: Some("http://127.0.0.1:2379, http://127.0.0.1:2479/".into()),
            node_id: Some("n1".into()),
            ..ServeArgs::default()
        })
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.etcd, ["http://127.0.0.1:2379", "http://127.0.0.1:2479"]);
        assert_eq!(c.node_id, "n1");
        assert_eq!(c.lease_ttl, Duration::from_secs(5));
        assert_eq!(c.advertise_url, None);
        // RTMP and SRT are placed in a cluster as uploads are.
        let doors = Config::resolve(&ServeArgs {
            cluster_etcd: Some("http://e:2379".into()),
            node_id: Some("n1".into()),
            rtmp_listen: Some("127.0.0.1:1935".parse().unwrap()),
            srt_listen: Some("127.0.0.1:8890".parse().unwrap()),
            ..ServeArgs::default()
        });
        assert!(doors.is_ok_and(|c| c.rtmp_listen.is_some() && c.srt_listen.is_some()));
        for bad in [
            ServeArgs {
                cluster_etcd: Some("etcd:2379".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                cluster_etcd: Some("http://e:2379".into()),
                lease_ttl: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                cluster_etcd: Some("http://e:2379".into()),
                node_id: Some("a/b".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                cluster_etcd: Some("http://e:2379".into()),
                demo: Some(true),
                ..ServeArgs::default()
            },
        ] {
            assert!(matches!(
                Config::resolve(&bad),
                Err(ConfigError::Invalid(_))
            ));
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("dvrclip-config2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "apikey = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Config::resolve(&args),
            Err(ConfigError::Parse { .. })
        ));
    }
}
