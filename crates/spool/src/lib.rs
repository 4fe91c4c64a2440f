//! dvrclip's spool: what a restart must not lose, on a filesystem. Chunk payloads
//! are files the server maps and serves from (`payload`; each mapping is listed in
//! [`frozen`] so the server may send its pages by reference), and one checksummed
//! journal (`journal`, framed by `record`) records every commit the engine reports
//! through [`dvrclip_engine::persist::Persist`]: streams with their keys, inits,
//! chunks, chunks leaving the ring, clips. At start-up [`Spool::open`] folds the
//! journal, maps and verifies each payload (`recover`), drops a torn tail and
//! anything failing verification (logged, counted), writes a compacted journal, and
//! hands the engine a [`dvrclip_engine::persist::Restore`].
//!
//! The same records, with the chunk payloads after them, are what a cluster node
//! ships of a stream's DVR to an object store, folded the same way when another node
//! restores it ([`shipped`]).
//!
//! Where the directory lives decides what survives: on tmpfs (`/dev/shm`) a process
//! restart loses nothing and costs no disk I/O; on a disk it also survives a reboot.
//! Durability ([`SyncPolicy`]): `OnAck` syncs each payload and journal record before
//! the engine call returns (so before the upload's 201); `Batch` syncs once a second,
//! so a power cut (not a crash: the kernel keeps what was written) may lose the last
//! second of uploads and clip changes.
//!
//! One journal for everything rather than a file per stream and per clip: one
//! append and (with `OnAck`) one sync per commit whatever its kind, one torn-tail
//! rule, and the order of a clip after the chunks it names is kept by the file.
//! The journal grows by ~300 bytes per chunk; it is compacted at every start and,
//! while running, by the background thread whenever it has doubled (past 32 MiB,
//! [`SpoolOptions::compact_min_bytes`]) since the last compaction: what is alive is folded in memory as records are
//! appended, so a compaction writes it without reading the journal.
//!
//! Why crc32c (`crc-fast`): already in the build through `object_store`, and
//! hardware-assisted (SSE4.2 / ARMv8 CRC), so verifying a 1 h DVR's gigabytes at
//! start-up costs a fraction of a second.

pub mod frozen;
mod hook;
mod journal;
mod payload;
pub mod record;
mod recover;
pub mod shipped;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dvrclip_engine::persist::Restore;
use dvrclip_engine::{InitSegment, WallTime};
use parking_lot::Mutex;

pub use hook::clip_record;
use journal::Journal;
use payload::Files;
pub use payload::{PayloadCounts, PayloadWriter};
pub use recover::RecoveryReport;

/// When what the spool writes reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Before the engine call returns: an acknowledged upload survives a power cut.
    OnAck,
    /// Once a second, in the background: a power cut may lose the last second.
    Batch,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on-ack" => Ok(SyncPolicy::OnAck),
            "batch" => Ok(SyncPolicy::Batch),
            _ => Err(format!("spool sync {s:?}: expected on-ack or batch")),
        }
    }
}

/// How a spool runs: [`Spool::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// When writes reach stable storage.
    pub sync: SyncPolicy,
    /// Payload files mapped at once at most; past it payloads are read into the
    /// heap (see `payload`). Default [`DEFAULT_MAX_MAPS`].
    pub max_maps: usize,
    /// The journal is compacted while running once it passes twice its size after
    /// the last compaction and at least this, bytes. Default 32 MiB.
    pub compact_min_bytes: u64,
}

/// Payload mappings at most by default: half of Linux's default
/// `vm.max_map_count` (65,530), which thread stacks, the allocator and libraries
/// share.
pub const DEFAULT_MAX_MAPS: usize = 32_768;

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            sync: SyncPolicy::Batch,
            max_maps: DEFAULT_MAX_MAPS,
            compact_min_bytes: COMPACT_MIN_BYTES,
        }
    }
}

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system error, with the path.
    #[error("spool {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the spool.
    #[error("spool {0} is in use by another process")]
    Locked(PathBuf),
    /// The journal is not one of ours.
    #[error("spool {0}: the journal is not a dvrclip journal")]
    NotAJournal(PathBuf),
    /// The engine refused what was recovered.
    #[error("spool: restoring the engine: {0}")]
    Restore(#[from] dvrclip_engine::Error),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Journal appends that failed (the change lives in memory only).
    pub journal_errors: AtomicU64,
    /// Payloads refused (no space).
    pub refused: AtomicU64,
    /// Syncs that failed.
    pub sync_errors: AtomicU64,
    /// Journal compactions done while running.
    pub compactions: AtomicU64,
    /// Clips the engine could not restore at start-up for want of their media
    /// ([`dvrclip_engine::persist::RestoreReport::clips_lost`]).
    pub clips_lost: AtomicU64,
}

/// Init segments the spool has recorded, by the address of their `Arc`.
#[derive(Debug, Default)]
struct InitIds {
    next: u64,
    by_ptr: std::collections::HashMap<usize, (Weak<InitSegment>, u64)>,
}

impl InitIds {
    fn id_of(&self, init: &Arc<InitSegment>) -> Option<u64> {
        let (weak, id) = self.by_ptr.get(&(Arc::as_ptr(init) as usize))?;
        (weak.as_ptr() == Arc::as_ptr(init) && weak.strong_count() > 0).then_some(*id)
    }

    fn insert(&mut self, id: u64, init: &Arc<InitSegment>) {
        if self.by_ptr.len() > 4096 {
            self.by_ptr.retain(|_, (w, _)| w.strong_count() > 0);
        }
        self.by_ptr
            .insert(Arc::as_ptr(init) as usize, (Arc::downgrade(init), id));
    }
}

/// An open spool directory. Give it to the engine as its
/// [`dvrclip_engine::persist::Persist`].
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    files: Arc<Files>,
    journal: Journal,
    inits: Mutex<InitIds>,
    policy: SyncPolicy,
    /// Counters.
    pub stats: SpoolStats,
    /// What recovery found when the spool was opened.
    pub recovery: RecoveryReport,
    /// What is alive, folded from every record appended: what a compaction writes.
    live: Mutex<recover::Fold>,
    /// The journal is compacted when it grows past this, bytes.
    compact_at: AtomicU64,
    /// ... and never below this.
    compact_min: u64,
    _lock: File,
}

/// The journal is compacted while running when it passes twice its size after the
/// last compaction, and at least this.
const COMPACT_MIN_BYTES: u64 = 32 << 20;

/// What [`Spool::open`] gives: the spool, what to restore, what recovery found.
#[derive(Debug)]
pub struct Opened {
    /// The spool, ready for new commits.
    pub spool: Arc<Spool>,
    /// For [`dvrclip_engine::Engine::restore`].
    pub restore: Restore,
    /// What recovery found.
    pub report: RecoveryReport,
}

impl Spool {
    /// Opens (creating) the spool at `dir`, recovers what it holds as of `now`, and
    /// compacts its journal. A second process on the same directory is refused.
    pub fn open(dir: &Path, policy: SyncPolicy, now: WallTime) -> Result<Opened, SpoolError> {
        let options = SpoolOptions {
            sync: policy,
            ..SpoolOptions::default()
        };
        Spool::open_with(dir, options, now)
    }

    /// [`Spool::open`] with every option.
    pub fn open_with(
        dir: &Path,
        options: SpoolOptions,
        now: WallTime,
    ) -> Result<Opened, SpoolError> {
        let policy = options.sync;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        let flock = rustix::fs::FlockOperation::NonBlockingLockExclusive;
        if rustix::fs::flock(&lock, flock).is_err() {
            return Err(SpoolError::Locked(dir.to_owned()));
        }
        let journal_path = dir.join("journal");
        let read = journal::read(&journal_path).map_err(|e| match e {
            journal::JournalError::Io(source) => SpoolError::Io {
                path: journal_path.clone(),
                source,
            },
            journal::JournalError::NotAJournal { path } => SpoolError::NotAJournal(path),
        })?;
        let mut report = RecoveryReport {
            records: read.records.len(),
            torn_bytes: read.torn_bytes,
            ..RecoveryReport::default()
        };
        if read.torn_bytes > 0 {
            tracing::warn!(
                bytes = read.torn_bytes,
                error = ?read.error,
                "spool: journal tail is not a whole record (a write cut by a crash); dropped"
            );
        }
        let max_recorded = read
            .records
            .iter()
            .filter_map(|r| match r {
                record::Record::Chunk(c) => Some(c.file),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let next_file = recover::max_file_id(dir).max(max_recorded) + 1;
        let files = Files::new(
            dir,
            next_file,
            policy == SyncPolicy::OnAck,
            options.max_maps,
        )
        .map_err(io(dir))?;
        let fold = recover::Fold::of(read.records);
        let recovered = recover::build(fold, &files, now, &mut report);
        let journal = Journal::rewrite(
            &journal_path,
            &recovered.snapshot,
            policy == SyncPolicy::OnAck,
        )
        .map_err(|e| match e {
            journal::JournalError::Io(source) => SpoolError::Io {
                path: journal_path.clone(),
                source,
            },
            journal::JournalError::NotAJournal { path } => SpoolError::NotAJournal(path),
        })?;
        let journal_len = journal.len();
        let mut inits = InitIds {
            next: recovered.next_init,
            ..InitIds::default()
        };
        for (id, init) in &recovered.inits {
            inits.insert(*id, init);
        }
        let spool = Arc::new(Spool {
            dir: dir.to_owned(),
            files,
            journal,
            inits: Mutex::new(inits),
            policy,
            stats: SpoolStats::default(),
            recovery: recovered.report,
            compact_at: AtomicU64::new(options.compact_min_bytes.max(2 * journal_len)),
            compact_min: options.compact_min_bytes,
            live: Mutex::new(recover::Fold::of(recovered.snapshot)),
            _lock: lock,
        });
        let weak = Arc::downgrade(&spool);
        let _ = std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || background(weak));
        Ok(Opened {
            spool,
            restore: recovered.restore,
            report: recovered.report,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sync policy.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Puts everything written so far on stable storage.
    pub fn sync(&self) -> std::io::Result<()> {
        self.files.sync_dirty()?;
        self.journal.sync()
    }

    /// For a stopping process: no payload file is removed from now on (the engine's
    /// drops must not empty the spool the next process restores), and everything is
    /// synced.
    pub fn seal(&self) -> std::io::Result<()> {
        self.files.seal();
        self.sync()
    }

    /// A new payload file to write an arriving segment into; the engine's
    /// `place_payload` keeps what it maps as it is.
    pub fn payload_writer(&self) -> std::io::Result<PayloadWriter> {
        PayloadWriter::new(&self.files)
    }

    /// Seals the spool (no file removed, as [`Spool::seal`] without the sync) if the
    /// process panics: a panic that unwinds through the engine's owner must not
    /// empty the spool the next process restores. Installs a panic hook that then
    /// calls the previous one.
    pub fn seal_on_panic(self: &Arc<Self>) {
        let files = Arc::downgrade(&self.files);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(files) = files.upgrade() {
                files.seal();
            }
            previous(info);
        }));
    }

    /// Records what the engine's restore of this spool found, for `/metrics`.
    pub fn note_restore(&self, report: &dvrclip_engine::persist::RestoreReport) {
        self.stats
            .clips_lost
            .store(report.clips_lost as u64, Ordering::Relaxed);
    }

    /// Payloads alive now (mapped or, past the cap, held in the heap).
    pub fn live_payloads(&self) -> usize {
        self.files.live_count()
    }

    /// Payloads mapped and held in the heap now, with their bytes.
    pub fn payload_counts(&self) -> PayloadCounts {
        self.files.counts()
    }

    /// Journal size, bytes.
    pub fn journal_bytes(&self) -> u64 {
        self.journal.len()
    }

    /// `/metrics` lines (Prometheus text) for the spool.
    pub fn render_metrics(&self) -> String {
        let r = &self.recovery;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counts = self.payload_counts();
        let lines: [(&str, &str, &str, u64); 15] = [
            (
                "dvrclip_spool_payload_files",
                "gauge",
                "Chunk payload files alive now (mapped or held in memory).",
                self.live_payloads() as u64,
            ),
            (
                "dvrclip_spool_payload_maps",
                "gauge",
                "Chunk payload files mapped now (bounded by --spool-max-maps).",
                counts.mapped as u64,
            ),
            (
                "dvrclip_spool_payload_mapped_bytes",
                "gauge",
                "Bytes of the chunk payload files mapped now.",
                counts.mapped_bytes,
            ),
            (
                "dvrclip_spool_payload_held",
                "gauge",
                "Chunk payloads read into memory because --spool-max-maps mappings were live.",
                counts.held as u64,
            ),
            (
                "dvrclip_spool_payload_held_bytes",
                "gauge",
                "Bytes of the chunk payloads held in memory past the mapping cap.",
                counts.held_bytes,
            ),
            (
                "dvrclip_spool_compactions_total",
                "counter",
                "Journal compactions while running.",
                load(&self.stats.compactions),
            ),
            (
                "dvrclip_spool_journal_bytes",
                "gauge",
                "Bytes in the spool's journal.",
                self.journal_bytes(),
            ),
            (
                "dvrclip_spool_journal_errors_total",
                "counter",
                "Journal appends that failed (kept in memory only).",
                load(&self.stats.journal_errors),
            ),
            (
                "dvrclip_spool_refused_total",
                "counter",
                "Payloads the spool refused (no space).",
                load(&self.stats.refused),
            ),
            (
                "dvrclip_spool_sync_errors_total",
                "counter",
                "Background syncs that failed.",
                load(&self.stats.sync_errors),
            ),
            (
                "dvrclip_spool_recovered_chunks",
                "gauge",
                "Chunk payloads verified at start-up.",
                r.chunks_verified as u64,
            ),
            (
                "dvrclip_spool_recovery_dropped_chunks",
                "gauge",
                "Chunk payloads failing verification at start-up, dropped.",
                r.chunks_failed as u64,
            ),
            (
                "dvrclip_spool_recovery_torn_bytes",
                "gauge",
                "Bytes of a torn journal tail dropped at start-up.",
                r.torn_bytes,
            ),
            (
                "dvrclip_spool_recovery_lost_clips",
                "gauge",
                "Clips whose media was lost at start-up (reported with state lost, never served).",
                load(&self.stats.clips_lost),
            ),
            (
                "dvrclip_spool_recovery_orphans_removed",
                "gauge",
                "Payload files no record named at start-up (uploads cut by a crash), removed.",
                r.orphans_removed as u64,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, v) in lines {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        out
    }

    /// Rewrites the journal with only what is alive now (streams, their inits and
    /// counters, chunks whose payload files are still mapped, clips). Appends wait
    /// for it; a failure keeps the old journal. The background thread runs it when
    /// the journal has doubled since the last one (and is past 32 MiB).
    pub fn compact(&self) -> std::io::Result<()> {
        let live_files = self.files.live_files();
        let len = self
            .journal
            .compact(|| self.live.lock().compact(&live_files))?;
        self.compact_at
            .store(self.compact_min.max(2 * len), Ordering::Relaxed);
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Where the journal is.
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }
}

/// Once a second while the spool lives, off the engine's path: syncs (`Batch`),
/// and compacts the journal once it has doubled.
fn background(spool: Weak<Spool>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(spool) = spool.upgrade() else { return };
        if spool.policy == SyncPolicy::Batch
            && let Err(e) = spool.sync()
        {
            spool.stats.sync_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "spool: sync failed");
        }
        if spool.journal.len() > spool.compact_at.load(Ordering::Relaxed)
            && let Err(e) = spool.compact()
        {
            // Not again before the journal doubles once more.
            let again = 2 * spool.journal.len();
            spool.compact_at.store(again, Ordering::Relaxed);
            tracing::warn!(error = %e, "spool: journal compaction failed; appending on");
        }
    }
}
