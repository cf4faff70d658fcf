//! Work counted where it happens, per session.
//!
//! A refresh reports how many source rows it read and how many rows it
//! scored through models. Those numbers are only worth something if they are
//! counted by the code that does the work, not derived from what the refresh
//! meant to do: the model-call function adds the rows it hands to a model,
//! and the stored-table scan adds the rows it reads. A refresh runs its
//! statements in one session, so it reads the session's counters before and
//! after and reports the difference ([`WorkCounters::since`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals of one session's work.
#[derive(Debug, Default)]
pub(crate) struct WorkCounters {
    model_rows_scored: AtomicU64,
    stored_rows_scanned: AtomicU64,
    state_rows_read: AtomicU64,
}

/// The totals at one moment, or the difference between two moments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WorkDone {
    /// Rows handed to a model, once per model call they went through.
    pub(crate) model_rows_scored: u64,
    /// Rows read by scans of stored tables and dynamic tables.
    pub(crate) stored_rows_scanned: u64,
    /// Rows of a dynamic table's maintenance state (per-group aggregates,
    /// join arrangements) read by its refreshes.
    pub(crate) state_rows_read: u64,
}

impl WorkCounters {
    /// Counts `rows` rows scored by one model call.
    pub(crate) fn add_model_rows(&self, rows: usize) {
        self.model_rows_scored
            .fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Counts `rows` rows read by one scan of a stored table.
    pub(crate) fn add_scanned_rows(&self, rows: usize) {
        self.stored_rows_scanned
            .fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Counts `rows` rows of maintenance state read by a refresh.
    pub(crate) fn add_state_rows(&self, rows: usize) {
        self.state_rows_read
            .fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// The totals now.
    pub(crate) fn now(&self) -> WorkDone {
        WorkDone {
            model_rows_scored: self.model_rows_scored.load(Ordering::Relaxed),
            stored_rows_scanned: self.stored_rows_scanned.load(Ordering::Relaxed),
            state_rows_read: self.state_rows_read.load(Ordering::Relaxed),
        }
    }

    /// The work done since `earlier` was taken with [`WorkCounters::now`].
    pub(crate) fn since(&self, earlier: WorkDone) -> WorkDone {
        let now = self.now();
        WorkDone {
            model_rows_scored: now
                .model_rows_scored
                .saturating_sub(earlier.model_rows_scored),
            stored_rows_scanned: now
                .stored_rows_scanned
                .saturating_sub(earlier.stored_rows_scanned),
            state_rows_read: now.state_rows_read.saturating_sub(earlier.state_rows_read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reports_only_the_work_after_the_mark() {
        let counters = WorkCounters::default();
        counters.add_model_rows(3);
        counters.add_scanned_rows(10);
        let mark = counters.now();
        counters.add_model_rows(2);
        counters.add_model_rows(5);
        counters.add_scanned_rows(1);
        counters.add_state_rows(4);
        assert_eq!(
            counters.since(mark),
            WorkDone {
                model_rows_scored: 7,
                stored_rows_scanned: 1,
                state_rows_read: 4,
            }
        );
    }
}
