//! Which segment data stays in memory, and the segment files scans read
//! when it does not.
//!
//! Every segment a checkpoint has written to Parquet can drop its column
//! data from memory ("evict") and read it back from its file when a scan or
//! change feed needs it. Only the row bookkeeping (row ids and creation
//! seqs as runs, deletion stamps of deleted rows) stays resident. The [`ResidentPool`] bounds the column
//! data of persisted segments: the maintenance thread evicts the oldest
//! segments while the pool is over its limit, and a column read back from a
//! file is kept only while it fits. Segments not yet checkpointed always
//! stay in memory (their only durable copy is the WAL), so the checkpoint
//! interval bounds them.
//!
//! Contract: evicting never changes what a reader sees. A segment file is
//! never deleted while any segment value referring to it is alive (a scan
//! that started before a compaction keeps its old segments, and with them
//! their files), because [`SegmentFile`] registers the file as open until it
//! is dropped, and checkpoints only delete unlisted files that are not open.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bounds::FileBounds;

/// The budget for persisted segments' column data, shared by a store's
/// segments.
#[derive(Debug)]
pub(crate) struct ResidentPool {
    limit: usize,
    used: AtomicUsize,
    /// Segment files referenced by live segments, with reference counts.
    open: Mutex<HashMap<String, usize>>,
    /// Reads of evicted column data from segment files.
    file_reads: AtomicU64,
}

impl ResidentPool {
    pub(crate) fn new(limit: usize) -> Arc<ResidentPool> {
        Arc::new(ResidentPool {
            limit,
            used: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
            file_reads: AtomicU64::new(0),
        })
    }

    /// Bytes of persisted segments' column data now in memory.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most column data of persisted segments to keep in memory.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Reads of evicted column data from segment files so far.
    pub(crate) fn file_reads(&self) -> u64 {
        self.file_reads.load(Ordering::Relaxed)
    }

    /// Counts one read of evicted data from a segment file.
    pub(crate) fn count_file_read(&self) {
        self.file_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.used() > self.limit
    }

    /// Counts `bytes` of column data as resident.
    pub(crate) fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reserves `bytes` if they fit under the limit.
    pub(crate) fn try_add(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        // Saturating: accounting must never wrap, even if a caller is off.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Whether a live segment still refers to the file `name`.
    pub(crate) fn is_open(&self, name: &str) -> bool {
        self.open.lock().contains_key(name)
    }

    /// Registers a segment's file; it stays registered until the returned
    /// value is dropped.
    pub(crate) fn open_file(
        self: &Arc<Self>,
        name: String,
        path: PathBuf,
        bytes: u64,
        bounds: FileBounds,
    ) -> SegmentFile {
        *self.open.lock().entry(name.clone()).or_default() += 1;
        SegmentFile {
            name,
            path,
            bytes,
            bounds,
            pool: self.clone(),
        }
    }
}

/// A segment's Parquet file, registered as open while this value lives.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    /// File name inside the segment directory (as the manifest lists it).
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    /// The file's size on disk.
    pub(crate) bytes: u64,
    /// The file's column statistics, for skipping it in scans.
    pub(crate) bounds: FileBounds,
    pub(crate) pool: Arc<ResidentPool>,
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        let mut open = self.pool.open.lock();
        if let Some(n) = open.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_to_its_limit() {
        let pool = ResidentPool::new(100);
        assert!(pool.try_add(60));
        assert!(!pool.try_add(50));
        pool.add(50);
        assert!(pool.over_limit());
        pool.release(200);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_file_is_open_while_a_segment_refers_to_it() {
        let pool = ResidentPool::new(0);
        let a = pool.open_file(
            "seg-1".into(),
            PathBuf::from("/x/seg-1"),
            10,
            FileBounds::default(),
        );
        let b = pool.open_file(
            "seg-1".into(),
            PathBuf::from("/x/seg-1"),
            10,
            FileBounds::default(),
        );
        drop(a);
        assert!(pool.is_open("seg-1"));
        drop(b);
        assert!(!pool.is_open("seg-1"));
    }
}
