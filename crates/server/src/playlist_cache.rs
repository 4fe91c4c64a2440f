//! Rendered HLS playlists, kept and shared between polls: a live window's master and
//! media playlists, and a clip's.
//!
//! A poll used to render the whole window every time (7,200 entries, about 1 ms, for
//! a 4 h DVR). Now each playlist is rendered once per change of what it is rendered
//! from, its *source*: the generations of the rings it lists
//! ([`dvrclip_engine::Engine::live_generation`], renewed by every ring write) or the
//! clip's view version. A poll reads the source (O(1) per rendition), finds the
//! entry with the same source and answers with its `Bytes` (no copy) as an
//! [`Entity`]: a strong ETag (SHA-256 of the text, so equal text has an equal tag
//! across restarts and servers), `If-None-Match` → 304 and ranges (RFC 9110 §13,
//! §14) come with it. The source is read before the render, so a write between the
//! two makes the next poll render again rather than keep a stale text.
//!
//! Each entry's bytes hold a share of the memory budget for as long as the entry
//! (or a response still being sent) lives; entries of streams and clips that are
//! gone are dropped by [`Playlists::retain`] from the app's tick. What a playlist
//! says is `dvrclip_hls`'s; caching policy headers are the callers'.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dvrclip_engine::{ClipId, Engine, MemoryReservation, StreamId};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::http::HttpBody;
use crate::http::entity::{Entity, MAX_FRAME};

/// Which playlist an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A stream's live master (`None`) or one rendition's live media playlist.
    Live(StreamId, Option<String>),
    /// A clip's master or media playlist, by link name (`master` or a rendition).
    Clip(ClipId, String),
}

/// One rendered playlist, shared by every response until its source changes.
#[derive(Debug)]
pub struct Rendered {
    source: Vec<u64>,
    text: Bytes,
    etag: String,
    _memory: Option<MemoryReservation>,
}

impl Rendered {
    /// The playlist's text.
    pub fn text(&self) -> &Bytes {
        &self.text
    }
}

impl Entity for Arc<Rendered> {
    type Error = Infallible;

    fn len(&self) -> u64 {
        self.text.len() as u64
    }

    fn etag(&self) -> &str {
        &self.etag
    }

    fn content_type(&self) -> &str {
        dvrclip_hls::CONTENT_TYPE
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, Infallible> {
        // `respond` asks only for ranges inside `len`; a slice shares the buffer.
        let rest = self.text.slice(range.start as usize..range.end as usize);
        Ok(TextBody { rest }.boxed())
    }
}

/// A kept text sent in frames of at most [`MAX_FRAME`], as an MP4 is: a 4 h clip's
/// playlist is over 500 KB, and one frame that size lets one connection hold a
/// runtime thread while others wait.
struct TextBody {
    rest: Bytes,
}

impl Body for TextBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        // A split shares the buffer: nothing is copied.
        let n = this.rest.len().min(MAX_FRAME);
        Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// The rendered playlists by [`Key`].
#[derive(Debug, Default)]
pub struct Playlists {
    entries: Mutex<HashMap<Key, Arc<Rendered>>>,
}

impl Playlists {
    /// The playlist `key` as rendered from `source`: the kept one when its source is
    /// the same, else `render`'s text, kept for the next poll. Concurrent polls after
    /// a change may each render; the last one kept wins, and any other source than
    /// the next poll's only costs that poll a render. A text the budget has no room
    /// for ([`Engine::try_reserve_memory`]) is served but not kept.
    pub fn get_or_render<E>(
        &self,
        engine: &Engine,
        key: Key,
        source: Vec<u64>,
        render: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<Rendered>, E> {
        if let Some(hit) = self.entries.lock().get(&key).filter(|r| r.source == source) {
            return Ok(Arc::clone(hit));
        }
        let text = Bytes::from(render()?);
        let memory = engine.try_reserve_memory(text.len() as u64).ok();
        let keep = memory.is_some();
        let rendered = Arc::new(Rendered {
            source,
            etag: etag_of(&text),
            text,
            _memory: memory,
        });
        let mut entries = self.entries.lock();
        if keep {
            entries.insert(key, Arc::clone(&rendered));
        } else {
            entries.remove(&key);
        }
        Ok(rendered)
    }

    /// Keeps the entries `keep` says are still wanted (their stream or clip exists).
    pub fn retain(&self, mut keep: impl FnMut(&Key) -> bool) {
        self.entries.lock().retain(|k, _| keep(k));
    }

    /// Number of playlists kept.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A strong entity-tag (RFC 9110 §8.8.3) of `text`: the first 128 bits of its
/// SHA-256, quoted.
pub(crate) fn etag_of(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    let mut etag = String::with_capacity(34);
    etag.push('"');
    for b in &digest[..16] {
        etag.push_str(&format!("{b:02x}"));
    }
    etag.push('"');
    etag
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvrclip_engine::EngineConfig;

    fn render(text: &str, calls: &mut u32) -> Result<String, Infallible> {
        *calls += 1;
        Ok(text.to_owned())
    }

    /// A poll with the same source gets the same bytes, not a new render; a new
    /// source renders again and the tag follows the text.
    #[test]
    fn renders_once_per_source() {
        let engine = Engine::new(EngineConfig::default());
        let cache = Playlists::default();
        let key = Key::Live(StreamId(7), None);
        let mut calls = 0;
        let a = cache.get_or_render(&engine, key.clone(), vec![1], || {
            render("#EXTM3U\n", &mut calls)
        });
        let b = cache.get_or_render(&engine, key.clone(), vec![1], || {
            render("other", &mut calls)
        });
        let (Ok(a), Ok(b)) = (a, b);
        assert_eq!(calls, 1);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.text().as_ref(), b"#EXTM3U\n");
        let c = cache.get_or_render(&engine, key.clone(), vec![2], || {
            render("#EXTM3U\n#x\n", &mut calls)
        });
        let Ok(c) = c;
        assert_eq!(calls, 2);
        assert_ne!(c.etag(), a.etag());
        assert!(c.etag().starts_with('"') && c.etag().len() == 34);
        // The same text from another source has the same tag: it is the text's.
        let d = cache.get_or_render(&engine, key, vec![3], || render("#EXTM3U\n", &mut calls));
        let Ok(d) = d;
        assert_eq!(d.etag(), a.etag());
        assert_eq!(cache.len(), 1);
        cache.retain(|_| false);
        assert!(cache.is_empty());
    }
}
