//! Server configuration: every knob of `dvrclip serve`, from flags, `DVRCLIP_*`
//! environment variables and an optional TOML file, in that order of precedence.
//!
//! Defaults follow DESIGN §9; a value here is never re-read while serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::vod::StoreConfig;

/// `dvrclip serve` flags. Each also reads an environment variable; a config file
/// (`--config`) fills whatever neither gave.
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the keys below (snake_case, e.g. `api_key = "..."`).
    #[arg(long, env = "DVRCLIP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "DVRCLIP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL of public links (clip playlists and MP4s, ingest), e.g. `https://clips.example.com`.
    #[arg(long, env = "DVRCLIP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Token clients send as `Authorization: APIKey <token>`.
    #[arg(long, env = "DVRCLIP_API_KEY")]
    pub api_key: Option<String>,
    /// Directory for VOD files and state.
    #[arg(long, env = "DVRCLIP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Memory budget, MiB: DVR and clip chunks, open connections and request bodies
    /// still arriving (a sixteenth is kept for those).
    #[arg(long, env = "DVRCLIP_MEMORY_BUDGET_MIB")]
    pub memory_budget_mib: Option<u64>,
    /// Largest media segment upload, MiB.
    #[arg(long, env = "DVRCLIP_MAX_SEGMENT_MIB")]
    pub max_segment_mib: Option<u64>,
    /// Open connections at most.
    #[arg(long, env = "DVRCLIP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send its request headers.
    #[arg(long, env = "DVRCLIP_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds an upload body may stay idle.
    #[arg(long, env = "DVRCLIP_BODY_IDLE_SECS")]
    pub body_idle_secs: Option<u64>,
    /// Seconds allowed for a whole segment upload.
    #[arg(long, env = "DVRCLIP_UPLOAD_DEADLINE_SECS")]
    pub upload_deadline_secs: Option<u64>,
    /// Seconds a client may read nothing of a response before it is cut off.
    #[arg(long, env = "DVRCLIP_SEND_TIMEOUT_SECS")]
    pub send_timeout_secs: Option<u64>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "DVRCLIP_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Start a built-in looping demo stream (no encoder needed).
    #[arg(long, env = "DVRCLIP_DEMO")]
    pub demo: bool,
    /// Keep VOD in this S3 bucket instead of `--data-dir` (credentials from the
    /// standard `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` environment variables).
    #[arg(long, env = "DVRCLIP_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint URL for non-AWS stores (MinIO, Ceph…); `http://` is allowed.
    #[arg(long, env = "DVRCLIP_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else `AWS_REGION`, else `us-east-1`).
    #[arg(long, env = "DVRCLIP_S3_REGION")]
    pub s3_region: Option<String>,
}

/// The same keys as [`ServeArgs`], read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    api_key: Option<String>,
    data_dir: Option<PathBuf>,
    memory_budget_mib: Option<u64>,
    max_segment_mib: Option<u64>,
    max_connections: Option<usize>,
    header_timeout_secs: Option<u64>,
    body_idle_secs: Option<u64>,
    upload_deadline_secs: Option<u64>,
    send_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    demo: Option<bool>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
}

/// Size and time limits on what clients send (DESIGN §9).
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
    /// Memory budget, bytes: chunks, open connections, bodies still arriving.
    pub memory_budget_bytes: u64,
    /// Client limits.
    pub limits: Limits,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Run the demo stream.
    pub demo: bool,
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
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public URL {public_url:?} must start with http:// or https://"
            )));
        }
        let defaults = Limits::default();
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map_or(default, Duration::from_secs)
        };
        let limits = Limits {
            segment_bytes: args
                .max_segment_mib
                .or(file.max_segment_mib)
                .map_or(defaults.segment_bytes, |m| m << 20),
            header_timeout: secs(
                args.header_timeout_secs,
                file.header_timeout_secs,
                defaults.header_timeout,
            ),
            body_idle: secs(args.body_idle_secs, file.body_idle_secs, defaults.body_idle),
            upload_deadline: secs(
                args.upload_deadline_secs,
                file.upload_deadline_secs,
                defaults.upload_deadline,
            ),
            send_timeout: secs(
                args.send_timeout_secs,
                file.send_timeout_secs,
                defaults.send_timeout,
            ),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections)
                .max(1),
            ..defaults
        };
        let demo = args.demo || file.demo.unwrap_or(false);
        let (api_key, api_key_generated) = match args.api_key.clone().or(file.api_key) {
            Some(k) if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConfigError::Invalid(
                    "the API key must be non-empty visible ASCII".into(),
                ));
            }
            Some(k) => (k, false),
            None if demo => ("demo".to_owned(), true),
            None => (random_token()?, true),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("dvrclip-data"));
        let s3_endpoint = args.s3_endpoint.clone().or(file.s3_endpoint);
        let s3_region = args.s3_region.clone().or(file.s3_region);
        let vod_store = match args.s3_bucket.clone().or(file.s3_bucket) {
            Some(bucket) if bucket.is_empty() => {
                return Err(ConfigError::Invalid("the S3 bucket name is empty".into()));
            }
            Some(bucket) => StoreConfig::S3 {
                bucket,
                endpoint: s3_endpoint,
                region: s3_region,
            },
            None if s3_endpoint.is_some() || s3_region.is_some() => {
                return Err(ConfigError::Invalid(
                    "--s3-endpoint and --s3-region need --s3-bucket".into(),
                ));
            }
            None => StoreConfig::Local(data_dir.join("vod")),
        };
        Ok(Config {
            listen,
            public_url,
            api_key,
            api_key_generated,
            data_dir,
            vod_store,
            memory_budget_bytes: args
                .memory_budget_mib
                .or(file.memory_budget_mib)
                .unwrap_or(4096)
                << 20,
            limits,
            shutdown_grace: secs(
                args.shutdown_grace_secs,
                file.shutdown_grace_secs,
                Duration::from_secs(10),
            ),
            demo,
        })
    }
}

/// 128 bits from the OS RNG as 32 hex characters.
fn random_token() -> Result<String, ConfigError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| ConfigError::Invalid(format!("no OS randomness for an API key: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
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
            demo: true,
            ..ServeArgs::default()
        };
        assert_eq!(Config::resolve(&demo).unwrap().api_key, "demo");
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
