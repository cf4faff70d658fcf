//! The memory query execution may hold, shared by every session and refresh.
//!
//! DataFusion's default runtime lets a sort, aggregate or join grow without
//! limit, so one `string_agg` over a big table could take the whole machine
//! and the server with it. Freshet runs every statement on one runtime whose
//! memory pool holds at most `query_memory_limit` bytes (a quarter of the
//! machine's RAM unless configured):
//!
//! * operators that can spill (grouped aggregation, sort, sort-merge join)
//!   share the pool fairly and spill to temporary files under
//!   `<data_dir>/spill`, which is emptied at start (DataFusion's sort can
//!   still run out at some limits instead of spilling,
//!   apache/datafusion#16979);
//! * an operator that cannot spill, or a spilling one that still does not
//!   fit, fails its statement with SQLSTATE 53200 (out of memory) naming
//!   the largest consumers; the server and other sessions carry on.
//!
//! What the pool does not cover: table data (the storage layer's resident
//! pool bounds it, `--resident-data-limit`) and values built outside
//! operators (one huge `repeat()` result).
//! The limit is shown by `SHOW query_memory_limit`.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::EngineError;

/// The directory under the data directory that holds spill files.
pub const SPILL_DIR: &str = "spill";

/// The limit used when none is configured: a quarter of the machine's RAM,
/// in whole megabytes (1 GiB where the RAM cannot be read).
pub fn default_limit() -> usize {
    physical_memory().map_or(1 << 30, |ram| (ram / 4) >> 20 << 20)
}

/// The machine's RAM in bytes, from `/proc/meminfo` (Linux).
pub fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Builds the runtime every session plans and executes with: a fair
/// spilling pool of `limit` bytes and spill files under
/// `data_dir/`[`SPILL_DIR`], which is emptied first (files left by a
/// process that did not exit cleanly are garbage).
pub(crate) fn runtime(data_dir: &Path, limit: usize) -> Result<Arc<RuntimeEnv>, EngineError> {
    let spill = data_dir.join(SPILL_DIR);
    let io = |what: &str, e: std::io::Error| {
        EngineError::new("58030", format!("{what} {}: {e}", spill.display()))
    };
    match std::fs::remove_dir_all(&spill) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot empty the spill directory", e)),
    }
    std::fs::create_dir_all(&spill).map_err(|e| io("cannot create the spill directory", e))?;
    // Errors name the three largest consumers, which says what to change.
    let top = NonZeroUsize::MIN.saturating_add(2);
    let pool = TrackConsumersPool::new(FairSpillPool::new(limit), top);
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill])),
        )
        .build_arc()
        .map_err(|e| EngineError::new("58030", format!("cannot set up query execution: {e}")))
}

/// `bytes` as PostgreSQL shows a memory setting: the largest of kB, MB, GB
/// and TB that divides it, else bytes (`256MB`, `1536kB`).
pub fn display(bytes: usize) -> String {
    const UNITS: [(&str, usize); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// The smallest limit accepted: below it no statement could run.
pub const MIN_LIMIT: usize = 1 << 20;

/// Reads a `query_memory_limit` ([`parse`], at least [`MIN_LIMIT`]).
pub fn parse_limit(text: &str) -> Result<usize, String> {
    let bytes = parse(text)?;
    if bytes < MIN_LIMIT {
        return Err(format!(
            "{text} is below the minimum query memory limit of {}",
            display(MIN_LIMIT)
        ));
    }
    Ok(bytes)
}

/// Reads a memory size as PostgreSQL reads memory settings: a whole number
/// with a unit `B`, `kB`, `MB`, `GB` or `TB` (powers of 1024, units case
/// as PostgreSQL spells them), optionally separated by spaces.
pub fn parse(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected = "a size with a unit: B, kB, MB, GB or TB (e.g. 512MB, 4GB)";
    if digits.is_empty() {
        return Err(format!("invalid size \"{text}\": expected {expected}"));
    }
    let number: usize = digits
        .parse()
        .map_err(|_| format!("invalid size \"{text}\": the number is too large"))?;
    let scale: usize = match unit.trim() {
        "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        "" => return Err(format!("invalid size \"{text}\": expected {expected}")),
        other => {
            return Err(format!(
                "invalid size \"{text}\": unknown unit \"{other}\"; expected {expected}"
            ))
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("invalid size \"{text}\": the size is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_show_as_postgres_spells_them() {
        assert_eq!(parse("256MB"), Ok(256 << 20));
        assert_eq!(parse("2 GB"), Ok(2 << 30));
        assert_eq!(parse("1536kB"), Ok(1536 << 10));
        assert_eq!(parse("100B"), Ok(100));
        assert!(parse("256").unwrap_err().contains("unit"));
        assert!(parse("256mb").unwrap_err().contains("unknown unit"));
        assert!(parse("MB").is_err());
        assert!(parse("99999999999999999999TB").is_err());
        assert!(parse("99999999TB").is_err());
        assert_eq!(display(256 << 20), "256MB");
        assert_eq!(display(1536 << 10), "1536kB");
        assert_eq!(display(3 << 30), "3GB");
        assert_eq!(display(1000), "1000B");
        assert!(parse_limit("512kB").unwrap_err().contains("minimum"));
        assert_eq!(parse_limit("1MB"), Ok(1 << 20));
    }
}
