//! The ffmpeg fixtures under `tests/fixtures` as bytes, for the fmp4 tests (each test
//! file includes this one with `#[path]`): a folder's playlist read into its init's
//! and its segments' bytes, in playlist order.

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// `tests/fixtures` of the workspace.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A file's bytes; the test fails naming it when it cannot be read.
pub(crate) fn read(path: &Path) -> Bytes {
    Bytes::from(std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A fixture folder as its playlist names it.
pub(crate) struct Files {
    /// The `EXT-X-MAP` init segment.
    pub(crate) init: Bytes,
    /// Every segment, with its file name, in playlist order.
    pub(crate) segments: Vec<(String, Bytes)>,
}

/// Reads the fixture folder `dir` (relative to [`root`]) through its `index.m3u8`.
pub(crate) fn files(dir: &str) -> Files {
    let dir = root().join(dir);
    let playlist = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    let map = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .expect("EXT-X-MAP");
    let segments = playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|name| (name.to_owned(), read(&dir.join(name))))
        .collect();
    Files {
        init: read(&dir.join(map)),
        segments,
    }
}
