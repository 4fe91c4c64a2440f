//! The journal file: `journal`, a magic line then [`crate::record`] frames, appended
//! one record per `write` at the offset the writer holds. An append that fails
//! (`ENOSPC`) is cut back off (`ftruncate` needs no space), so a later record never
//! sits behind a torn one. Reading stops at the first frame that is not whole and
//! right; the caller truncates the file there. Compaction writes a new journal
//! beside it (`journal.tmp`, synced) and renames it over the old one: a crash at
//! any point leaves one whole journal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::record::{FrameError, Record, decode_all, encode};

/// The first bytes of a journal.
pub(crate) const MAGIC: &[u8; 8] = b"DVRJNL1\n";

/// What reading a journal found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) records: Vec<Record>,
    /// Bytes after the last whole record (a torn tail or garbage), dropped.
    pub(crate) torn_bytes: u64,
    /// Why the bytes after the last record are not one.
    pub(crate) error: Option<FrameError>,
}

/// The open journal, appended under one lock.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: Mutex<(File, u64)>,
    sync_each: bool,
}

/// Why a journal could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path} is not a dvrclip journal")]
    NotAJournal { path: PathBuf },
}

/// Reads the journal at `path` (none: empty). Whole records only.
pub(crate) fn read(path: &Path) -> Result<Read, JournalError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
        Err(e) => return Err(e.into()),
    };
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        // A journal cut inside its magic line holds nothing yet.
        if MAGIC.starts_with(&bytes) {
            return Ok(Read::default());
        }
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
        });
    };
    let (records, used, error) = decode_all(body);
    Ok(Read {
        records,
        torn_bytes: (body.len() - used) as u64,
        error,
    })
}

impl Journal {
    /// Replaces the journal at `path` by `records`, atomically, and opens it for
    /// appending.
    pub(crate) fn rewrite(
        path: &Path,
        records: &[Record],
        sync_each: bool,
    ) -> Result<Journal, JournalError> {
        let mut buf = MAGIC.to_vec();
        for r in records {
            encode(r, &mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file: Mutex::new((file, buf.len() as u64)),
            sync_each,
        })
    }

    /// Appends one record; on failure the journal is as it was.
    pub(crate) fn append(&self, record: &Record) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(256);
        encode(record, &mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut g = self.file.lock();
        let (file, len) = &mut *g;
        if let Err(e) = file.write_all_at(&buf, *len) {
            let _ = file.set_len(*len);
            return Err(e);
        }
        *len += buf.len() as u64;
        if self.sync_each {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Replaces the journal by `records()` (made while no append can run), as
    /// [`Journal::rewrite`] does; on failure the old journal stays in use.
    pub(crate) fn compact(&self, records: impl FnOnce() -> Vec<Record>) -> std::io::Result<u64> {
        let mut g = self.file.lock();
        let fresh = Journal::rewrite(&self.path, &records(), self.sync_each).map_err(|e| match e {
            JournalError::Io(e) => e,
            e => std::io::Error::other(e.to_string()),
        });
        let fresh = match fresh {
            Ok(j) => j,
            Err(e) => {
                let _ = std::fs::remove_file(self.path.with_extension("tmp"));
                return Err(e);
            }
        };
        *g = fresh.file.into_inner();
        Ok(g.1)
    }

    /// Puts what was appended on stable storage.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.lock().0.sync_data()
    }

    /// Bytes in the journal.
    pub(crate) fn len(&self) -> u64 {
        self.file.lock().1
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
