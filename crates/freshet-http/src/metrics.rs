//! `/metrics`: the engine's figures in the OpenMetrics text format.
//!
//! Every family here is read at scrape time from where the engine already
//! counts it: [`freshet_storage::StoreMetrics`] (what
//! `freshet_storage_metrics()` shows), the rows of `freshet_memory_usage()`,
//! the lag `SHOW DYNAMIC TABLES` shows, and the engine's
//! [`ServerMetrics`](freshet_engine::server_metrics::ServerMetrics)
//! (statements, connections, refreshes, model scoring). The families, with
//! their meaning, are listed in `docs/operations.md`.
//!
//! Names follow the Prometheus conventions: a `freshet_` prefix, base units
//! (seconds, bytes) in the name, and counters exposed with a `_total`
//! suffix (the encoder appends it to the family name given here).
//!
//! Label values that come from names (tables, models, versions) are escaped
//! here ([`Escaped`]): the encoder writes label values as they are, so a
//! table named `a"b` would otherwise break the page.

use std::sync::Arc;

use freshet_engine::Engine;
use freshet_storage::histogram::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

type FmtResult = Result<(), std::fmt::Error>;

/// The current figures of `engine`, as an OpenMetrics text page.
pub fn render(engine: &Arc<Engine>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector {
        engine: engine.clone(),
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// A label value escaped as the text format requires: `\\`, `\"` and `\n`
/// for a backslash, a double quote and a line feed.
#[derive(Debug, Clone, Copy)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> FmtResult {
        use std::fmt::Write as _;
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(rest.get(..i).unwrap_or_default())?;
            let escaped = match rest.as_bytes().get(i) {
                Some(b'\\') => "\\\\",
                Some(b'"') => "\\\"",
                _ => "\\n",
            };
            encoder.write_str(escaped)?;
            rest = rest.get(i + 1..).unwrap_or_default();
        }
        encoder.write_str(rest)
    }
}

#[derive(Debug)]
struct EngineCollector {
    engine: Arc<Engine>,
}

fn counter(m: &mut MetricEncoder, value: u64) -> FmtResult {
    m.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn histogram(m: &mut MetricEncoder, h: &HistogramSnapshot) -> FmtResult {
    let mut buckets: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .copied()
        .zip(h.counts.iter().copied())
        .collect();
    // The last count is of observations above every bound: the +Inf bucket.
    buckets.push((f64::MAX, h.counts.last().copied().unwrap_or(0)));
    m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count(), &buckets, None)
}

/// A metric family without labels holding one counter.
fn single_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> FmtResult {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    counter(&mut m, value)
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> FmtResult {
        let engine = &self.engine;
        let server = engine.metrics();

        // Connections and statements (counted by the wire layer and the
        // session that runs each statement).
        {
            let mut m = encoder.encode_descriptor(
                "freshet_connections",
                "Client connections open now (past authentication).",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&server.connections())?;
        }
        single_counter(
            &mut encoder,
            "freshet_connections_opened",
            "Client connections that completed start-up since the server started.",
            server.connections_total(),
        )?;
        let statements = server.statements();
        {
            let mut m = encoder.encode_descriptor(
                "freshet_statements",
                "Client statements run, by kind and outcome.",
                None,
                MetricType::Counter,
            )?;
            for (kind, outcome, h) in &statements {
                let labels = [("kind", kind.as_str()), ("outcome", outcome.as_str())];
                counter(&mut m.encode_family(&labels)?, h.count())?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_statement_duration_seconds",
                "Time from the start of a client statement until its result was ready \
                 (rows of a query stream to the client afterwards), by kind and outcome.",
                None,
                MetricType::Histogram,
            )?;
            for (kind, outcome, h) in &statements {
                let labels = [("kind", kind.as_str()), ("outcome", outcome.as_str())];
                histogram(&mut m.encode_family(&labels)?, h)?;
            }
        }

        // Storage (freshet_storage_metrics()).
        let store = engine.store().metrics();
        single_counter(
            &mut encoder,
            "freshet_commits",
            "Write transactions committed since the server started.",
            store.commits,
        )?;
        single_counter(
            &mut encoder,
            "freshet_wal_syncs",
            "WAL flush and fsync rounds (one per group of commits).",
            store.wal_syncs,
        )?;
        {
            let mut m = encoder.encode_descriptor(
                "freshet_wal_sync_duration_seconds",
                "How long each WAL flush and fsync round took.",
                None,
                MetricType::Histogram,
            )?;
            histogram(&mut m, &engine.store().wal_sync_latency())?;
        }
        single_counter(
            &mut encoder,
            "freshet_wal_written_bytes",
            "Bytes written to the WAL.",
            store.wal_bytes,
        )?;
        single_counter(
            &mut encoder,
            "freshet_checkpoints",
            "Checkpoints completed.",
            store.checkpoints,
        )?;
        single_counter(
            &mut encoder,
            "freshet_compaction_segments",
            "Segments merged or removed by compaction.",
            store.compactions,
        )?;
        single_counter(
            &mut encoder,
            "freshet_change_segments_read",
            "Segments read to compute change sets for refreshes.",
            store.change_segments_read,
        )?;
        single_counter(
            &mut encoder,
            "freshet_evicted_bytes",
            "Bytes of checkpointed column data evicted from memory.",
            store.evicted_bytes,
        )?;
        single_counter(
            &mut encoder,
            "freshet_segment_file_reads",
            "Reads of evicted column data from segment files (one per segment and scan).",
            store.segment_file_reads,
        )?;

        // Memory (freshet_memory_usage()).
        let memory = freshet_engine::memory_usage::memory_usage(engine);
        {
            let mut m = encoder.encode_descriptor(
                "freshet_memory_bytes",
                "Memory held now, by component (the rows of freshet_memory_usage()).",
                None,
                MetricType::Gauge,
            )?;
            for row in &memory {
                m.encode_family(&[("component", row.component)])?
                    .encode_gauge(&row.bytes)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_memory_limit_bytes",
                "The limit bounding a memory component, for those that have one.",
                None,
                MetricType::Gauge,
            )?;
            for row in &memory {
                if let Some(limit) = row.limit_bytes {
                    m.encode_family(&[("component", row.component)])?
                        .encode_gauge(&limit)?;
                }
            }
        }

        // Dynamic tables.
        let lags = freshet_engine::dynamic_table_lags(engine).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: cannot list dynamic tables");
            Vec::new()
        });
        {
            let mut m = encoder.encode_descriptor(
                "freshet_dynamic_table_lag_seconds",
                "Seconds since the time a dynamic table's contents are current as of \
                 (lag_seconds of SHOW DYNAMIC TABLES); absent before its first refresh.",
                None,
                MetricType::Gauge,
            )?;
            for t in &lags {
                if let Some(lag) = t.lag_seconds {
                    m.encode_family(&[("table", Escaped(&t.name))])?
                        .encode_gauge(&lag)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_dynamic_table_target_lag_seconds",
                "A dynamic table's target lag; absent for TARGET_LAG = DOWNSTREAM.",
                None,
                MetricType::Gauge,
            )?;
            for t in &lags {
                if let Some(target) = t.target_lag_seconds {
                    m.encode_family(&[("table", Escaped(&t.name))])?
                        .encode_gauge(&target)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_dynamic_table_suspended",
                "1 when a dynamic table's scheduling is suspended (by ALTER … SUSPEND or \
                 after repeated failures), else 0.",
                None,
                MetricType::Gauge,
            )?;
            for t in &lags {
                let suspended = i64::from(t.scheduling_state != "RUNNING");
                m.encode_family(&[("table", Escaped(&t.name))])?
                    .encode_gauge(&suspended)?;
            }
        }
        let refreshes = server.refreshes();
        {
            let mut m = encoder.encode_descriptor(
                "freshet_dynamic_table_refreshes",
                "Refreshes since the server started, by dynamic table, action \
                 (NO_DATA, INCREMENTAL, FULL, REINITIALIZE; NONE when nothing ran) \
                 and state (SUCCEEDED, FAILED, SKIPPED, UPSTREAM_FAILED).",
                None,
                MetricType::Counter,
            )?;
            for (table, figures) in &refreshes {
                for ((action, state), count) in &figures.by_action_state {
                    let action = if action.is_empty() { "NONE" } else { action };
                    let labels = [
                        ("table", Escaped(table)),
                        ("action", Escaped(action)),
                        ("state", Escaped(state)),
                    ];
                    counter(&mut m.encode_family(&labels)?, *count)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_dynamic_table_refresh_duration_seconds",
                "How long refreshes that ran took, from start to commit or failure.",
                None,
                MetricType::Histogram,
            )?;
            for (table, figures) in &refreshes {
                if let Some(h) = &figures.duration {
                    histogram(&mut m.encode_family(&[("table", Escaped(table))])?, h)?;
                }
            }
        }

        // Model scoring.
        let scoring = server.scoring();
        {
            let mut m = encoder.encode_descriptor(
                "freshet_model_rows_scored",
                "Rows handed to a model version by model calls (queries and refreshes).",
                None,
                MetricType::Counter,
            )?;
            for ((model, version), f) in &scoring {
                let labels = [("model", Escaped(model)), ("version", Escaped(version))];
                counter(&mut m.encode_family(&labels)?, f.rows)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_model_calls",
                "Model calls (batches of up to --inference-batch-size rows) by model version.",
                None,
                MetricType::Counter,
            )?;
            for ((model, version), f) in &scoring {
                let labels = [("model", Escaped(model)), ("version", Escaped(version))];
                counter(&mut m.encode_family(&labels)?, f.calls)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "freshet_model_scoring_seconds",
                "Time spent scoring rows, by model version.",
                None,
                MetricType::Counter,
            )?;
            for ((model, version), f) in &scoring {
                let labels = [("model", Escaped(model)), ("version", Escaped(version))];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&f.seconds, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a label set is written on the page.
    fn written(value: &str) -> String {
        #[derive(Debug)]
        struct One(String);
        impl Collector for One {
            fn encode(&self, mut encoder: DescriptorEncoder) -> FmtResult {
                let mut m = encoder.encode_descriptor("x", "x", None, MetricType::Gauge)?;
                m.encode_family(&[("l", Escaped(&self.0))])?
                    .encode_gauge(&1i64)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(value.to_owned())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out.lines()
            .find(|l| l.starts_with("x{"))
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(written("plain"), r#"x{l="plain"} 1"#);
        assert_eq!(written("we\"ird\\dt"), r#"x{l="we\"ird\\dt"} 1"#);
        assert_eq!(written("two\nlines"), r#"x{l="two\nlines"} 1"#);
    }
}
