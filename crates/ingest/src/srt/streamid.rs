//! What a caller's SRT `streamid` names: the ingest key of the stream it publishes to.
//! Pure and total: any string in, a key or a refusal out.
//!
//! Two shapes are read. Gcore's `push_url_srt` puts the key alone
//! (`srt://host:port?streamid={key}`). SRT's access-control convention
//! (Haivision SRT `docs/features/access-control.md`, "Standard Keys") starts with
//! `#!::` and lists comma-separated `key=value` pairs; `r` is the resource (our key)
//! and `m` the mode, of which only `publish` is served (no `m` means `request` in that
//! convention, which OBS and ffmpeg users never mean when pushing, so it is taken as
//! a publish too).

/// Why a `streamid` names no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    /// The caller sent no `streamid`, or an empty one.
    #[error("no streamid")]
    Missing,
    /// An access-control `streamid` without `r=`.
    #[error("access-control streamid without a resource (r=)")]
    NoResource,
    /// An access-control `streamid` asking for another mode than publishing.
    #[error("mode {0:?}: only publish is served")]
    NotPublish(String),
}

/// The prefix of SRT's access-control syntax.
const ACCESS_CONTROL: &str = "#!::";

/// The ingest key a `streamid` names. The key is not checked here: the caller
/// resolves it against the engine (in constant time) and refuses what names no
/// stream.
pub fn ingest_key(streamid: &str) -> Result<&str, StreamIdError> {
    let Some(pairs) = streamid.strip_prefix(ACCESS_CONTROL) else {
        return match streamid {
            "" => Err(StreamIdError::Missing),
            key => Ok(key),
        };
    };
    let mut resource = None;
    for pair in pairs.split(',') {
        match pair.split_once('=') {
            Some(("r", v)) => resource = Some(v),
            Some(("m", m)) if m != "publish" => {
                let shown: String = m.chars().take(32).collect();
                return Err(StreamIdError::NotPublish(shown));
            }
            _ => {}
        }
    }
    match resource {
        None | Some("") => Err(StreamIdError::NoResource),
        Some(r) => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gcore_shape_is_the_key_itself() {
        assert_eq!(ingest_key("0123abcd"), Ok("0123abcd"));
        assert_eq!(ingest_key(""), Err(StreamIdError::Missing));
    }

    #[test]
    fn access_control_shape() {
        // "#!::r=live/stream,m=publish" is the convention's own example shape.
        assert_eq!(ingest_key("#!::r=0123abcd,m=publish"), Ok("0123abcd"));
        assert_eq!(ingest_key("#!::m=publish,u=me,r=k1"), Ok("k1"));
        assert_eq!(ingest_key("#!::r=k1"), Ok("k1"));
        assert_eq!(
            ingest_key("#!::r=k1,m=request"),
            Err(StreamIdError::NotPublish("request".into()))
        );
        assert_eq!(ingest_key("#!::u=me"), Err(StreamIdError::NoResource));
        assert_eq!(ingest_key("#!::r="), Err(StreamIdError::NoResource));
        assert_eq!(ingest_key("#!::"), Err(StreamIdError::NoResource));
    }

    proptest! {
        /// Total on any input; a key found is a non-empty part of the input.
        #[test]
        fn any_streamid_is_answered(s in ".{0,600}") {
            if let Ok(k) = ingest_key(&s) {
                prop_assert!(!k.is_empty());
                prop_assert!(s.contains(k));
            }
        }
    }
}
