//! Why the load generator stopped or a request failed.

use std::path::PathBuf;

/// A failure of the load generator itself (a request the server refuses is counted,
/// not raised).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A fixture file could not be read.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    /// The ladder directory is not shaped as ffmpeg writes it.
    #[error("ladder: {0}")]
    Ladder(String),
    /// A fixture segment the project's parser refuses.
    #[error("fixture media: {0}")]
    Media(#[from] dvrclip_fmp4::Error),
    /// A request failed on the wire.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The server answered an API call with something else than expected.
    #[error("api: {0}")]
    Api(String),
}
