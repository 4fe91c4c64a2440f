//! Payload files: one file per chunk, `chunks/{id:016x}.m4s`, written once with one
//! `write` and then mapped read-only (`MAP_SHARED`), so the bytes the engine keeps
//! and serves are the file's own pages: on tmpfs one copy in memory, on a disk the
//! page cache's. A file is removed when the last `Bytes` of its payload drops (the
//! mapping's owner unlinks it), unless the spool is sealed for shutdown, when every
//! file must outlive the process.
//!
//! Why a file per chunk rather than an append-only log per rendition: a chunk leaves
//! the DVR oldest-first but clips pin arbitrary chunks for up to 4 h, so a log would
//! need compaction that copies live media; one file per chunk frees space by an
//! `unlink` the moment the last holder drops. The cost is a file and a mapping per
//! chunk (5,400 for a 1 h DVR of a 3-rendition ladder of 2 s chunks).
//!
//! Why not a writable mapping filled by the socket: a store into a mapped file past
//! the free space of the filesystem is a SIGBUS, not an error; `write` returns
//! `ENOSPC` and the upload is refused (503) with nothing changed.
//!
//! The spool's only `unsafe`: mapping a file (`memmap2::Mmap::map`), sound as long as
//! no one truncates the file while it is mapped. The spool directory is the process's
//! own (an exclusive lock on `lock` keeps a second dvrclip out), files are never
//! written after they are mapped, and removal (`unlink`) leaves a mapping intact.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::Mmap;
use parking_lot::Mutex;

use crate::record::crc32c;

/// What the spool knows of a live payload mapping, by the address of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub(crate) file: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// The payload files of one spool directory and the live mappings of them.
#[derive(Debug)]
pub(crate) struct Files {
    dir: PathBuf,
    next: AtomicU64,
    live: Mutex<HashMap<usize, FileInfo>>,
    /// Written, not yet synced (the batch syncer drains it).
    dirty: Mutex<Vec<File>>,
    sealed: AtomicBool,
    sync_each: bool,
}

impl Files {
    /// `dir/chunks`, created if missing; new ids start at `next`.
    pub(crate) fn new(dir: &Path, next: u64, sync_each: bool) -> std::io::Result<Arc<Files>> {
        let dir = dir.join("chunks");
        std::fs::create_dir_all(&dir)?;
        Ok(Arc::new(Files {
            dir,
            next: AtomicU64::new(next),
            live: Mutex::new(HashMap::new()),
            dirty: Mutex::new(Vec::new()),
            sealed: AtomicBool::new(false),
            sync_each,
        }))
    }

    pub(crate) fn path(dir: &Path, file: u64) -> PathBuf {
        dir.join(format!("{file:016x}.m4s"))
    }

    /// The id a file name stands for, if it is a payload file's.
    pub(crate) fn id_of(name: &str) -> Option<u64> {
        let hex = name.strip_suffix(".m4s")?;
        (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mapping `bytes` is, if it is a whole live payload of this spool.
    pub(crate) fn info(&self, bytes: &[u8]) -> Option<FileInfo> {
        let info = *self.live.lock().get(&(bytes.as_ptr() as usize))?;
        (info.len == bytes.len() as u64).then_some(info)
    }

    /// Writes `bytes` to a new file and maps it. A write that fails (no space)
    /// removes the file and changes nothing.
    pub(crate) fn place(self: &Arc<Self>, bytes: &[u8]) -> std::io::Result<Bytes> {
        let file = self.next.fetch_add(1, Ordering::Relaxed);
        let path = Files::path(&self.dir, file);
        let written = File::create_new(&path).and_then(|mut f| {
            f.write_all(bytes)?;
            if self.sync_each {
                f.sync_data()?;
                self.sync_dir()?;
            }
            Ok(f)
        });
        let f = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let crc = crc32c(bytes);
        let mapped = self.map(&f, file, bytes.len() as u64, crc);
        if !self.sync_each {
            self.dirty.lock().push(f);
        }
        mapped.inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }

    /// Maps an existing payload file of `len` bytes whose checksum is `crc`.
    pub(crate) fn map(
        self: &Arc<Self>,
        f: &File,
        file: u64,
        len: u64,
        crc: u32,
    ) -> std::io::Result<Bytes> {
        // SAFETY: see the module doc: the file is this process's alone, never
        // written or truncated after this point; unlinking keeps the mapping valid.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(f)? };
        if map.len() as u64 != len {
            return Err(std::io::Error::other("payload file length changed"));
        }
        let info = FileInfo { file, len, crc };
        self.live.lock().insert(map.as_ptr() as usize, info);
        Ok(Bytes::from_owner(Payload {
            map,
            file,
            files: Arc::clone(self),
        }))
    }

    /// From now on no payload file is removed: the process is stopping and every
    /// file must be there for the next one.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
    }

    /// Syncs the files written since the last call, and the directory.
    pub(crate) fn sync_dirty(&self) -> std::io::Result<()> {
        let dirty = std::mem::take(&mut *self.dirty.lock());
        if dirty.is_empty() {
            return Ok(());
        }
        for f in &dirty {
            f.sync_data()?;
        }
        File::open(&self.dir)?.sync_all()
    }

    /// The ids of the payload files mapped now.
    pub(crate) fn live_files(&self) -> std::collections::HashSet<u64> {
        self.live.lock().values().map(|i| i.file).collect()
    }

    /// Makes the directory's new entries durable (a synced file is not found after
    /// a power cut unless its name is).
    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Payload mappings alive now.
    pub(crate) fn live_count(&self) -> usize {
        self.live.lock().len()
    }
}

/// A payload file being written as its bytes arrive (an upload's body read straight
/// into the spool: one copy, from the socket's buffer into the file). Dropped
/// unfinished (an aborted upload), the file is removed.
#[derive(Debug)]
pub struct PayloadWriter {
    files: Arc<Files>,
    file: u64,
    f: Option<File>,
    len: u64,
    crc: crc_fast::Digest,
}

impl PayloadWriter {
    pub(crate) fn new(files: &Arc<Files>) -> std::io::Result<PayloadWriter> {
        let file = files.next.fetch_add(1, Ordering::Relaxed);
        let f = File::create_new(Files::path(&files.dir, file))?;
        Ok(PayloadWriter {
            files: Arc::clone(files),
            file,
            f: Some(f),
            len: 0,
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
        })
    }

    /// Appends `data` (one `write`; `ENOSPC` when the filesystem is full).
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let f = self
            .f
            .as_mut()
            .ok_or_else(|| std::io::Error::other("finished"))?;
        f.write_all(data)?;
        self.crc.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The written payload, mapped: what the engine keeps. Empty: no file.
    pub fn finish(mut self) -> std::io::Result<Bytes> {
        let f = self
            .f
            .take()
            .ok_or_else(|| std::io::Error::other("finished"))?;
        if self.len == 0 {
            let _ = std::fs::remove_file(Files::path(&self.files.dir, self.file));
            return Ok(Bytes::new());
        }
        if self.files.sync_each {
            f.sync_data()?;
            self.files.sync_dir()?;
        }
        let crc = self.crc.finalize() as u32;
        let mapped = self.files.map(&f, self.file, self.len, crc);
        if mapped.is_err() {
            let _ = std::fs::remove_file(Files::path(&self.files.dir, self.file));
        } else if !self.files.sync_each {
            self.files.dirty.lock().push(f);
        }
        mapped
    }
}

impl Drop for PayloadWriter {
    fn drop(&mut self) {
        if self.f.take().is_some() {
            let _ = std::fs::remove_file(Files::path(&self.files.dir, self.file));
        }
    }
}

/// The owner of one payload mapping inside a `Bytes`.
struct Payload {
    map: Mmap,
    file: u64,
    files: Arc<Files>,
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.files.live.lock().remove(&(self.map.as_ptr() as usize));
        if !self.files.sealed.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(Files::path(&self.files.dir, self.file));
        }
    }
}
