//! Run-length encoded `u64` columns for a segment's per-row bookkeeping.
//!
//! Every row of a segment has a row id and a creation seq, and both stay in
//! memory after the segment's data is evicted, so their size is what memory
//! grows by as a table grows. Neither needs 8 bytes a row in practice: a
//! commit assigns consecutive row ids and one creation seq to all its rows,
//! and compaction concatenates such runs. [`U64Runs`] stores a column as runs
//! of an arithmetic sequence with a fixed step (1 for row ids, 0 for seqs),
//! and falls back to a plain array when the runs would be larger.

use std::ops::Range;

use arrow::array::UInt64Array;

/// A `u64` column of `len` values, stored as runs `v, v+step, v+2*step, …`
/// or, when runs would not save memory, as the plain values.
#[derive(Debug, Clone)]
pub(crate) struct U64Runs {
    len: usize,
    step: u64,
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// `starts[r]` is the first row of run `r` (`starts[0] == 0`), and
    /// `firsts[r]` its first value.
    Runs {
        starts: Vec<u32>,
        firsts: Vec<u64>,
    },
    Plain(UInt64Array),
}

/// Bytes a run costs (its start row and first value).
const RUN_BYTES: usize = 12;

impl U64Runs {
    /// `len` copies of `value` (step 0).
    pub(crate) fn uniform(value: u64, len: usize) -> U64Runs {
        U64Runs::single(value, len, 0)
    }

    /// The ids `first .. first + len` (step 1).
    pub(crate) fn range(first: u64, len: usize) -> U64Runs {
        U64Runs::single(first, len, 1)
    }

    fn single(first: u64, len: usize, step: u64) -> U64Runs {
        let repr = if len == 0 {
            Repr::Runs {
                starts: Vec::new(),
                firsts: Vec::new(),
            }
        } else {
            Repr::Runs {
                starts: vec![0],
                firsts: vec![first],
            }
        };
        U64Runs { len, step, repr }
    }

    /// Encodes `values` with runs of the given step, or keeps them plain if
    /// that is smaller.
    pub(crate) fn encode(values: &[u64], step: u64) -> U64Runs {
        let mut starts = Vec::new();
        let mut firsts = Vec::new();
        let mut next = None;
        for (i, v) in values.iter().enumerate() {
            if next != Some(*v) {
                if (starts.len() + 1) * RUN_BYTES > values.len() * 8 {
                    return U64Runs {
                        len: values.len(),
                        step,
                        repr: Repr::Plain(UInt64Array::from(values.to_vec())),
                    };
                }
                starts.push(i as u32);
                firsts.push(*v);
            }
            next = Some(v.wrapping_add(step));
        }
        U64Runs {
            len: values.len(),
            step,
            repr: Repr::Runs { starts, firsts },
        }
    }

    /// Value of row `i` (`i < len`).
    pub(crate) fn value(&self, i: usize) -> u64 {
        match &self.repr {
            Repr::Plain(a) => a.value(i),
            Repr::Runs { starts, firsts } => {
                let r = starts.partition_point(|s| *s as usize <= i) - 1;
                firsts[r] + self.step * (i - starts[r] as usize) as u64
            }
        }
    }

    pub(crate) fn first(&self) -> Option<u64> {
        (self.len > 0).then(|| self.value(0))
    }

    pub(crate) fn last(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.value(i))
    }

    /// Calls `f(rows, first_value)` for each run in row order (each row is
    /// its own run in the plain form).
    pub(crate) fn for_each_run(&self, mut f: impl FnMut(Range<usize>, u64)) {
        match &self.repr {
            Repr::Plain(a) => {
                for (i, v) in a.values().iter().enumerate() {
                    f(i..i + 1, *v)
                }
            }
            Repr::Runs { starts, firsts } => {
                for r in 0..starts.len() {
                    let end = starts.get(r + 1).map_or(self.len, |s| *s as usize);
                    f(starts[r] as usize..end, firsts[r])
                }
            }
        }
    }

    /// Smallest and largest value, `None` if empty.
    pub(crate) fn min_max(&self) -> Option<(u64, u64)> {
        let mut out: Option<(u64, u64)> = None;
        self.for_each_run(|rows, v| {
            let last = v + self.step * (rows.len() as u64 - 1);
            let (lo, hi) = out.unwrap_or((v, last));
            out = Some((lo.min(v), hi.max(last)));
        });
        out
    }

    /// The values as an Arrow array.
    pub(crate) fn to_array(&self) -> UInt64Array {
        match &self.repr {
            Repr::Plain(a) => a.clone(),
            Repr::Runs { .. } => {
                let mut out = Vec::with_capacity(self.len);
                self.for_each_run(|rows, v| {
                    out.extend((0..rows.len() as u64).map(|k| v + self.step * k));
                });
                UInt64Array::from(out)
            }
        }
    }

    /// The values of the given rows.
    pub(crate) fn take(&self, rows: &[u32]) -> UInt64Array {
        UInt64Array::from_iter_values(rows.iter().map(|i| self.value(*i as usize)))
    }

    /// For a strictly ascending column (row ids), the rows holding the
    /// values `want` (sorted ascending); values not present are skipped.
    pub(crate) fn positions(&self, want: &[u64]) -> Vec<u32> {
        let mut hits = Vec::new();
        match &self.repr {
            Repr::Plain(a) => {
                let have = a.values();
                if want.len() * 8 > have.len() {
                    // Dense request: merge-walk both sorted lists.
                    let (mut i, mut j) = (0, 0);
                    while i < want.len() && j < have.len() {
                        match want[i].cmp(&have[j]) {
                            std::cmp::Ordering::Less => i += 1,
                            std::cmp::Ordering::Greater => j += 1,
                            std::cmp::Ordering::Equal => {
                                hits.push(j as u32);
                                i += 1;
                                j += 1;
                            }
                        }
                    }
                } else {
                    for v in want {
                        if let Ok(p) = have.binary_search(v) {
                            hits.push(p as u32);
                        }
                    }
                }
            }
            Repr::Runs { starts, firsts } => {
                debug_assert_eq!(self.step, 1);
                let mut r = 0;
                for v in want {
                    // Runs ascend, so the run holding `v` is the last one
                    // starting at or below it.
                    while r + 1 < firsts.len() && firsts[r + 1] <= *v {
                        r += 1;
                    }
                    let Some(first) = firsts.get(r) else { break };
                    let end = starts.get(r + 1).map_or(self.len, |s| *s as usize);
                    let run_len = (end - starts[r] as usize) as u64;
                    if *v >= *first && *v - first < run_len {
                        hits.push(starts[r] + (*v - first) as u32);
                    }
                }
            }
        }
        hits
    }

    /// The runs' start rows and first values, unless the column is plain.
    pub(crate) fn as_runs(&self) -> Option<(&[u32], &[u64])> {
        match &self.repr {
            Repr::Runs { starts, firsts } => Some((starts, firsts)),
            Repr::Plain(_) => None,
        }
    }

    /// Rebuilds a column from [`Self::as_runs`] output read back from disk,
    /// checking that the runs describe `len` rows (and, with step 1, that
    /// the values ascend), so that a damaged input cannot make
    /// [`Self::value`] misbehave. `None` if they do not.
    pub(crate) fn from_runs(
        len: usize,
        step: u64,
        starts: Vec<u32>,
        firsts: Vec<u64>,
    ) -> Option<U64Runs> {
        let shaped = starts.len() == firsts.len()
            && (len == 0) == starts.is_empty()
            && starts.first().is_none_or(|s| *s == 0)
            && starts.windows(2).all(|w| w[0] < w[1])
            && starts.last().is_none_or(|s| (*s as usize) < len);
        if !shaped {
            return None;
        }
        let runs = U64Runs {
            len,
            step,
            repr: Repr::Runs { starts, firsts },
        };
        if step > 0 {
            let mut next: Option<u64> = None;
            let mut ok = true;
            runs.for_each_run(|rows, v| {
                ok &= next.is_none_or(|n| v >= n);
                next = (rows.len() as u64)
                    .checked_mul(step)
                    .and_then(|d| v.checked_add(d));
                ok &= next.is_some();
            });
            if !ok {
                return None;
            }
        }
        Some(runs)
    }

    /// Bytes held in memory.
    pub(crate) fn bytes(&self) -> usize {
        match &self.repr {
            Repr::Plain(a) => a.len() * 8,
            Repr::Runs { starts, .. } => starts.len() * RUN_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[u64], step: u64) {
        let runs = U64Runs::encode(values, step);
        assert_eq!(runs.to_array().values().as_ref(), values);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(runs.value(i), *v);
        }
        let expect = values
            .iter()
            .fold(None, |m: Option<(u64, u64)>, v| match m {
                None => Some((*v, *v)),
                Some((lo, hi)) => Some((lo.min(*v), hi.max(*v))),
            });
        assert_eq!(runs.min_max(), expect);
    }

    #[test]
    fn round_trips() {
        check(&[], 1);
        check(&[7], 1);
        check(&[1, 2, 3, 10, 11, 40], 1);
        check(&[5, 5, 5, 9, 9, 2], 0);
        let scattered: Vec<u64> = (0..100).map(|i| i * 3).collect();
        check(&scattered, 1);
        assert!(matches!(
            U64Runs::encode(&scattered, 1).repr,
            Repr::Plain(_)
        ));
        let ranges: Vec<u64> = (0..1000).chain(5000..6000).collect();
        let runs = U64Runs::encode(&ranges, 1);
        assert_eq!(runs.bytes(), 2 * RUN_BYTES);
        check(&ranges, 1);
    }

    #[test]
    fn rebuilds_only_valid_runs() {
        let ids = U64Runs::encode(&[1, 2, 3, 10, 11], 1);
        let (s, f) = ids.as_runs().unwrap();
        let back = U64Runs::from_runs(5, 1, s.to_vec(), f.to_vec()).unwrap();
        assert_eq!(back.to_array(), ids.to_array());
        assert!(U64Runs::from_runs(2, 1, s.to_vec(), f.to_vec()).is_none());
        assert!(U64Runs::from_runs(5, 1, vec![0, 3], vec![10, 1]).is_none());
        assert!(U64Runs::from_runs(5, 1, vec![1, 3], vec![1, 10]).is_none());
        assert!(U64Runs::from_runs(5, 1, vec![0], vec![u64::MAX]).is_none());
        assert!(U64Runs::from_runs(0, 0, vec![], vec![]).is_some());
    }

    #[test]
    fn finds_positions() {
        let ids: Vec<u64> = (10..20).chain(30..35).chain([50, 52]).collect();
        for runs in [U64Runs::encode(&ids, 1), {
            let mut plain = U64Runs::encode(&ids, 1);
            plain.repr = Repr::Plain(UInt64Array::from(ids.clone()));
            plain
        }] {
            assert_eq!(
                runs.positions(&[9, 10, 19, 20, 30, 51, 52, 99]),
                vec![0, 9, 10, 16]
            );
            let all: Vec<u32> = (0..ids.len() as u32).collect();
            assert_eq!(runs.positions(&ids), all);
        }
    }
}
