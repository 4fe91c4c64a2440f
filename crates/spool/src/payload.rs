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
//! Mappings are bounded ([`Files`]' `max_maps`, `--spool-max-maps`): each is one
//! kernel VMA (file mappings never merge) and a process has 65,530 by default
//! (`vm.max_map_count`), shared with thread stacks, the allocator and libraries; a
//! DVR of more chunks than that would make every later `mmap`, a thread's stack
//! included, fail. Past the cap a payload is read into the heap instead (the file
//! stays for the next process, removed as a mapped one is): the serve path is the
//! same `Bytes`, but on tmpfs such a chunk is held twice (the file's pages and the
//! heap copy), which is why the cap only bounds the rare huge DVR. A mapping is
//! never traded for a read later: the engine's `Bytes` point into it, and it lives
//! as long as they do.
//!
//! A mapping is recorded in [`crate::frozen`] while it lives, so the server may send
//! its pages by reference; a heap copy never is (its pages go back to the allocator).
//!
//! The spool's only `unsafe`: mapping a file (`memmap2::Mmap::map`), sound as long as
//! no one truncates the file while it is mapped. The spool directory is the process's
//! own (an exclusive lock on `lock` keeps a second dvrclip out), files are never
//! written after they are mapped, and removal (`unlink`) leaves a mapping intact.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
    /// Live mappings at most; past it payloads are read into the heap.
    max_maps: usize,
    /// Live mappings now, and their bytes.
    maps: AtomicUsize,
    mapped_bytes: AtomicU64,
    /// Payloads read into the heap (past `max_maps`) alive now, and their bytes.
    held: AtomicUsize,
    held_bytes: AtomicU64,
}

/// What [`Files`] holds now, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadCounts {
    /// Payloads mapped from their files.
    pub mapped: usize,
    /// Their bytes.
    pub mapped_bytes: u64,
    /// Payloads read into the heap because `max_maps` mappings were live.
    pub held: usize,
    /// Their bytes.
    pub held_bytes: u64,
}

impl Files {
    /// `dir/chunks`, created if missing; new ids start at `next`.
    /// At most `max_maps` payloads are mapped at once.
    pub(crate) fn new(
        dir: &Path,
        next: u64,
        sync_each: bool,
        max_maps: usize,
    ) -> std::io::Result<Arc<Files>> {
        let dir = dir.join("chunks");
        std::fs::create_dir_all(&dir)?;
        Ok(Arc::new(Files {
            dir,
            next: AtomicU64::new(next),
            live: Mutex::new(HashMap::new()),
            dirty: Mutex::new(Vec::new()),
            sealed: AtomicBool::new(false),
            sync_each,
            max_maps,
            maps: AtomicUsize::new(0),
            mapped_bytes: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            held_bytes: AtomicU64::new(0),
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
        let mapped = self.keep(&f, file, bytes.len() as u64, crc, Some(bytes));
        if !self.sync_each {
            self.dirty.lock().push(f);
        }
        mapped.inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }

    /// Maps an existing payload file of `len` bytes whose checksum is `crc`, or,
    /// when `max_maps` mappings are live, reads it into the heap.
    pub(crate) fn map(
        self: &Arc<Self>,
        f: &File,
        file: u64,
        len: u64,
        crc: u32,
    ) -> std::io::Result<Bytes> {
        self.keep(f, file, len, crc, None)
    }

    /// [`Files::map`], where `content`, when given, is the file's bytes already in
    /// memory (copied rather than read back past the cap).
    fn keep(
        self: &Arc<Self>,
        f: &File,
        file: u64,
        len: u64,
        crc: u32,
        content: Option<&[u8]>,
    ) -> std::io::Result<Bytes> {
        let slot = self
            .maps
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_maps).then_some(n + 1)
            })
            .is_ok();
        let backing = if slot {
            // SAFETY: see the module doc: the file is this process's alone, never
            // written or truncated after this point; unlinking keeps the mapping valid.
            #[allow(unsafe_code)]
            let mapped = unsafe { Mmap::map(f) };
            match mapped {
                Ok(map) => Backing::Mapped(map),
                Err(e) => {
                    self.maps.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
            }
        } else {
            let heap: Box<[u8]> = match content {
                Some(bytes) => bytes.into(),
                None => {
                    let n = usize::try_from(len).map_err(std::io::Error::other)?;
                    let mut buf = vec![0u8; n];
                    f.read_exact_at(&mut buf, 0)?;
                    buf.into()
                }
            };
            Backing::Read(heap)
        };
        let frozen = match &backing {
            Backing::Mapped(map) => Some(crate::frozen::freeze(map)),
            Backing::Read(_) => None,
        };
        let payload = Payload {
            _frozen: frozen,
            backing,
            file,
            files: Arc::clone(self),
        };
        if payload.as_ref().len() as u64 != len {
            // Dropping it releases its slot and its counts (and removes nothing:
            // the caller decides about the file).
            return Err(std::io::Error::other("payload file length changed"));
        }
        match &payload.backing {
            Backing::Mapped(_) => self.mapped_bytes.fetch_add(len, Ordering::Relaxed),
            Backing::Read(_) => {
                self.held.fetch_add(1, Ordering::Relaxed);
                self.held_bytes.fetch_add(len, Ordering::Relaxed)
            }
        };
        let info = FileInfo { file, len, crc };
        self.live
            .lock()
            .insert(payload.as_ref().as_ptr() as usize, info);
        Ok(Bytes::from_owner(payload))
    }

    /// Mapped and heap-held payloads alive now.
    pub(crate) fn counts(&self) -> PayloadCounts {
        PayloadCounts {
            mapped: self.maps.load(Ordering::Relaxed),
            mapped_bytes: self.mapped_bytes.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            held_bytes: self.held_bytes.load(Ordering::Relaxed),
        }
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

    /// Payloads alive now, mapped or held in the heap.
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
        let mapped = self.files.keep(&f, self.file, self.len, crc, None);
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

/// Where a payload's bytes are: its file's mapping, or a heap copy past the cap.
enum Backing {
    Mapped(Mmap),
    Read(Box<[u8]>),
}

/// The owner of one payload inside a `Bytes`.
struct Payload {
    /// A mapping's entry in [`crate::frozen`] (its file is never written again);
    /// declared before `backing` so it leaves the record before the unmap.
    _frozen: Option<crate::frozen::Frozen>,
    backing: Backing,
    file: u64,
    files: Arc<Files>,
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        match &self.backing {
            Backing::Mapped(map) => map,
            Backing::Read(heap) => heap,
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let (ptr, len) = (self.as_ref().as_ptr() as usize, self.as_ref().len() as u64);
        let files = &self.files;
        // Only a registered payload was counted (see `Files::keep`).
        let registered = files
            .live
            .lock()
            .remove(&ptr)
            .is_some_and(|i| i.file == self.file);
        match &self.backing {
            Backing::Mapped(_) => {
                files.maps.fetch_sub(1, Ordering::AcqRel);
                if registered {
                    files.mapped_bytes.fetch_sub(len, Ordering::Relaxed);
                }
            }
            Backing::Read(_) if registered => {
                files.held.fetch_sub(1, Ordering::Relaxed);
                files.held_bytes.fetch_sub(len, Ordering::Relaxed);
            }
            Backing::Read(_) => {}
        }
        if !registered {
            // A length mismatch in `keep`: the caller decides about the file.
            return;
        }
        if !self.files.sealed.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(Files::path(&self.files.dir, self.file));
        }
    }
}
