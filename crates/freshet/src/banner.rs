//! What the binary says about itself: the `--version` string and the few
//! lines printed once the server accepts connections.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `0.1.0 (commit 6f1d7b1)`: the crate version and the git commit embedded
/// by `build.rs` (`unknown` when built outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FRESHET_GIT_COMMIT"),
    ")"
);

/// Everything the start-up banner reports.
#[derive(Debug)]
pub struct Banner<'a> {
    pub listen: SocketAddr,
    pub tls: bool,
    /// The HTTP endpoint's URL (`http://…/` or `https://…/`), if it is on.
    pub http: Option<String>,
    pub superuser: &'a str,
    pub superuser_has_password: bool,
    pub data_dir: &'a Path,
    pub fsync: bool,
    pub model_dir: Option<&'a Path>,
    pub query_threads: usize,
    pub refresh_workers: usize,
    pub inference_batch_size: usize,
    pub refresh_history_limit: usize,
    pub query_memory_limit: usize,
    /// Where the limit comes from (`--query-memory-limit`, a share of RAM).
    pub query_memory_source: &'a str,
    /// Checkpointed table data kept in memory (`--resident-data-limit`).
    pub resident_data_limit: usize,
}

impl Banner<'_> {
    /// The lines, each `label  value`, ending with a newline.
    pub fn render(&self) -> String {
        let mut out = format!("freshet {VERSION} ready\n");
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<10} {value}");
        };
        let auth = if self.superuser_has_password {
            format!("superuser {} with password (SCRAM-SHA-256)", self.superuser)
        } else {
            format!(
                "superuser {} without password (loopback connections only)",
                self.superuser
            )
        };
        line(
            "listening",
            format!(
                "{}, TLS {}, {auth}",
                self.listen,
                if self.tls { "on" } else { "off" }
            ),
        );
        line(
            "http",
            match &self.http {
                Some(url) => format!("{url} (web console at /; /healthz, /readyz, /metrics)"),
                None => "off (--http-listen off)".to_owned(),
            },
        );
        line(
            "data dir",
            format!(
                "{} (WAL fsync {})",
                shown(self.data_dir).display(),
                if self.fsync {
                    "on"
                } else {
                    "OFF: commits are not durable"
                }
            ),
        );
        line(
            "model dir",
            match self.model_dir {
                None => {
                    "none: CREATE MODEL … FROM '<path>' is disabled (start with --model-dir DIR)"
                        .to_owned()
                }
                Some(dir) if !dir.is_dir() => {
                    format!("{} (not a readable directory)", dir.display())
                }
                Some(dir) => shown(dir).display().to_string(),
            },
        );
        line(
            "limits",
            format!(
                "{} query threads, {} refresh workers, {} rows per model batch, \
                 {} refresh-history rows per dynamic table; \
                 {} query memory ({}; beyond it, operators that can spill spill to disk \
                 and a statement that still does not fit fails with 53200); \
                 {} resident table data (beyond it, checkpointed data is read from disk); \
                 no limit on connections",
                self.query_threads,
                self.refresh_workers,
                self.inference_batch_size,
                self.refresh_history_limit,
                freshet_engine::query_memory::display(self.query_memory_limit),
                self.query_memory_source,
                freshet_engine::query_memory::display(self.resident_data_limit)
            ),
        );
        out
    }
}

/// The absolute form of an existing path, else the path as given.
fn shown(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}
