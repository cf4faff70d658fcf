//! The query engine: sessions, planning with DataFusion, and execution of DDL and
//! DML against Freshet's durable storage.
//!
//! The wire front end (`freshet-wire`) knows nothing about SQL semantics: it hands
//! statement text and bound parameters to a [`Session`], and turns the
//! [`QueryOutput`] it gets back into Postgres protocol messages. Everything that
//! decides *what* a statement means — name resolution, transactions, snapshots,
//! model calls, dynamic-table DDL — lives here, so that the same semantics serve
//! psql, drivers and the refresh scheduler alike.

pub mod activity;
mod age;
mod aggregate_results;
mod array_comparisons;
mod array_constructors;
mod array_dims;
mod array_literals;
mod array_overlap;
mod array_subquery;
mod at_time_zone;
mod case_mapping;
mod catalog_names;
mod catalog_views;
mod clock_timestamp;
mod column_origins;
mod commands;
mod cursors;
mod datetime_constructors;
mod datetime_input;
mod datetime_ops;
mod ddl;
mod delta_aggregate;
mod descriptions;
mod dml;
mod durations;
mod dynamic;
mod engine;
mod error;
mod exact_avg;
mod fast_insert;
mod fetch_first;
mod filter_first;
mod float_aggregates;
mod float_domain;
mod float_frames;
mod float_input;
mod float_ops;
mod functions;
mod index_lookup;
mod indexes;
mod info_schema;
mod interval_justify;
mod interval_literals;
mod interval_scaling;
mod isolation;
mod join_arrangement;
mod json_build;
mod json_operands;
mod json_sets;
pub(crate) mod json_text;
mod jsonb_concat;
mod jsonb_containment;
mod jsonb_order;
mod keys;
mod lateral;
mod like_escape;
mod literal_types;
pub mod memory_usage;
mod names;
mod number_templates;
mod numeric_functions;
mod numeric_text;
mod ordered_set_aggregates;
mod output;
mod output_names;
mod overflow;
mod pg_compat;
mod pg_expandarray;
mod pg_format;
mod pg_from_char;
mod pg_ident;
mod pg_keys;
mod pg_number_format;
mod pg_to_char;
mod pg_types;
mod plan_rewrite;
mod planning;
mod prepared_lookup;
mod privilege_functions;
mod privileges;
mod provider;
pub mod query_memory;
mod real_sum;
mod recursive_cte;
mod regexp_matches;
mod registry;
mod relation_oids;
mod relation_size;
mod roles;
mod row_comparisons;
mod row_keys;
mod segment_pruning;
pub mod server_metrics;
mod session;
mod set_multiplicity;
mod set_returning;
mod similar_to;
mod state_tables;
mod storage_metrics;
mod stored_scan;
mod string_format;
mod subplan;
mod subquery;
mod system_info;
mod table_function_names;
mod template_input;
mod to_hex;
mod type_resolution;
pub mod types;
mod udf_args;
mod unanswerable;
mod unary_operators;
mod users;
mod using_wildcards;
mod value_counts;
mod with_ties;
mod work;

pub use column_origins::{COLUMN_NUMBER_METADATA, TABLE_OID_METADATA};
pub use datetime_input::parse_date_text;
pub use dynamic::{
    dynamic_table_lags, record_skipped, record_upstream_failed, refresh_dynamic_table,
    restore_retention_holds, retention_holder, DynamicTableLag, RefreshRecord, RefreshStatistics,
    RefreshTrigger, HISTORY_LIMIT, MAX_CONSECUTIVE_FAILURES, SOURCE_ROW_ID_COLUMN,
};
pub use engine::{Engine, EngineConfig, ScramSecret};
pub use error::{EngineError, ErrorObject};
pub use float_input::{parse_float4, parse_float8};
/// Limits on statements and the stack size they are measured against.
pub use freshet_sql::{MAX_EXPRESSION_DEPTH, WORKER_STACK_SIZE};
pub use output::{
    batch_output, CommandTag, CopyFormat, CopyInTarget, CopyOptions, QueryOutput, RowsCommand,
    TransactionStatus,
};
pub use planning::map_df_error;
pub use session::{PreparedStatement, Session};
pub use system_info::{version_string, SERVER_VERSION, SERVER_VERSION_NUM};
