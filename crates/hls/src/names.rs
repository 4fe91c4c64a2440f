//! The names of the files a playlist lists: a clip rendition's `init_{n}.mp4` and
//! `seg_{i}.m4s` ([`MediaFile`]) and a live rendition's `init_{d}.mp4` and
//! `{seq}.m4s` ([`LiveFile`]). Each type writes its names (`Display`, which the
//! playlists use) and reads them back (`parse`, which the server's router uses):
//! one name per file, nothing else accepted, so a request names a file the
//! playlists could have listed or nothing.

use std::fmt;

/// What a media segment URI `seg_{i}.m4s` or init URI `init_{n}.mp4` of a clip
/// rendition points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFile {
    /// The n-th distinct init segment of the rendition within the clip.
    Init(usize),
    /// The i-th chunk of the rendition within the clip.
    Segment(usize),
}

impl fmt::Display for MediaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaFile::Init(n) => write!(f, "init_{n}.mp4"),
            MediaFile::Segment(i) => write!(f, "seg_{i}.m4s"),
        }
    }
}

impl MediaFile {
    /// Parses exactly what `Display` writes, for an index below 10^9.
    pub fn parse(file: &str) -> Option<MediaFile> {
        let index = |s| decimal(s, 9).map(|n| n as usize);
        if let Some(n) = init_number(file) {
            return index(n).map(MediaFile::Init);
        }
        let i = file.strip_prefix("seg_")?.strip_suffix(".m4s")?;
        index(i).map(MediaFile::Segment)
    }
}

/// What a file of a live rendition directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFile {
    /// `init_{d}.mp4`: the init of discontinuity `d`.
    Init(u64),
    /// `{seq}.m4s`: the chunk `seq`.
    Segment(u64),
}

impl fmt::Display for LiveFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveFile::Init(d) => write!(f, "init_{d}.mp4"),
            LiveFile::Segment(seq) => write!(f, "{seq}.m4s"),
        }
    }
}

impl LiveFile {
    /// Parses exactly what `Display` writes, for a number below 10^19.
    pub fn parse(file: &str) -> Option<LiveFile> {
        if let Some(d) = init_number(file) {
            return decimal(d, 19).map(LiveFile::Init);
        }
        decimal(file.strip_suffix(".m4s")?, 19).map(LiveFile::Segment)
    }
}

/// The `n` of an `init_{n}.mp4` file name, unparsed.
fn init_number(file: &str) -> Option<&str> {
    file.strip_prefix("init_")?.strip_suffix(".mp4")
}

/// A number of 1 to `max_digits` ASCII digits as `{}` writes it, nothing else (no
/// sign, no space, no leading zero).
fn decimal(s: &str, max_digits: usize) -> Option<u64> {
    let plain = !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit());
    let canonical = s.len() == 1 || !s.starts_with('0');
    (plain && canonical).then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_file_names() {
        assert_eq!(MediaFile::parse("seg_12.m4s"), Some(MediaFile::Segment(12)));
        assert_eq!(MediaFile::parse("init_0.mp4"), Some(MediaFile::Init(0)));
        for bad in [
            "seg_.m4s",
            "seg_-1.m4s",
            "seg_1.mp4",
            "init_x.mp4",
            "seg_9999999999.m4s",
            "seg_012.m4s",
            "init_00.mp4",
            "seg_+1.m4s",
        ] {
            assert_eq!(MediaFile::parse(bad), None, "{bad}");
        }
        for file in [
            MediaFile::Segment(0),
            MediaFile::Init(7),
            MediaFile::Segment(999_999_999),
        ] {
            assert_eq!(MediaFile::parse(&file.to_string()), Some(file));
        }
    }

    #[test]
    fn live_file_names() {
        assert_eq!(LiveFile::parse("12.m4s"), Some(LiveFile::Segment(12)));
        assert_eq!(LiveFile::parse("init_3.mp4"), Some(LiveFile::Init(3)));
        for bad in [
            ".m4s",
            "-1.m4s",
            "1.mp4",
            "init_.mp4",
            "seg_1.m4s",
            "99999999999999999999.m4s",
            "012.m4s",
            "init_03.mp4",
        ] {
            assert_eq!(LiveFile::parse(bad), None, "{bad}");
        }
        for file in [
            LiveFile::Segment(0),
            LiveFile::Init(3),
            LiveFile::Segment(9_999_999_999_999_999_999),
        ] {
            assert_eq!(LiveFile::parse(&file.to_string()), Some(file));
        }
    }
}
