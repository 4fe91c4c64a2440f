//! The body of a byte range of an archived clip's MP4 stored once (manifest format
//! 2, `crate::archive::layout`): its head object and stretches of the segments file,
//! read from the store as the layout plans (one ranged GET per run of the range that
//! lies forward in one object: the header one, a run of the body another, however
//! many chunks it crosses), each read's gap bytes dropped as they stream by.
//!
//! Bounded: the read being handed on, and the next one opened while it is (its
//! request sent, so a whole file does not wait a round trip between its header and
//! its body; its bytes wait in the connection's buffers until they are wanted). No
//! byte is held beyond the store's current frame. The first read is opened before
//! the response is answered, so a missing object or a store that is down is a 404
//! or 503 as for any archived file; a later read that fails ends the body early
//! ([`StoreBody`]: the client sees fewer bytes than `Content-Length`).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;

use super::store_body::StoreBody;
use crate::archive::Mp4Layout;
use crate::archive::layout::{Cursor, Read, Source};
use crate::http::HttpBody;
use crate::vod::store::ByteStream;
use crate::vod::{StoreError, VodStore};

/// The objects of one split MP4 and its layout.
#[derive(Debug)]
pub(super) struct SplitMp4 {
    store: Arc<dyn VodStore>,
    head_key: String,
    segments_key: String,
    layout: Mp4Layout,
}

impl SplitMp4 {
    /// The MP4 stored as `head_key` and `segments_key` of `store`, laid out as
    /// `layout` says.
    pub(super) fn new(
        store: &Arc<dyn VodStore>,
        head_key: &str,
        segments_key: &str,
        layout: Mp4Layout,
    ) -> SplitMp4 {
        SplitMp4 {
            store: Arc::clone(store),
            head_key: head_key.to_owned(),
            segments_key: segments_key.to_owned(),
            layout,
        }
    }

    /// A body of its bytes `range` (non-empty, inside the file), its first read
    /// open.
    pub(super) async fn body(self, range: Range<u64>) -> Result<HttpBody, StoreError> {
        let len = range.end - range.start;
        let Some(read) = self.layout.read(range.start, range.end) else {
            return Ok(http_body_util::Empty::new().boxed());
        };
        let stream = self.open(&read).await?;
        let mut state = Reading {
            mp4: self,
            end: range.end,
            current: None,
            next: None,
        };
        state.start(stream, read);
        let stream: ByteStream = Box::pin(futures_util::stream::unfold(state, Reading::step));
        Ok(StoreBody::new(stream, len).boxed())
    }

    fn open(
        &self,
        read: &Read,
    ) -> impl Future<Output = Result<ByteStream, StoreError>> + Send + 'static {
        let key = match read.source {
            Source::Head => self.head_key.clone(),
            Source::Segments => self.segments_key.clone(),
        };
        let (store, range) = (Arc::clone(&self.store), read.range.clone());
        async move { store.get_range(&key, range).await }
    }
}

/// A body's state between its frames.
struct Reading {
    mp4: SplitMp4,
    /// The MP4 offset past the last byte to send.
    end: u64,
    current: Option<Current>,
    /// The read after the current one, being opened.
    next: Option<(Read, JoinHandle<Result<ByteStream, StoreError>>)>,
}

/// The read in progress.
struct Current {
    stream: ByteStream,
    cursor: Cursor,
    /// What arrived of it and is not handed on or dropped yet.
    arrived: Bytes,
}

impl Reading {
    /// Makes `read`, opened as `stream`, the current one, and starts opening the
    /// read after it.
    fn start(&mut self, stream: ByteStream, read: Read) {
        self.next = self.mp4.layout.read(read.mp4.end, self.end).map(|next| {
            let opening = tokio::spawn(self.mp4.open(&next));
            (next, opening)
        });
        self.current = Some(Current {
            stream,
            cursor: Cursor::new(read),
            arrived: Bytes::new(),
        });
    }

    /// The next frame: MP4 bytes, or the error that ends the body; `None` at the end.
    async fn step(mut self) -> Option<(Result<Bytes, StoreError>, Reading)> {
        loop {
            let cur = self.current.as_mut()?;
            match cur.cursor.take(&self.mp4.layout, &mut cur.arrived) {
                Ok(Some(bytes)) => return Some((Ok(bytes), self)),
                Ok(None) if cur.cursor.is_done() => {
                    self.current = None;
                    let (read, opening) = self.next.take()?;
                    match opening.await {
                        Ok(Ok(stream)) => self.start(stream, read),
                        Ok(Err(e)) => return Some((Err(e), self)),
                        Err(e) => {
                            tracing::error!(error = %e, "archived MP4: opening a read failed");
                            return None;
                        }
                    }
                }
                Ok(None) => match cur.stream.next().await {
                    Some(Ok(bytes)) => cur.arrived = bytes,
                    Some(Err(e)) => {
                        self.current = None;
                        return Some((Err(e), self));
                    }
                    None => {
                        tracing::error!(
                            key = %self.mp4.head_key,
                            "archived MP4: a store read ended before its range did"
                        );
                        return None;
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "archived MP4: a read out of its layout");
                    return None;
                }
            }
        }
    }
}

impl Drop for Reading {
    /// A body dropped (the client gone) stops opening its next read.
    fn drop(&mut self) {
        if let Some((_, opening)) = &self.next {
            opening.abort();
        }
    }
}
