//! The store handle, snapshots, the group-commit writer and recovery.
//!
//! Concurrency model:
//!
//! * The current [`Catalog`] sits behind a read/write lock. Readers hold the
//!   read lock only to copy `Arc`s of segment lists; the commit writer holds
//!   the write lock only to validate and apply one transaction at a time.
//! * All commits go through one writer thread. It drains every queued commit,
//!   validates each against the state left by the ones before it, applies it
//!   under a seq that is not yet published, appends the WAL records, issues a
//!   single fsync for the whole group, and only then publishes the highest seq
//!   (`latest`) and wakes the committers. A commit is therefore never visible
//!   before it is durable, and concurrent committers share fsyncs.
//! * Readers register the seq they read at in a registry ("pins"); retention
//!   holds live there too. The retention floor is the minimum of pins, holds
//!   and `latest`; history below it is reclaimed by the maintenance thread.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{error, info, warn};

use crate::catalog::{changes_of, scan_view, schema_of, Catalog, TableEntry, TableView};
use crate::checkpoint::{
    read_manifest, read_segment_file, write_manifest, write_segment_file, Manifest,
    ManifestSegment, ManifestTable,
};
use crate::codec::{decode_ops, Op};
use crate::error::{Result, StorageError};
use crate::residency::ResidentPool;
use crate::segment::LIVE;
use crate::txn::Transaction;
use crate::wal::{list_wal_files, scan_wal_file, truncate_wal_file, WalWriter};
use crate::{ChangeSet, CommitInfo, Seq, StoreOptions, TableId, TableStats};

/// Stop draining the commit queue into one group beyond this many bytes, so
/// one huge group does not delay small commits queued behind it for long.
const MAX_GROUP_BYTES: usize = 64 << 20;
/// How often the maintenance thread looks for work when not woken.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(200);

/// Memory held by the store, by component, in bytes (approximate: Arrow
/// buffer sizes, not allocator overhead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Column data of checkpointed segments kept in memory.
    pub checkpointed_data: u64,
    /// What bounds `checkpointed_data` (`StoreOptions::resident_data_bytes`).
    pub checkpointed_data_limit: u64,
    /// Column data written since the last checkpoint (always in memory).
    pub recent_data: u64,
    /// Row ids and creation seqs (as runs) and deletion stamps of every
    /// stored segment.
    pub row_versions: u64,
    /// Min/max statistics of segment files, kept for pruning scans.
    pub file_statistics: u64,
}

/// Counters describing what the store has done; cheap to read, meant for
/// monitoring, benchmarks and tests (e.g. to show that fsyncs are shared).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    /// Write transactions committed since open.
    pub commits: u64,
    /// WAL flush+fsync rounds (one per commit group).
    pub wal_syncs: u64,
    /// WAL bytes written since open.
    pub wal_bytes: u64,
    /// Segments read by `changes()` calls: shows change extraction touches
    /// only the segments holding changed rows.
    pub change_segments_read: u64,
    /// Checkpoints completed since open.
    pub checkpoints: u64,
    /// Segments produced or removed by compaction since open.
    pub compactions: u64,
    /// Bytes of column data evicted from memory since open.
    pub evicted_bytes: u64,
    /// Bytes of checkpointed column data now in memory (what
    /// `StoreOptions::resident_data_bytes` bounds).
    pub resident_bytes: u64,
    /// Reads of evicted column data from segment files since open.
    pub segment_file_reads: u64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) commits: AtomicU64,
    pub(crate) wal_syncs: AtomicU64,
    pub(crate) wal_bytes: AtomicU64,
    pub(crate) change_segments_read: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) evicted_bytes: AtomicU64,
    /// How long each WAL flush+fsync round took.
    pub(crate) wal_sync_latency: crate::histogram::Histogram,
}

#[derive(Default)]
pub(crate) struct Registry {
    /// Seq -> number of live snapshots/transactions reading at it.
    pins: BTreeMap<Seq, usize>,
    holds: HashMap<String, Seq>,
}

/// Where a committer waits for its outcome.
pub(crate) enum Reply {
    Async(tokio::sync::oneshot::Sender<Result<CommitInfo>>),
    Blocking(mpsc::SyncSender<Result<CommitInfo>>),
}

impl Reply {
    fn send(self, r: Result<CommitInfo>) {
        // A committer that gave up waiting is not an error.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// A prepared write transaction queued for the writer.
pub(crate) struct CommitRequest {
    pub(crate) snap: Seq,
    pub(crate) ops: Vec<Op>,
    /// WAL record body, encoded by the committer's thread so the writer only
    /// copies bytes.
    pub(crate) body: Vec<u8>,
    pub(crate) body_crc: crc32fast::Hasher,
    /// Segments for the non-empty inserts, in op order, built by the
    /// committer so the writer only links them in.
    pub(crate) segments: Vec<crate::segment::Segment>,
    /// Keys the commit adds to unique indexes, checked by the writer.
    pub(crate) unique_keys: Vec<crate::unique::CommitKeys>,
    pub(crate) reply: Reply,
}

enum Msg {
    Commit(CommitRequest),
    Shutdown,
}

#[derive(Default)]
struct MaintState {
    wake: bool,
    shutdown: bool,
}

/// Shared state; owned by the [`Store`], snapshots, transactions and the
/// background threads.
pub(crate) struct Inner {
    pub(crate) opts: StoreOptions,
    pub(crate) wal_dir: PathBuf,
    pub(crate) segment_dir: PathBuf,
    /// Bounds the column data of persisted segments kept in memory.
    pub(crate) pool: Arc<ResidentPool>,
    pub(crate) catalog: RwLock<Catalog>,
    /// Newest durable, visible commit.
    pub(crate) latest: AtomicU64,
    /// Oldest seq readers may still ask for (mirrors `Catalog::retained_floor`
    /// but is read under the registry lock).
    pub(crate) retained_floor: AtomicU64,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) wal: Mutex<WalWriter>,
    queue: Mutex<Option<mpsc::Sender<Msg>>>,
    pub(crate) next_row_id: AtomicU64,
    pub(crate) next_table_id: AtomicU64,
    pub(crate) next_segment_id: AtomicU64,
    last_commit_time: AtomicI64,
    /// Set by the first write commit after open: no reclamation before the
    /// upper layer had a chance to re-register its retention holds.
    pub(crate) reclaim_enabled: AtomicBool,
    maint: Mutex<MaintState>,
    maint_cv: Condvar,
    pub(crate) checkpoint_lock: Mutex<()>,
    pub(crate) compaction_lock: Mutex<()>,
    pub(crate) metrics: Metrics,
    _lock_file: std::fs::File,
}

/// Logs and aborts the process. Used when the WAL cannot be written or
/// synced: after a failed fsync the kernel may have dropped the dirty pages,
/// so retrying could acknowledge data that is not on disk (PostgreSQL PANICs
/// for the same reason). Recovery from the WAL on restart is the safe path.
pub(crate) fn fatal(what: &str, err: &dyn std::fmt::Display) -> ! {
    error!("PANIC: {what}: {err}; aborting to avoid acknowledging lost data");
    eprintln!("freshet-storage PANIC: {what}: {err}; aborting to avoid acknowledging lost data");
    std::process::abort()
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Inner {
    pub(crate) fn latest(&self) -> Seq {
        self.latest.load(Ordering::SeqCst)
    }

    /// Registers a reader at the latest seq.
    pub(crate) fn pin_latest(self: &Arc<Self>) -> Pin {
        let mut reg = self.registry.lock();
        let seq = self.latest();
        *reg.pins.entry(seq).or_default() += 1;
        Pin {
            inner: self.clone(),
            seq,
        }
    }

    /// Registers a reader at `seq`, which must be retained and committed.
    pub(crate) fn pin_at(self: &Arc<Self>, seq: Seq) -> Result<Pin> {
        let mut reg = self.registry.lock();
        let latest = self.latest();
        if seq > latest {
            return Err(StorageError::FutureSeq {
                requested: seq,
                latest,
            });
        }
        let floor = self.retained_floor.load(Ordering::SeqCst);
        if seq < floor {
            return Err(StorageError::SnapshotTooOld {
                requested: seq,
                floor,
            });
        }
        *reg.pins.entry(seq).or_default() += 1;
        Ok(Pin {
            inner: self.clone(),
            seq,
        })
    }

    pub(crate) fn submit(&self, req: CommitRequest) -> Result<()> {
        let q = self.queue.lock();
        let tx = q.as_ref().ok_or(StorageError::Closed)?;
        tx.send(Msg::Commit(req)).map_err(|_| StorageError::Closed)
    }

    fn next_commit_time(&self) -> i64 {
        let now = now_micros();
        let prev = self.last_commit_time.fetch_max(now, Ordering::SeqCst);
        prev.max(now)
    }

    /// Processes one group of queued commits; see the module documentation.
    fn commit_group(&self, reqs: Vec<CommitRequest>) {
        let mut wal = self.wal.lock();
        let mut outcomes = Vec::with_capacity(reqs.len());
        let mut records = Vec::new();
        let mut seq = self.latest();
        {
            let mut cat = self.catalog.write();
            for req in reqs {
                if let Err(e) = cat.validate(req.snap, &req.ops, &req.unique_keys) {
                    outcomes.push((req.reply, Err(e)));
                    continue;
                }
                seq += 1;
                let time = self.next_commit_time();
                if let Err(e) = cat.apply(
                    seq,
                    time,
                    &req.ops,
                    req.segments,
                    &self.next_segment_id,
                    req.unique_keys,
                ) {
                    // The catalog may be half-modified; only recovery from the
                    // WAL (which does not hold this commit) is safe.
                    fatal("applying a validated commit failed", &e);
                }
                outcomes.push((
                    req.reply,
                    Ok(CommitInfo {
                        seq,
                        commit_time_micros: time,
                    }),
                ));
                records.push((seq, time, req.body, req.body_crc));
            }
        }
        if !records.is_empty() {
            let mut bytes = 0u64;
            for (s, t, body, crc) in &records {
                bytes += body.len() as u64 + 28;
                if let Err(e) = wal.append(*s, *t, body, crc) {
                    fatal("could not write to the WAL", &e);
                }
            }
            let sync_started = std::time::Instant::now();
            if let Err(e) = wal.sync() {
                fatal("could not fsync the WAL", &e);
            }
            self.metrics
                .wal_sync_latency
                .observe(sync_started.elapsed());
            self.latest.store(seq, Ordering::SeqCst);
            self.metrics
                .commits
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            self.metrics.wal_syncs.fetch_add(1, Ordering::Relaxed);
            self.metrics.wal_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.reclaim_enabled.store(true, Ordering::SeqCst);
            if wal.bytes_since_checkpoint > self.opts.checkpoint_wal_bytes {
                self.wake_maintenance();
            }
        }
        drop(wal);
        for (reply, r) in outcomes {
            reply.send(r);
        }
    }

    fn wake_maintenance(&self) {
        let mut st = self.maint.lock();
        st.wake = true;
        self.maint_cv.notify_one();
    }

    /// The seq below which no reader, transaction or hold needs history.
    pub(crate) fn advance_floor(&self) -> Seq {
        let reg = self.registry.lock();
        let mut floor = self.latest();
        if let Some((s, _)) = reg.pins.first_key_value() {
            floor = floor.min(*s);
        }
        for s in reg.holds.values() {
            floor = floor.min(*s);
        }
        let cur = self.retained_floor.load(Ordering::SeqCst);
        let floor = floor.max(cur);
        self.retained_floor.store(floor, Ordering::SeqCst);
        floor
    }

    /// Bytes of column data in segments no checkpoint has written yet.
    pub(crate) fn unpersisted_bytes(&self) -> u64 {
        let cat = self.catalog.read();
        cat.tables
            .values()
            .flat_map(|t| t.segments.iter())
            .filter(|s| s.file_name().is_none())
            .map(|s| s.data_bytes() as u64)
            .sum()
    }

    /// Writes a checkpoint; see [`Store::checkpoint`].
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let _guard = self.checkpoint_lock.lock();
        // Capture a consistent state at `seq` while no commit is in flight.
        let (seq, wal_first, manifest_base, captured) = {
            let mut wal = self.wal.lock();
            let seq = self.latest();
            let wal_first = wal.rotate(seq + 1)?;
            let cat = self.catalog.read();
            let captured: Vec<(TableId, Vec<_>, Vec<_>, [Seq; 4])> = cat
                .tables
                .iter()
                .map(|(id, t)| {
                    (
                        *id,
                        t.columns.clone(),
                        t.segments.clone(),
                        [
                            t.created_seq,
                            t.dropped_seq,
                            t.last_write_seq,
                            t.last_ddl_seq,
                        ],
                    )
                })
                .collect();
            let base = Manifest {
                seq,
                retained_floor: cat.retained_floor,
                next_row_id: self.next_row_id.load(Ordering::SeqCst),
                next_table_id: self.next_table_id.load(Ordering::SeqCst),
                next_segment_id: self.next_segment_id.load(Ordering::SeqCst),
                tables: Vec::new(),
                meta: cat
                    .meta
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                commit_times: cat.commit_times.iter().copied().collect(),
            };
            (seq, wal_first, base, captured)
        };
        let mut manifest = manifest_base;
        let mut written = 0usize;
        for (id, columns, segments, [created, dropped, last_write, last_ddl]) in captured {
            let mut msegs = Vec::with_capacity(segments.len());
            for seg in &segments {
                let file = match seg.file_name() {
                    Some(f) => f.to_owned(),
                    None => {
                        // Only this thread (holding the checkpoint lock)
                        // writes segment files, so the check above cannot
                        // race with another writer.
                        let (f, bytes, bounds) =
                            write_segment_file(&self.segment_dir, seg, self.opts.fsync)?;
                        written += 1;
                        let path = self.segment_dir.join(&f);
                        seg.persist(self.pool.open_file(f.clone(), path, bytes, bounds));
                        f
                    }
                };
                let deletions = seg
                    .deletions()
                    .into_iter()
                    .filter(|(_, d)| *d <= seq)
                    .collect();
                msegs.push(ManifestSegment {
                    id: seg.id,
                    file,
                    rows: seg.num_rows() as u64,
                    deletions,
                    stamps: Some((seg.row_ids.clone(), seg.created.clone())),
                });
            }
            manifest.tables.push(ManifestTable {
                id,
                created_seq: created,
                // A drop after `seq` is replayed from the WAL.
                dropped_seq: if dropped > seq { LIVE } else { dropped },
                last_write_seq: last_write.min(seq),
                last_ddl_seq: last_ddl.min(seq),
                columns: columns.into_iter().filter(|c| c.added_seq <= seq).collect(),
                segments: msegs,
            });
        }
        if self.opts.fsync && written > 0 {
            crate::wal::fsync_dir(&self.segment_dir)?;
        }
        write_manifest(&self.opts.data_dir, &manifest.encode()?, self.opts.fsync)?;
        // Old WAL files only hold records <= seq; segment files not listed
        // in the new manifest belong to compacted-away segments, and can go
        // once no scan holds those segments any more (a later checkpoint
        // removes the ones still held now).
        for (first, path) in list_wal_files(&self.wal_dir)? {
            if first < wal_first {
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!("could not remove old WAL file {}: {e}", path.display());
                }
            }
        }
        let listed: std::collections::HashSet<&str> = manifest
            .tables
            .iter()
            .flat_map(|t| t.segments.iter().map(|s| s.file.as_str()))
            .collect();
        if let Ok(rd) = std::fs::read_dir(&self.segment_dir) {
            for entry in rd.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !listed.contains(name) && !self.pool.is_open(name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        info!("checkpoint at seq {seq} written ({written} new segment files)");
        // The segments just written now count against the resident pool.
        crate::maintenance::evict(self);
        Ok(())
    }
}

/// Registration of a reader at one seq; unregisters on drop.
pub(crate) struct Pin {
    pub(crate) inner: Arc<Inner>,
    pub(crate) seq: Seq,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut reg = self.inner.registry.lock();
        if let Some(n) = reg.pins.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                reg.pins.remove(&self.seq);
            }
        }
    }
}

/// A consistent read-only view of the store at one seq.
///
/// Holding a snapshot pins its seq: nothing it can see is reclaimed until it
/// is dropped, so keep snapshots short-lived (a query), not open-ended.
pub struct Snapshot {
    pub(crate) pin: Pin,
}

impl Clone for Snapshot {
    /// Registers another reader at the same seq.
    fn clone(&self) -> Snapshot {
        let inner = &self.pin.inner;
        let mut reg = inner.registry.lock();
        *reg.pins.entry(self.pin.seq).or_default() += 1;
        Snapshot {
            pin: Pin {
                inner: inner.clone(),
                seq: self.pin.seq,
            },
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.pin.seq)
            .finish()
    }
}

impl Snapshot {
    /// The commit this snapshot reads at.
    pub fn seq(&self) -> Seq {
        self.pin.seq
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.pin.inner
    }

    pub(crate) fn view(&self, table: TableId) -> Result<TableView> {
        self.inner().catalog.read().view(table, self.seq())
    }

    /// Reads the rows of `table` visible at this snapshot.
    ///
    /// `projection` selects columns by index (all if `None`); with
    /// `with_row_ids` a [`crate::ROW_ID_COLUMN`] is appended last. Batches
    /// share buffers with the stored segments whenever a segment is entirely
    /// visible, so a full scan does not copy row data.
    pub fn scan(
        &self,
        table: TableId,
        projection: Option<&[usize]>,
        with_row_ids: bool,
    ) -> Result<Vec<RecordBatch>> {
        let view = self.view(table)?;
        scan_view(&view, self.seq(), projection, with_row_ids)
    }

    /// Like [`Snapshot::scan`], but segments evicted from memory are
    /// returned unread, to be read one at a time by the consumer (see
    /// [`crate::ScanParts`]).
    pub fn scan_parts(
        &self,
        table: TableId,
        projection: Option<&[usize]>,
        with_row_ids: bool,
    ) -> Result<crate::ScanParts> {
        let view = self.view(table)?;
        crate::scan::scan_parts(self, view, projection, with_row_ids)
    }

    /// The table's schema at this snapshot (without the row id column).
    pub fn table_schema(&self, table: TableId) -> Result<SchemaRef> {
        let cat = self.inner().catalog.read();
        let t = cat.table_at(table, self.seq())?;
        Ok(schema_of(&t.columns_at(self.seq())))
    }

    /// Ids of all tables visible at this snapshot, ascending.
    pub fn tables(&self) -> Vec<TableId> {
        let cat = self.inner().catalog.read();
        cat.tables
            .iter()
            .filter(|(_, t)| t.visible_at(self.seq()))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Value of a metadata key at this snapshot.
    pub fn get_meta(&self, key: &str) -> Option<Vec<u8>> {
        let cat = self.inner().catalog.read();
        cat.get_meta(key, self.seq()).map(|v| v.as_ref().clone())
    }

    /// All metadata entries whose key starts with `prefix`, sorted by key.
    pub fn scan_meta(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let cat = self.inner().catalog.read();
        cat.scan_meta(prefix, self.seq())
            .into_iter()
            .map(|(k, v)| (k, v.as_ref().clone()))
            .collect()
    }

    /// Row count and size of a table at this snapshot; see [`TableStats`].
    pub fn table_stats(&self, table: TableId) -> Result<TableStats> {
        let view = self.view(table)?;
        Ok(stats_of(&view, self.seq()))
    }
}

fn stats_of(view: &TableView, seq: Seq) -> TableStats {
    let mut st = TableStats {
        segments: view.segments.len(),
        ..TableStats::default()
    };
    for seg in &view.segments {
        st.bytes += seg.bytes() as u64;
        st.disk_bytes += seg.disk_bytes();
        if seg.min_created > seq {
            continue;
        }
        st.rows += match seg.visibility(seq) {
            None => seg.num_rows() as u64,
            Some(m) => m.true_count() as u64,
        };
    }
    st
}

/// The storage engine handle. Open once per data directory and share as
/// `Arc<Store>`; all methods take `&self` and are safe to call from any
/// thread, synchronous or async.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.opts.data_dir)
            .field("latest_seq", &self.inner.latest())
            .finish()
    }
}

fn create_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p)
        .map_err(|e| StorageError::io(format!("creating directory {}", p.display()), e))
}

impl Store {
    /// Opens (creating if needed) the store in `opts.data_dir` and recovers
    /// its state: the latest checkpoint plus every intact WAL record after it.
    /// A torn or corrupt record at the end of the WAL (a commit interrupted
    /// by a crash, hence never acknowledged) is truncated away.
    ///
    /// Nothing is reclaimed during or right after open: reclamation starts
    /// only after the first write commit, giving the upper layer time to
    /// re-register its retention holds.
    pub fn open(opts: StoreOptions) -> Result<Arc<Store>> {
        let data_dir = opts.data_dir.clone();
        let wal_dir = data_dir.join("wal");
        let segment_dir = data_dir.join("segments");
        create_dir(&wal_dir)?;
        create_dir(&segment_dir)?;
        let lock_path = data_dir.join("LOCK");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io("opening lock file", e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked(data_dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::io("locking data directory", e))
            }
        }
        let _ = std::fs::remove_file(data_dir.join("MANIFEST.tmp"));

        let pool = ResidentPool::new(opts.resident_data_bytes);
        let mut cat = Catalog::new();
        let mut latest: Seq = 0;
        let (mut next_row, mut next_table, mut next_seg) = (1u64, 1u64, 1u64);
        if let Some(m) = read_manifest(&data_dir)? {
            latest = m.seq;
            next_row = m.next_row_id;
            next_table = m.next_table_id;
            next_seg = m.next_segment_id;
            load_manifest(&mut cat, m, &segment_dir, &pool)?;
            info!(
                "loaded checkpoint at seq {latest} ({} tables)",
                cat.tables.len()
            );
        }
        let next_seg_atomic = AtomicU64::new(next_seg);
        let files = list_wal_files(&wal_dir)?;
        let mut replayed = 0u64;
        for (idx, (_, path)) in files.iter().enumerate() {
            let outcome = scan_wal_file(path, |rec| {
                if rec.seq <= latest {
                    return Ok(());
                }
                if rec.seq != latest + 1 {
                    return Err(StorageError::Corrupt(format!(
                        "WAL record seq {} follows seq {latest}",
                        rec.seq
                    )));
                }
                let ops = decode_ops(&rec.body)?;
                for op in &ops {
                    match op {
                        Op::CreateTable { table, .. } => next_table = next_table.max(table + 1),
                        Op::Insert { row_ids, .. } => {
                            if let Some(m) = row_ids.max() {
                                next_row = next_row.max(m + 1);
                            }
                        }
                        _ => {}
                    }
                }
                cat.apply(
                    rec.seq,
                    rec.time_micros,
                    &ops,
                    Vec::new(),
                    &next_seg_atomic,
                    Vec::new(),
                )?;
                latest = rec.seq;
                replayed += 1;
                Ok(())
            })?;
            if outcome.valid_len < outcome.file_len && outcome.tail_is_zero {
                // the preallocated end of the file that was current
                truncate_wal_file(path, outcome.valid_len)?;
            } else if outcome.valid_len < outcome.file_len {
                if idx + 1 != files.len() {
                    return Err(StorageError::Corrupt(format!(
                        "WAL file {} is damaged before its end at offset {}",
                        path.display(),
                        outcome.valid_len
                    )));
                }
                warn!(
                    "discarding torn WAL tail of {} bytes in {} (an unacknowledged commit interrupted by a crash)",
                    outcome.file_len - outcome.valid_len,
                    path.display()
                );
                truncate_wal_file(path, outcome.valid_len)?;
            }
        }
        cat.build_unique_indexes()?;
        let (max_table, max_row) = cat.max_ids();
        next_table = next_table.max(max_table + 1);
        next_row = next_row.max(max_row + 1);
        info!(
            "storage recovered: latest seq {latest}, {replayed} WAL record(s) replayed, {} table(s)",
            cat.tables.len()
        );
        let wal = WalWriter::open(&wal_dir, latest + 1, opts.fsync)?;
        let retained_floor = cat.retained_floor;
        let last_time = cat.commit_times.back().map(|(_, t)| *t).unwrap_or(0);
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            opts,
            wal_dir,
            segment_dir,
            pool,
            catalog: RwLock::new(cat),
            latest: AtomicU64::new(latest),
            retained_floor: AtomicU64::new(retained_floor),
            registry: Mutex::new(Registry::default()),
            wal: Mutex::new(wal),
            queue: Mutex::new(Some(tx)),
            next_row_id: AtomicU64::new(next_row),
            next_table_id: AtomicU64::new(next_table),
            next_segment_id: next_seg_atomic,
            last_commit_time: AtomicI64::new(last_time),
            reclaim_enabled: AtomicBool::new(false),
            maint: Mutex::new(MaintState::default()),
            maint_cv: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            metrics: Metrics::default(),
            _lock_file: lock_file,
        });
        let w = inner.clone();
        let writer = std::thread::Builder::new()
            .name("freshet-wal-writer".into())
            .spawn(move || writer_loop(w, rx))
            .map_err(|e| StorageError::io("spawning WAL writer thread", e))?;
        let m = inner.clone();
        let maint = std::thread::Builder::new()
            .name("freshet-maintenance".into())
            .spawn(move || maintenance_loop(m))
            .map_err(|e| StorageError::io("spawning maintenance thread", e))?;
        Ok(Arc::new(Store {
            inner,
            threads: Mutex::new(vec![writer, maint]),
        }))
    }

    /// The newest durable and visible commit.
    pub fn latest_seq(&self) -> Seq {
        self.inner.latest()
    }

    /// A read-only view at [`Store::latest_seq`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            pin: self.inner.pin_latest(),
        }
    }

    /// A read-only view at an older retained seq (time travel within the
    /// retention window). Fails for seqs newer than the latest commit or
    /// below the retention floor.
    pub fn snapshot_at(&self, seq: Seq) -> Result<Snapshot> {
        Ok(Snapshot {
            pin: self.inner.pin_at(seq)?,
        })
    }

    /// Starts a snapshot-isolated read-write transaction at the latest seq.
    pub fn begin(&self) -> Transaction {
        Transaction::new(self.snapshot())
    }

    /// Commit time (µs since the Unix epoch) of a retained commit.
    pub fn commit_timestamp(&self, seq: Seq) -> Option<i64> {
        if seq > self.latest_seq() {
            return None;
        }
        self.inner.catalog.read().commit_time(seq)
    }

    /// Declares that `holder` still needs history from `seq` on (e.g. a
    /// dynamic table that will ask for `changes(t, seq, ..)`), or removes the
    /// hold with `None`. Holds are not persisted: re-register them after
    /// [`Store::open`] before the first write commit.
    pub fn set_retention_hold(&self, holder: &str, seq: Option<Seq>) {
        let mut reg = self.inner.registry.lock();
        match seq {
            Some(s) => {
                reg.holds.insert(holder.to_string(), s);
            }
            None => {
                reg.holds.remove(holder);
            }
        }
    }

    /// The oldest seq that snapshots and change queries may still use.
    pub fn retention_floor(&self) -> Seq {
        self.inner.retained_floor.load(Ordering::SeqCst)
    }

    /// Rows of `table` inserted and deleted in `(from, to]`.
    ///
    /// Cost is proportional to the change: only segments created in the
    /// window (located by binary search) and segments holding rows deleted in
    /// the window (found through the per-commit deletion log) are read.
    /// `from` must be at or above the retention floor and `to` at most the
    /// latest seq; the table must exist at `to`.
    pub fn changes(&self, table: TableId, from: Seq, to: Seq) -> Result<ChangeSet> {
        if from > to {
            return Err(StorageError::InvalidArgument(format!(
                "change window ({from}, {to}] is empty"
            )));
        }
        self.inner.pin_at(to)?;
        let _pin = self.inner.pin_at(from)?;
        let (view, log) = {
            let cat = self.inner.catalog.read();
            let t: &TableEntry = cat.table_at(table, to)?;
            let a = t.delete_log.partition_point(|(s, _)| *s <= from);
            let b = t.delete_log.partition_point(|(s, _)| *s <= to);
            let log: Vec<_> = t.delete_log.range(a..b).cloned().collect();
            (
                TableView {
                    columns: t.columns_at(to),
                    segments: t.segments.clone(),
                },
                log,
            )
        };
        let (schema, inserted, deleted) = changes_of(
            &view,
            &log,
            from,
            to,
            &self.inner.metrics.change_segments_read,
        )?;
        Ok(ChangeSet {
            schema,
            inserted,
            deleted,
        })
    }

    /// Writes a checkpoint now: new segments to Parquet, the manifest
    /// atomically, then deletes WAL files the checkpoint covers. Also runs
    /// automatically once `checkpoint_wal_bytes` of WAL accumulate.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
    }

    /// Runs reclamation and compaction now instead of waiting for the
    /// background thread (the storage side of `VACUUM`). Unlike the
    /// background thread it does not wait for a first commit, so call it
    /// only after retention holds are registered.
    pub fn vacuum(&self) -> Result<()> {
        crate::maintenance::run(&self.inner)
    }

    /// Size statistics of `table` as of `seq` (which must be retained).
    pub fn table_stats(&self, table: TableId, seq: Seq) -> Result<TableStats> {
        self.snapshot_at(seq)?.table_stats(table)
    }

    /// What the store holds in memory now; see [`StoreMemory`].
    pub fn memory(&self) -> StoreMemory {
        let mut m = StoreMemory {
            checkpointed_data: self.inner.pool.used() as u64,
            checkpointed_data_limit: self.inner.pool.limit() as u64,
            ..StoreMemory::default()
        };
        let cat = self.inner.catalog.read();
        for t in cat.tables.values() {
            for seg in &t.segments {
                if seg.file_name().is_none() {
                    m.recent_data += seg.resident_bytes() as u64;
                }
                m.row_versions += seg.bookkeeping_bytes() as u64;
                m.file_statistics += seg.statistics_bytes() as u64;
            }
        }
        m
    }

    /// Counters for monitoring; see [`StoreMetrics`].
    pub fn metrics(&self) -> StoreMetrics {
        let m = &self.inner.metrics;
        StoreMetrics {
            commits: m.commits.load(Ordering::Relaxed),
            wal_syncs: m.wal_syncs.load(Ordering::Relaxed),
            wal_bytes: m.wal_bytes.load(Ordering::Relaxed),
            change_segments_read: m.change_segments_read.load(Ordering::Relaxed),
            checkpoints: m.checkpoints.load(Ordering::Relaxed),
            compactions: m.compactions.load(Ordering::Relaxed),
            evicted_bytes: m.evicted_bytes.load(Ordering::Relaxed),
            resident_bytes: self.inner.pool.used() as u64,
            segment_file_reads: self.inner.pool.file_reads(),
        }
    }

    /// How long the WAL flush+fsync rounds took (one observation per
    /// round, counted in [`StoreMetrics::wal_syncs`] too).
    pub fn wal_sync_latency(&self) -> crate::histogram::HistogramSnapshot {
        self.inner.metrics.wal_sync_latency.snapshot()
    }

    /// Stops accepting commits, lets queued ones finish (durably), and stops
    /// the background threads. Idempotent; also run on drop. Snapshots stay
    /// readable afterwards.
    pub fn close(&self) {
        let sender = self.inner.queue.lock().take();
        if let Some(tx) = sender {
            let _ = tx.send(Msg::Shutdown);
        }
        {
            let mut st = self.inner.maint.lock();
            st.shutdown = true;
            self.inner.maint_cv.notify_all();
        }
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                error!("a storage background thread panicked");
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn load_manifest(
    cat: &mut Catalog,
    m: Manifest,
    segment_dir: &Path,
    pool: &Arc<ResidentPool>,
) -> Result<()> {
    cat.retained_floor = m.retained_floor;
    for mt in m.tables {
        let mut segments = Vec::with_capacity(mt.segments.len());
        let mut log: BTreeMap<Seq, Vec<u64>> = BTreeMap::new();
        for ms in &mt.segments {
            let seg = read_segment_file(segment_dir, ms, &mt.columns, pool)?;
            for (p, d) in &ms.deletions {
                if *d > m.retained_floor {
                    log.entry(*d)
                        .or_default()
                        .push(seg.row_ids.value(*p as usize));
                }
            }
            segments.push(Arc::new(seg));
        }
        let delete_log = log
            .into_iter()
            .map(|(s, mut ids)| {
                ids.sort_unstable();
                (s, Arc::new(ids))
            })
            .collect();
        cat.tables.insert(
            mt.id,
            TableEntry {
                created_seq: mt.created_seq,
                dropped_seq: mt.dropped_seq,
                last_write_seq: mt.last_write_seq,
                last_ddl_seq: mt.last_ddl_seq,
                columns: mt.columns,
                segments,
                delete_log,
                unique: Vec::new(),
            },
        );
    }
    cat.meta = m.meta.into_iter().collect();
    cat.commit_times = m.commit_times.into_iter().collect();
    Ok(())
}

fn writer_loop(inner: Arc<Inner>, rx: mpsc::Receiver<Msg>) {
    let mut shutdown = false;
    while !shutdown {
        let Ok(first) = rx.recv() else { break };
        let mut group = Vec::new();
        let mut bytes = 0usize;
        match first {
            Msg::Commit(r) => {
                bytes += r.body.len();
                group.push(r);
            }
            Msg::Shutdown => shutdown = true,
        }
        while !shutdown && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(Msg::Commit(r)) => {
                    bytes += r.body.len();
                    group.push(r);
                }
                Ok(Msg::Shutdown) => shutdown = true,
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            inner.commit_group(group);
        }
    }
}

fn maintenance_loop(inner: Arc<Inner>) {
    loop {
        {
            let mut st = inner.maint.lock();
            if !st.shutdown && !st.wake {
                inner.maint_cv.wait_for(&mut st, MAINTENANCE_INTERVAL);
            }
            if st.shutdown {
                return;
            }
            st.wake = false;
        }
        if !inner.reclaim_enabled.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = crate::maintenance::run(&inner) {
            warn!("background compaction failed: {e}");
        }
        // Compaction's merged segments are in memory only, like new
        // commits, but write no WAL: they count towards the next
        // checkpoint too, so memory not yet checkpointed stays bounded.
        let need_checkpoint = inner.wal.lock().bytes_since_checkpoint
            > inner.opts.checkpoint_wal_bytes
            || inner.unpersisted_bytes() > inner.opts.checkpoint_wal_bytes;
        if need_checkpoint {
            if let Err(e) = inner.checkpoint() {
                error!("background checkpoint failed: {e}");
            }
        }
    }
}
