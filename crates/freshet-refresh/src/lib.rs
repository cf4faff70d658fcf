//! The dynamic-table refresh scheduler.
//!
//! Dynamic tables promise a *target lag*: their contents are never older than
//! it. The scheduler keeps that promise by refreshing each table when half of
//! its lag has elapsed since the snapshot its contents equal (its
//! `data_timestamp`), leaving the other half as headroom for the refresh
//! itself. How one refresh is executed (incrementally or in full, atomically
//! with its progress marker) is the engine's business
//! ([`freshet_engine::refresh_dynamic_table`]); this crate only decides *when*
//! and *in which order*.
//!
//! # Rules
//!
//! * It wakes on every write commit ([`Engine::commit_notify`]) and at least
//!   every [`TICK`], and reads the catalog at the latest snapshot.
//! * Only tables whose `scheduling_state` is `RUNNING` are refreshed.
//! * A table's *effective* lag is the smallest of its own target lag and the
//!   effective lags of the running dynamic tables that read it, so upstream
//!   tables are at least as fresh as their consumers need. A
//!   `TARGET_LAG = DOWNSTREAM` table has no lag of its own: it refreshes only
//!   when a consumer needs it, and never when nothing reads it.
//! * Upstream before downstream: a table does not start while a dynamic table
//!   it reads is refreshing or due, so a consumer reads its sources' newest
//!   data. A table is no fresher than the dynamic tables it reads (its data
//!   timestamp is at most theirs), so one that has caught up with a
//!   suspended upstream is not refreshed again until the upstream resumes;
//!   when its lag expires meanwhile it gets a `SKIPPED` entry.
//! * Never two refreshes of one table at once; at most `workers` refreshes at
//!   a time (a semaphore).
//! * A due table that could not start before its lag expired (no free worker,
//!   or its previous refresh is still running) gets a `SKIPPED` history entry,
//!   at most once per lag period. One that waits because a dynamic table it
//!   reads keeps failing gets an `UPSTREAM_FAILED` entry instead.
//! * Failures are retried with exponential backoff (1 s, 2 s, 4 s … capped at
//!   [`MAX_BACKOFF`]). The engine counts consecutive scheduled failures and,
//!   at [`freshet_engine::MAX_CONSECUTIVE_FAILURES`], suspends the table and
//!   its downstream tables (`SUSPENDED_DUE_TO_ERRORS`).
//! * Refreshes run on a dedicated Tokio runtime with `workers` threads, so
//!   CPU-heavy refresh work (query execution, model inference) never occupies
//!   the threads that serve client connections.
//! * It also maintains the storage retention holds that keep the change
//!   history each dynamic table's next incremental refresh needs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use freshet_catalog::{self as catalog, DynamicTableDef, QualifiedName, RelationEntry};
use freshet_engine::{
    record_skipped, record_upstream_failed, refresh_dynamic_table, restore_retention_holds,
    retention_holder, Engine, EngineError, RefreshRecord, RefreshTrigger,
};

/// The longest the scheduler sleeps between looks at the catalog.
pub const TICK: Duration = Duration::from_millis(100);

/// The shortest interval between two looks, however often commits wake it
/// (bounds the catalog reads under a stream of small client commits).
const MIN_TICK: Duration = Duration::from_millis(20);

/// The longest retry delay after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long [`SchedulerHandle::shutdown`] waits for running refreshes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A running scheduler. Stop it with [`SchedulerHandle::shutdown`].
pub struct SchedulerHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerHandle").finish_non_exhaustive()
    }
}

impl SchedulerHandle {
    /// Stops scheduling, waits (bounded) for refreshes in flight to commit or
    /// fail, and stops the refresh threads. An interrupted refresh leaves
    /// nothing behind: it commits atomically or not at all.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), task).await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime inside an async context would panic.
            runtime.shutdown_background();
        }
    }
}

/// Starts the scheduler with at most `workers` concurrent refreshes.
///
/// Registers the retention holds of all dynamic tables before returning, so
/// call it right after the engine opens and before clients can write.
pub fn spawn_scheduler(engine: Arc<Engine>, workers: usize) -> SchedulerHandle {
    match restore_retention_holds(&engine) {
        Ok(n) => tracing::debug!(holds = n, "dynamic-table retention holds restored"),
        Err(e) => tracing::warn!("could not restore dynamic-table retention holds: {e}"),
    }
    let workers = workers.max(1);
    let (stop, stop_rx) = watch::channel(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("freshet-refresh")
        .thread_stack_size(freshet_engine::WORKER_STACK_SIZE)
        .enable_all()
        .build();
    let (runtime, handle) = match runtime {
        Ok(rt) => {
            let handle = rt.handle().clone();
            (Some(rt), Some(handle))
        }
        Err(e) => {
            tracing::warn!("no dedicated refresh runtime ({e}); refreshing on the server's");
            (None, tokio::runtime::Handle::try_current().ok())
        }
    };
    let task = match handle {
        Some(h) => Some(h.spawn(run(engine, workers, stop_rx))),
        None => {
            tracing::error!("no Tokio runtime: the dynamic-table scheduler is not running");
            None
        }
    };
    SchedulerHandle {
        stop,
        task,
        runtime,
    }
}

type Finished =
    Result<(tokio::task::Id, Result<RefreshRecord, EngineError>), tokio::task::JoinError>;

/// Retry state of a failing table.
struct Backoff {
    failures: u32,
    next_try: Instant,
}

struct Scheduler {
    engine: Arc<Engine>,
    permits: Arc<Semaphore>,
    running: HashSet<QualifiedName>,
    backoff: HashMap<QualifiedName, Backoff>,
    last_skip: HashMap<QualifiedName, i64>,
    held: HashSet<QualifiedName>,
    tasks: JoinSet<Result<RefreshRecord, EngineError>>,
    /// The table each refresh task works on (a panicked task reports only its id).
    task_tables: HashMap<tokio::task::Id, QualifiedName>,
}

async fn run(engine: Arc<Engine>, workers: usize, mut stop: watch::Receiver<bool>) {
    let notify = engine.commit_notify();
    let mut scheduler = Scheduler {
        engine,
        permits: Arc::new(Semaphore::new(workers)),
        running: HashSet::new(),
        backoff: HashMap::new(),
        last_skip: HashMap::new(),
        held: HashSet::new(),
        tasks: JoinSet::new(),
        task_tables: HashMap::new(),
    };
    loop {
        if *stop.borrow() {
            break;
        }
        let ticked = Instant::now();
        scheduler.tick().await;
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
            Some(done) = scheduler.tasks.join_next_with_id(), if !scheduler.tasks.is_empty() => {
                scheduler.finished(done);
            }
            _ = stop.changed() => break,
        }
        while let Some(done) = scheduler.tasks.try_join_next_with_id() {
            scheduler.finished(done);
        }
        let elapsed = ticked.elapsed();
        if elapsed < MIN_TICK {
            tokio::time::sleep(MIN_TICK - elapsed).await;
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = scheduler.tasks.join_next_with_id().await {
            scheduler.finished(done);
        }
    })
    .await;
    if drained.is_err() {
        scheduler.tasks.abort_all();
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A suspended dynamic table `name` reads whose data `name` already
/// reflects in full (same data timestamp), if any.
fn frozen_upstream(graph: &Graph, name: &QualifiedName) -> Option<QualifiedName> {
    let own = graph.tables.get(name)?.data_timestamp_micros?;
    graph.upstream.get(name)?.iter().find_map(|u| {
        let def = graph.tables.get(u)?;
        (def.scheduling_state != "RUNNING" && def.data_timestamp_micros.is_some_and(|ts| own >= ts))
            .then(|| u.clone())
    })
}

/// The graph of dynamic tables at one snapshot.
struct Graph {
    tables: HashMap<QualifiedName, DynamicTableDef>,
    /// Dynamic tables each table reads.
    upstream: HashMap<QualifiedName, Vec<QualifiedName>>,
    /// Dynamic tables reading each table.
    consumers: HashMap<QualifiedName, Vec<QualifiedName>>,
    /// Effective lag in microseconds (`None`: never scheduled).
    lag: HashMap<QualifiedName, Option<i64>>,
}

impl Graph {
    fn build(relations: Vec<RelationEntry>) -> Graph {
        let mut tables = HashMap::new();
        for entry in relations {
            if let Some(def) = entry.dynamic() {
                tables.insert(entry.qualified(), def.clone());
            }
        }
        let mut upstream: HashMap<QualifiedName, Vec<QualifiedName>> = HashMap::new();
        let mut consumers: HashMap<QualifiedName, Vec<QualifiedName>> = HashMap::new();
        for (name, def) in &tables {
            for source in def.sources.iter().filter(|s| tables.contains_key(*s)) {
                upstream
                    .entry(name.clone())
                    .or_default()
                    .push(source.clone());
                consumers
                    .entry(source.clone())
                    .or_default()
                    .push(name.clone());
            }
        }
        let mut graph = Graph {
            tables,
            upstream,
            consumers,
            lag: HashMap::new(),
        };
        let names: Vec<QualifiedName> = graph.tables.keys().cloned().collect();
        for name in names {
            let mut visiting = HashSet::new();
            graph.effective_lag(&name, &mut visiting);
        }
        graph
    }

    /// min(own lag, effective lags of running consumers), memoized.
    fn effective_lag(
        &mut self,
        name: &QualifiedName,
        visiting: &mut HashSet<QualifiedName>,
    ) -> Option<i64> {
        if let Some(l) = self.lag.get(name) {
            return *l;
        }
        if !visiting.insert(name.clone()) {
            return None; // a cycle cannot be created, but never loop on one
        }
        let own = self
            .tables
            .get(name)
            .and_then(|d| d.target_lag_secs)
            .map(|s| (s as i64).saturating_mul(1_000_000));
        let consumers: Vec<QualifiedName> = self
            .consumers
            .get(name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| {
                self.tables
                    .get(c)
                    .is_some_and(|d| d.scheduling_state == "RUNNING")
            })
            .collect();
        let mut lag = own;
        for consumer in consumers {
            if let Some(l) = self.effective_lag(&consumer, visiting) {
                lag = Some(lag.map_or(l, |x| x.min(l)));
            }
        }
        self.lag.insert(name.clone(), lag);
        lag
    }
}

impl Scheduler {
    fn is_due(&self, graph: &Graph, name: &QualifiedName, now: i64) -> bool {
        let (Some(def), Some(Some(lag))) = (graph.tables.get(name), graph.lag.get(name)) else {
            return false;
        };
        if def.scheduling_state != "RUNNING" {
            return false;
        }
        match def.data_timestamp_micros {
            None => true,
            Some(ts) => now - ts >= lag / 2,
        }
    }

    fn backing_off(&self, name: &QualifiedName) -> bool {
        self.backoff
            .get(name)
            .is_some_and(|b| b.next_try > Instant::now())
    }

    async fn tick(&mut self) {
        let snapshot = self.engine.store().snapshot();
        let relations = match catalog::list::<RelationEntry>(&snapshot, "rel/") {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("scheduler cannot read the catalog: {e}");
                return;
            }
        };
        drop(snapshot);
        let graph = Graph::build(relations);
        self.maintain_holds(&graph);
        // Forget retry state that a RESUME or a successful manual refresh reset.
        self.backoff.retain(|name, b| {
            graph
                .tables
                .get(name)
                .is_some_and(|d| d.consecutive_failures > 0 || b.failures == 0)
        });
        self.last_skip
            .retain(|name, _| graph.tables.contains_key(name));

        let now = now_micros();
        let mut names: Vec<&QualifiedName> = graph.tables.keys().collect();
        names.sort();
        for name in names {
            if !self.is_due(&graph, name, now) || self.backing_off(name) {
                continue;
            }
            let lag = graph.lag.get(name).copied().flatten().unwrap_or(i64::MAX);
            let expired = graph
                .tables
                .get(name)
                .and_then(|d| d.data_timestamp_micros)
                .is_some_and(|ts| now - ts > lag);
            if self.running.contains(name) {
                if expired {
                    self.not_run(
                        name,
                        lag,
                        now,
                        "the previous refresh was still running",
                        false,
                    )
                    .await;
                }
                continue;
            }
            let blocked = graph.upstream.get(name).is_some_and(|ups| {
                ups.iter().any(|u| {
                    self.running.contains(u)
                        || (self.is_due(&graph, u, now) && !self.backing_off(u))
                })
            });
            if blocked {
                continue;
            }
            // Refreshing now would read an upstream whose data is older than
            // it should be because its refreshes fail: wait for it instead.
            let failed_upstream = graph.upstream.get(name).and_then(|ups| {
                ups.iter()
                    .find(|u| self.backoff.get(*u).is_some_and(|b| b.failures > 0))
                    .cloned()
            });
            if let Some(upstream) = failed_upstream {
                if expired {
                    let why = format!("upstream dynamic table {upstream} failed to refresh");
                    self.not_run(name, lag, now, &why, true).await;
                }
                continue;
            }
            // A suspended upstream's data is frozen; once this table has
            // caught up with it (its data timestamp is the upstream's, see
            // the engine), refreshing again cannot make it any fresher.
            if let Some(upstream) = frozen_upstream(&graph, name) {
                if expired {
                    let why = format!("upstream dynamic table {upstream} is suspended");
                    self.not_run(name, lag, now, &why, false).await;
                }
                continue;
            }
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                if expired {
                    self.not_run(name, lag, now, "no refresh worker was free", false)
                        .await;
                }
                continue;
            };
            self.running.insert(name.clone());
            let engine = self.engine.clone();
            let name = name.clone();
            let task_name = name.clone();
            let handle = self.tasks.spawn(async move {
                let _permit = permit;
                refresh_dynamic_table(&engine, &task_name, RefreshTrigger::Scheduled).await
            });
            self.task_tables.insert(handle.id(), name);
        }
    }

    /// Records a refresh that could not run in time: SKIPPED, or
    /// UPSTREAM_FAILED when `upstream_failed`. At most once per lag period
    /// per table, so a long outage does not flood the history.
    async fn not_run(
        &mut self,
        name: &QualifiedName,
        lag: i64,
        now: i64,
        why: &str,
        upstream_failed: bool,
    ) {
        if self
            .last_skip
            .get(name)
            .is_some_and(|last| now - last < lag)
        {
            return;
        }
        self.last_skip.insert(name.clone(), now);
        let message = format!("{why} when the target lag expired");
        let recorded = if upstream_failed {
            record_upstream_failed(&self.engine, name, &message).await
        } else {
            record_skipped(&self.engine, name, &message).await
        };
        if let Err(e) = recorded {
            tracing::debug!(table = %name, "could not record a refresh that did not run: {e}");
        }
    }

    fn finished(&mut self, done: Finished) {
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            Err(e) => (
                e.id(),
                Err(EngineError::new(
                    "XX000",
                    format!("refresh task failed: {e}"),
                )),
            ),
        };
        let Some(name) = self.task_tables.remove(&id) else {
            return;
        };
        self.running.remove(&name);
        match result {
            Ok(record) => {
                self.backoff.remove(&name);
                tracing::debug!(
                    table = %name,
                    action = %record.refresh_action,
                    inserted = record.statistics.num_inserted_rows,
                    deleted = record.statistics.num_deleted_rows,
                    "refreshed"
                );
            }
            Err(e) if e.sqlstate() == "40001" => {
                // A concurrent change to the table's catalog entry: just redo.
                let failures = self.backoff.get(&name).map_or(0, |b| b.failures);
                self.backoff.insert(
                    name,
                    Backoff {
                        failures,
                        next_try: Instant::now() + TICK,
                    },
                );
            }
            Err(e) => {
                let failures = self.backoff.get(&name).map_or(0, |b| b.failures) + 1;
                let delay = Duration::from_secs(1u64 << (failures - 1).min(6)).min(MAX_BACKOFF);
                tracing::warn!(table = %name, failures, "refresh failed: {e}; retrying in {delay:?}");
                self.backoff.insert(
                    name,
                    Backoff {
                        failures,
                        next_try: Instant::now() + delay,
                    },
                );
            }
        }
    }

    /// Keeps one retention hold per dynamic table at its `data_seq`, and
    /// releases the holds of dropped tables.
    fn maintain_holds(&mut self, graph: &Graph) {
        let store = self.engine.store();
        let mut now_held = HashSet::new();
        for (name, def) in &graph.tables {
            if let Some(seq) = def.data_seq {
                if !self.running.contains(name) {
                    store.set_retention_hold(&retention_holder(name), Some(seq));
                }
                now_held.insert(name.clone());
            }
        }
        for gone in self.held.difference(&now_held) {
            store.set_retention_hold(&retention_holder(gone), None);
        }
        self.held = now_held;
    }
}
