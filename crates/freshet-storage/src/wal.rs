//! The write-ahead log: framing, appending, syncing and recovery reading.
//!
//! The WAL is a sequence of files `wal/<first seq, 20 digits>.wal`. A new file
//! is started at every checkpoint (and at every open), so a checkpoint can
//! delete whole files whose records it already covers.
//!
//! Record framing: `payload_len: u64 LE | crc32(payload): u32 LE | payload`,
//! where `payload = seq: u64 | commit_time_micros: i64 | ops`. A crash can
//! leave a partially written last record; recovery detects it by a length that
//! runs past the end of the file or a CRC mismatch, and truncates it away.
//! Such a record was never acknowledged, because commits are acknowledged
//! only after the fsync that covers them.
//!
//! With fsync on, the current file is kept zero-filled [`PREALLOCATE`] bytes
//! ahead of the last record, as PostgreSQL does with its WAL segments: an
//! fdatasync that does not grow the file has no file-system metadata to
//! journal, which makes the small syncs of single-row commits about a third
//! faster on ext4. A zero frame reads as the end of the log; recovery and
//! rotation cut the zeros off, so only the current file ever has them.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::Seq;

/// Bytes of framing before the payload.
const FRAME_HEADER: u64 = 12;
/// Bytes of the payload header (seq and commit time).
const PAYLOAD_HEADER: u64 = 16;
/// How far ahead of the last record the current WAL file is zero-filled.
pub(crate) const PREALLOCATE: u64 = 16 << 20;

/// Fsyncs a directory so that file creations/renames/deletions in it are
/// durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(format!("syncing directory {}", dir.display()), e))
}

fn wal_file_name(first_seq: Seq) -> String {
    format!("{first_seq:020}.wal")
}

/// Lists WAL files sorted by their first seq.
pub(crate) fn list_wal_files(dir: &Path) -> Result<Vec<(Seq, PathBuf)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir)
        .map_err(|e| StorageError::io(format!("listing {}", dir.display()), e))?;
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io("listing WAL directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(seq) = stem.parse::<u64>() {
                out.push((seq, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Appends framed records to the current WAL file.
pub(crate) struct WalWriter {
    dir: PathBuf,
    file: BufWriter<File>,
    /// First seq of the current file (its name).
    pub(crate) file_first_seq: Seq,
    /// WAL bytes written since the last checkpoint (drives auto-checkpoints).
    pub(crate) bytes_since_checkpoint: u64,
    /// Length of the records written (buffered or not): where the next goes.
    end: u64,
    /// Length of the file including its zero-filled preallocation.
    allocated: u64,
    fsync: bool,
}

impl WalWriter {
    /// Opens (creating if needed) the WAL file whose first record will be
    /// `first_seq`, positioned at its end. An existing file must hold intact
    /// records only (recovery truncates it so).
    pub(crate) fn open(dir: &Path, first_seq: Seq, fsync: bool) -> Result<WalWriter> {
        let path = dir.join(wal_file_name(first_seq));
        let io = |e| StorageError::io(format!("opening WAL file {}", path.display()), e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let end = file.seek(SeekFrom::End(0)).map_err(io)?;
        if fsync {
            fsync_dir(dir)?;
        }
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            file_first_seq: first_seq,
            bytes_since_checkpoint: 0,
            end,
            allocated: end,
            fsync,
        })
    }

    /// Zero-fills the file so that `len` more bytes and [`PREALLOCATE`]
    /// beyond them are allocated. The zeros become durable with the next
    /// sync, whose metadata update is then the last one for a while.
    fn preallocate(&mut self, len: u64) -> std::io::Result<()> {
        if !self.fsync || self.end + len <= self.allocated {
            return Ok(());
        }
        // the record itself will cover [end, end + len)
        let from = self.allocated.max(self.end + len);
        let to = self.end + len + PREALLOCATE;
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64);
            self.file.get_ref().write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        self.allocated = to;
        Ok(())
    }

    /// Buffers one record. Large bodies bypass the buffer.
    pub(crate) fn append(
        &mut self,
        seq: Seq,
        time_micros: i64,
        body: &[u8],
        body_crc: &crc32fast::Hasher,
    ) -> std::io::Result<()> {
        let mut head = [0u8; PAYLOAD_HEADER as usize];
        head[..8].copy_from_slice(&seq.to_le_bytes());
        head[8..].copy_from_slice(&time_micros.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.combine(body_crc);
        let len = PAYLOAD_HEADER + body.len() as u64;
        self.preallocate(FRAME_HEADER + len)?;
        let mut frame = [0u8; FRAME_HEADER as usize];
        frame[..8].copy_from_slice(&len.to_le_bytes());
        frame[8..].copy_from_slice(&crc.finalize().to_le_bytes());
        self.file.write_all(&frame)?;
        self.file.write_all(&head)?;
        // Large writes go out in moderate chunks: one huge write() is much
        // slower on Linux (dirty-page throttling) than a stream of 4 MiB ones.
        for chunk in body.chunks(4 << 20) {
            self.file.write_all(chunk)?;
        }
        self.end += FRAME_HEADER + len;
        self.bytes_since_checkpoint += FRAME_HEADER + len;
        Ok(())
    }

    /// Writes buffered records and makes them durable (if fsync is enabled).
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.fsync {
            self.file.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Finishes the current file and starts a new one at `next_seq`. Returns
    /// the first seq of the new file; every older file only holds records
    /// with smaller seqs.
    pub(crate) fn rotate(&mut self, next_seq: Seq) -> Result<Seq> {
        self.sync()
            .map_err(|e| StorageError::io("syncing WAL before rotation", e))?;
        if next_seq != self.file_first_seq {
            // Only the current file may end in preallocated zeros: recovery
            // takes a shorter-than-file older one for damage.
            if self.allocated > self.end {
                let file = self.file.get_ref();
                file.set_len(self.end)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| StorageError::io("trimming the WAL file's preallocation", e))?;
            }
            let fresh = WalWriter::open(&self.dir, next_seq, self.fsync)?;
            *self = fresh;
        }
        self.bytes_since_checkpoint = 0;
        Ok(self.file_first_seq)
    }
}

/// A record read back during recovery.
pub(crate) struct WalRecord {
    pub(crate) seq: Seq,
    pub(crate) time_micros: i64,
    pub(crate) body: Vec<u8>,
}

/// Result of scanning one WAL file.
pub(crate) struct ScanOutcome {
    /// Byte offset just past the last intact record.
    pub(crate) valid_len: u64,
    /// Actual file length; larger than `valid_len` if the tail is torn or
    /// preallocated.
    pub(crate) file_len: u64,
    /// Everything after `valid_len` is zero: preallocated space, not a torn
    /// record.
    pub(crate) tail_is_zero: bool,
}

/// Reads every intact record of a WAL file in order, stopping at the first
/// torn or corrupt one.
pub(crate) fn scan_wal_file(
    path: &Path,
    mut on_record: impl FnMut(WalRecord) -> Result<()>,
) -> Result<ScanOutcome> {
    let file = File::open(path)
        .map_err(|e| StorageError::io(format!("opening WAL file {}", path.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io("reading WAL file metadata", e))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    loop {
        let remaining = file_len - pos;
        if remaining < FRAME_HEADER {
            break;
        }
        let mut frame = [0u8; FRAME_HEADER as usize];
        r.read_exact(&mut frame)
            .map_err(|e| StorageError::io("reading WAL", e))?;
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&frame[..8]);
        let len = u64::from_le_bytes(len8);
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(&frame[8..]);
        let crc = u32::from_le_bytes(crc4);
        if len < PAYLOAD_HEADER || len > remaining - FRAME_HEADER {
            break;
        }
        let Ok(len_usize) = usize::try_from(len) else {
            break;
        };
        let mut payload = vec![0u8; len_usize];
        r.read_exact(&mut payload)
            .map_err(|e| StorageError::io("reading WAL", e))?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        let mut s8 = [0u8; 8];
        s8.copy_from_slice(&payload[..8]);
        let mut t8 = [0u8; 8];
        t8.copy_from_slice(&payload[8..16]);
        payload.drain(..PAYLOAD_HEADER as usize);
        on_record(WalRecord {
            seq: u64::from_le_bytes(s8),
            time_micros: i64::from_le_bytes(t8),
            body: payload,
        })?;
        pos += FRAME_HEADER + len;
    }
    let tail_is_zero = tail_is_zero(path, pos)?;
    Ok(ScanOutcome {
        valid_len: pos,
        file_len,
        tail_is_zero,
    })
}

/// Whether every byte of the file from `from` on is zero.
fn tail_is_zero(path: &Path, from: u64) -> Result<bool> {
    let read_error = |e| StorageError::io(format!("reading WAL file {}", path.display()), e);
    let mut file = File::open(path).map_err(read_error)?;
    file.seek(SeekFrom::Start(from)).map_err(read_error)?;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(read_error)?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Cuts a torn tail off a WAL file and makes the truncation durable.
pub(crate) fn truncate_wal_file(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
    f.set_len(len)
        .and_then(|_| f.sync_all())
        .map_err(|e| StorageError::io(format!("truncating torn WAL tail of {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, true).unwrap();
        for seq in 1..=3u64 {
            let body = vec![seq as u8; 100];
            let mut h = crc32fast::Hasher::new();
            h.update(&body);
            w.append(seq, 42, &body, &h).unwrap();
        }
        w.sync().unwrap();
        let files = list_wal_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let path = &files[0].1;
        let records = w.end;
        let full = std::fs::metadata(path).unwrap().len();
        assert!(full >= PREALLOCATE && full > records, "zero-filled ahead");
        // Intact file: all three records, then preallocated zeros.
        let mut seqs = Vec::new();
        let out = scan_wal_file(path, |r| {
            assert_eq!(r.time_micros, 42);
            seqs.push(r.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(out.valid_len, records);
        assert!(out.tail_is_zero);
        // Flip a byte inside the last record: only two survive, and the
        // tail is a torn record, not preallocation.
        let mut bytes = std::fs::read(path).unwrap();
        bytes[records as usize - 5] ^= 0xff;
        std::fs::write(path, &bytes).unwrap();
        let mut count = 0;
        let out = scan_wal_file(path, |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 2);
        assert!(out.valid_len < records);
        assert!(!out.tail_is_zero);
        truncate_wal_file(path, out.valid_len).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), out.valid_len);
    }

    #[test]
    fn rotation_trims_the_preallocation() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, true).unwrap();
        let body = vec![7u8; 100];
        let mut h = crc32fast::Hasher::new();
        h.update(&body);
        w.append(1, 42, &body, &h).unwrap();
        let records = w.end;
        assert_eq!(w.rotate(2).unwrap(), 2);
        let files = list_wal_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(std::fs::metadata(&files[0].1).unwrap().len(), records);
        // reopening an existing file continues after its records
        w.append(2, 43, &body, &h).unwrap();
        w.sync().unwrap();
        drop(w);
        let second = &files[1].1;
        let out = scan_wal_file(second, |_| Ok(())).unwrap();
        truncate_wal_file(second, out.valid_len).unwrap();
        let mut w = WalWriter::open(dir.path(), 2, true).unwrap();
        w.append(3, 44, &body, &h).unwrap();
        w.sync().unwrap();
        let mut seqs = Vec::new();
        scan_wal_file(second, |r| {
            seqs.push(r.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, vec![2, 3]);
    }
}
