//! One client session: settings, the current transaction and statement dispatch.
//!
//! Every statement runs inside a storage transaction. In autocommit mode the
//! session opens one per statement and commits it before reporting completion,
//! so CommandComplete means durable. Inside `BEGIN … COMMIT` all statements share
//! one snapshot-isolated transaction; a failed statement moves the block to the
//! aborted state (25P02) until ROLLBACK, exactly as in Postgres.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionConfig;
use datafusion::sql::sqlparser::ast::{Ident, Statement, Value};

use freshet_sql::FreshetStatement;

use crate::commands::command;
use crate::engine::Engine;
use crate::planning::map_df_error;
use crate::prepared_lookup::PointLookup;
use crate::provider::{DatabaseList, SessionShared};
use crate::{CommandTag, EngineError, QueryOutput, TransactionStatus};

/// A statement parsed and planned once by the extended protocol's Parse, executed
/// many times by Bind/Execute.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// The statement text.
    pub sql: String,
    /// The types of `$1…$n`, inferred or declared.
    pub param_types: Vec<DataType>,
    /// Which of `$1…$n` are `json` (their Arrow type is text), so the wire
    /// layer describes and decodes them as Postgres json.
    pub json_params: Vec<bool>,
    /// The row description, or `None` for statements that return no rows.
    pub result_schema: Option<SchemaRef>,
    pub(crate) statement: Option<Arc<FreshetStatement>>,
    /// Set when the statement is a point lookup through a unique index,
    /// which executes without planning (see [`crate::prepared_lookup`]).
    pub(crate) point_lookup: Option<Arc<PointLookup>>,
}

impl PreparedStatement {
    /// Whether executing this statement takes microseconds whatever the data:
    /// transaction control, or an `INSERT … VALUES` of literals and
    /// parameters. The wire layer runs these on the connection's own thread,
    /// saving the hand-off to the compute runtime that dominates the cost of
    /// single-row writes.
    pub fn is_lightweight(&self) -> bool {
        match self.statement.as_deref() {
            Some(FreshetStatement::Standard(stmt)) => match stmt {
                Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. } => true,
                Statement::Insert(insert) => crate::fast_insert::is_lightweight(insert),
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the statement is a point lookup through a unique index,
    /// executed without planning unless the table changed since it was
    /// prepared or the index cannot answer for the transaction.
    pub fn is_point_lookup(&self) -> bool {
        self.point_lookup.is_some()
    }
}

/// State of a running `COPY … FROM STDIN`.
pub(crate) struct CopyInState {
    pub(crate) target: crate::dml::InsertTarget,
    pub(crate) columns: Vec<usize>,
    pub(crate) rows: u64,
    pub(crate) autocommit: bool,
}

/// A client session.
pub struct Session {
    pub(crate) engine: Arc<Engine>,
    user: String,
    pub(crate) database: String,
    pub(crate) search_path: Vec<String>,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) ctx: SessionContext,
    status: TransactionStatus,
    changed_parameters: Vec<(String, String)>,
    pub(crate) copy_in: Option<CopyInState>,
    /// The open block's savepoints, oldest first, by (folded) name.
    savepoints: Vec<(String, freshet_storage::Savepoint)>,
    /// Open cursors (DECLARE … CURSOR).
    pub(crate) cursors: crate::cursors::Cursors,
    /// What `RESET` (and `SET … TO DEFAULT`) returns each setting to: the
    /// server's defaults overlaid with the role's (ALTER ROLE … SET), as
    /// the session started with them.
    reset_values: BTreeMap<String, String>,
    /// The settings as the open transaction block began, which a ROLLBACK
    /// restores (`SET` is transactional in PostgreSQL).
    block_settings: Option<BTreeMap<String, String>>,
    /// Settings changed with `SET LOCAL` in the open block, each with the
    /// value it returns to when the block ends (`None`: it had none).
    local_settings: BTreeMap<String, Option<String>>,
}

/// Settings every session starts with; the reported ones are sent to clients.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("default_table_access_method", "heap"),
    ("default_transaction_isolation", "repeatable read"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("lc_messages", "C"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::system_info::SERVER_VERSION),
    ("server_version_num", crate::system_info::SERVER_VERSION_NUM),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
];

/// Settings a session can show but not change (55P02, as in Postgres).
const READ_ONLY_SETTINGS: &[&str] = &[
    "integer_datetimes",
    "query_memory_limit",
    "resident_data_limit",
    "server_encoding",
    "server_version",
    "server_version_num",
];

/// Settings whose changes Postgres reports with ParameterStatus, with their
/// canonical spelling.
const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("timezone", "TimeZone"),
    ("standard_conforming_strings", "standard_conforming_strings"),
];

/// `value` for setting `key` (lowercase) as it is stored and shown, or the
/// error `SET key = value` gives: 55P02 for a read-only setting, and the
/// checks of the settings Freshet acts on. Shared by `SET` and `ALTER ROLE
/// … SET`, which checks a role's default when it is given.
pub(crate) fn checked_setting(key: &str, value: String) -> Result<String, EngineError> {
    if READ_ONLY_SETTINGS.contains(&key) {
        return Err(EngineError::new(
            "55P02",
            format!("parameter \"{key}\" cannot be changed"),
        ));
    }
    match key {
        "timezone" => {
            let upper = value.to_ascii_uppercase();
            if upper != "UTC" && upper != "GMT" && upper != "ETC/UTC" && value != "Z" {
                // Timestamps are stored in UTC; other zones would silently mislabel them.
                return Err(EngineError::new(
                    "0A000",
                    format!("time zone \"{value}\" is not supported yet; Freshet sessions use UTC"),
                ));
            }
            Ok(value)
        }
        "statement_timeout" => Ok(crate::durations::display_millis(
            crate::durations::parse_millis(key, &value)?,
        )),
        // What is stored (and shown) is the level that is given.
        _ if crate::isolation::SETTINGS.contains(&key) => {
            crate::isolation::setting_value(key, &value)
        }
        _ => Ok(value),
    }
}

impl Session {
    /// A session of `user` in `database`; with `role_defaults`, one a user
    /// logs in to, which starts with the role's defaults (ALTER ROLE …
    /// SET). Refreshes run in sessions without them.
    pub(crate) fn new(
        engine: Arc<Engine>,
        user: String,
        database: String,
        role_defaults: bool,
    ) -> Result<Session, EngineError> {
        let shared = Arc::new(SessionShared::new(engine.store.clone(), user.clone()));
        let mut settings: BTreeMap<String, String> = DEFAULT_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.insert(
            "query_memory_limit".into(),
            crate::query_memory::display(engine.config.query_memory_limit),
        );
        settings.insert(
            "resident_data_limit".into(),
            crate::query_memory::display(engine.config.resident_data_limit),
        );
        // An unknown database is 3D000 before anything is built for it.
        let database_exists = shared
            .with_txn(|t| t.get_meta(&freshet_catalog::database_key(&database)))
            .map_err(map_df_error)?
            .is_some();
        if !database_exists {
            return Err(EngineError::new(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ));
        }
        *shared.settings.write() = settings;
        let ctx = build_context(&engine, &shared, &user, &database, "public")?;
        let mut session = Session {
            engine,
            user,
            database,
            search_path: vec!["public".into()],
            shared,
            ctx,
            status: TransactionStatus::Idle,
            changed_parameters: Vec::new(),
            copy_in: None,
            savepoints: Vec::new(),
            cursors: Default::default(),
            reset_values: BTreeMap::new(),
            block_settings: None,
            local_settings: BTreeMap::new(),
        };
        // Fail the connection early for an unknown database (3D000) or role.
        session.begin_statement_txn();
        let db_ok = session
            .shared
            .with_txn(|t| t.get_meta(&freshet_catalog::database_key(&session.database)))
            .map_err(map_df_error)?
            .is_some();
        let user = session
            .shared
            .with_txn(|t| {
                freshet_catalog::get::<freshet_catalog::UserEntry>(
                    t,
                    &freshet_catalog::user_key(&session.user),
                )
            })
            .map_err(map_df_error)?
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
        let user_ok = user.is_some();
        // A group (a role without LOGIN) is for membership, not sessions;
        // the server's own sessions (a dynamic table's refresh as its
        // owner) are not logins.
        let login_ok = !role_defaults || user.as_ref().is_none_or(|u| u.login);
        session.end_read_txn();
        if !db_ok {
            return Err(EngineError::new(
                "3D000",
                format!("database \"{}\" does not exist", session.database),
            ));
        }
        if !user_ok {
            return Err(EngineError::new(
                "28000",
                format!("role \"{}\" does not exist", session.user),
            ));
        }
        if !login_ok {
            return Err(EngineError::new(
                "28000",
                format!("role \"{}\" is not permitted to log in", session.user),
            ));
        }
        // The role's own defaults (ALTER ROLE … SET). One that no longer
        // applies is skipped with a warning, as PostgreSQL does.
        let defaults = user.filter(|_| role_defaults).map(|u| u.settings);
        for (name, value) in defaults.unwrap_or_default() {
            if let Err(e) = session.set_setting(&name, value) {
                tracing::warn!(
                    "role \"{}\": setting \"{name}\" not applied: {e}",
                    session.user
                );
            }
        }
        session.reset_values = session.shared.settings.read().clone();
        Ok(session)
    }

    /// The engine this session belongs to.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The authenticated user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The current database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Records the pid the session's connection was given, which
    /// `pg_backend_pid()` answers.
    pub fn set_backend_pid(&self, pid: i32) {
        self.shared.backend_pid.set(pid);
    }

    /// The state to report in ReadyForQuery.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.status
    }

    /// Settings changed since the last call that Postgres reports with
    /// ParameterStatus (TimeZone, application_name, DateStyle, …).
    pub fn take_parameter_status_changes(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.changed_parameters)
    }

    /// Runs a simple-protocol query string: its statements in order, stopping after
    /// the first error (which is the last element).
    pub async fn execute_simple(&mut self, sql: &str) -> Vec<Result<QueryOutput, EngineError>> {
        let statements = match freshet_sql::parse_sql_with_source(sql) {
            Ok(s) => s,
            Err(e) => {
                self.fail_in_block();
                self.engine.metrics.statement(
                    crate::server_metrics::StatementKind::of_source(sql),
                    crate::server_metrics::Outcome::Error,
                    std::time::Duration::ZERO,
                );
                return vec![Err(crate::error::from_sql_error(e))];
            }
        };
        if statements.is_empty() {
            return vec![Ok(QueryOutput::Empty)];
        }
        // Like Postgres, several statements sent in one query run as one
        // implicit transaction: all of them take effect or none. Statements
        // that manage transactions or commit on their own (Freshet's DDL,
        // COPY FROM STDIN) keep statement-by-statement autocommit.
        let implicit_block = statements.len() > 1
            && self.status == TransactionStatus::Idle
            && statements
                .iter()
                .all(|p| allowed_in_implicit_block(&p.statement));
        if implicit_block {
            self.begin_block();
        }
        let mut outputs = Vec::with_capacity(statements.len());
        for parsed in statements {
            let result = self
                .execute_statement(Arc::new(parsed.statement), &parsed.source, None)
                .await;
            let failed = result.is_err();
            outputs.push(result);
            if failed {
                break;
            }
        }
        if implicit_block {
            if outputs.iter().any(Result::is_err) {
                self.rollback_block();
            } else if let Err(e) = self.commit_block().await {
                outputs.push(Err(e));
            }
        }
        if let Some(Err(e)) = outputs.last_mut() {
            self.name_error_object(e);
        }
        outputs
    }

    /// Parses and plans one statement for the extended protocol. `declared` are the
    /// parameter types the client sent in Parse (`None` = let the server infer).
    pub async fn prepare(
        &mut self,
        sql: &str,
        declared: &[Option<DataType>],
    ) -> Result<PreparedStatement, EngineError> {
        let prepared = self.prepare_statement(sql, declared).await;
        if prepared.is_err() {
            // Postgres aborts an open block for a failed Parse just as for a
            // failed statement.
            self.fail_in_block();
        }
        prepared
    }

    async fn prepare_statement(
        &mut self,
        sql: &str,
        declared: &[Option<DataType>],
    ) -> Result<PreparedStatement, EngineError> {
        let mut statements =
            freshet_sql::parse_sql_with_source(sql).map_err(crate::error::from_sql_error)?;
        if statements.len() > 1 {
            return Err(EngineError::new(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(parsed) = statements.pop() else {
            return Ok(PreparedStatement {
                sql: sql.to_string(),
                param_types: Vec::new(),
                json_params: Vec::new(),
                result_schema: None,
                statement: None,
                point_lookup: None,
            });
        };
        let statement = Arc::new(parsed.statement);
        let described = self.describe(&statement, declared).await?;
        Ok(PreparedStatement {
            sql: sql.to_string(),
            param_types: described.param_types,
            json_params: described.json_params,
            result_schema: described.result_schema,
            statement: Some(statement),
            point_lookup: described.point_lookup.map(Arc::new),
        })
    }

    /// Executes a prepared statement with bound parameter values.
    pub async fn execute_prepared(
        &mut self,
        statement: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput, EngineError> {
        let Some(parsed) = statement.statement.clone() else {
            return Ok(QueryOutput::Empty);
        };
        let planning = match statement.point_lookup.as_deref() {
            Some(lookup) => Planning::LookupFirst(lookup),
            None => Planning::Plan,
        };
        let result = self
            .run_statement(parsed, &statement.sql, Some(params), planning)
            .await
            .and_then(|output| output.ok_or_else(not_executed));
        result.map_err(|mut e| {
            self.name_error_object(&mut e);
            e
        })
    }

    /// Names the relation of an error the storage layer raised about one
    /// of its tables (a unique violation), so the ErrorResponse carries its
    /// schema and table as PostgreSQL's does. Reads the catalog in the
    /// session's transaction if one is still open, else at the latest
    /// commit; a relation it cannot find is left unnamed.
    pub(crate) fn name_error_object(&self, error: &mut EngineError) {
        let Some(table_id) = error.unnamed_table() else {
            return;
        };
        let relations: Vec<freshet_catalog::RelationEntry> = self
            .shared
            .with_txn(|t| {
                freshet_catalog::list(t, &freshet_catalog::relation_prefix(self.database(), None))
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        if let Some(relation) = relations.iter().find(|r| r.table_id == Some(table_id)) {
            error.name_table(&relation.schema, &relation.name);
        }
    }

    /// Executes a prepared point lookup (see [`PreparedStatement::is_point_lookup`])
    /// without planning it: the statement's result, or `None` when it must
    /// be planned after all (then call [`Session::execute_prepared`]; nothing
    /// has changed). Takes microseconds whatever the data, so the wire layer
    /// runs it on the connection's own thread.
    pub async fn execute_point_lookup(
        &mut self,
        statement: &PreparedStatement,
        params: &[ScalarValue],
    ) -> Option<Result<QueryOutput, EngineError>> {
        let lookup = statement.point_lookup.as_deref()?;
        let parsed = statement.statement.clone()?;
        if self.status == TransactionStatus::Failed {
            return None;
        }
        self.run_statement(
            parsed,
            &statement.sql,
            Some(params.to_vec()),
            Planning::LookupOnly(lookup),
        )
        .await
        .transpose()
    }

    /// Works out parameter types and the result schema of a statement without
    /// changing anything.
    async fn describe(
        &mut self,
        statement: &Arc<FreshetStatement>,
        declared: &[Option<DataType>],
    ) -> Result<Described, EngineError> {
        if is_read_only_listing(statement) {
            // SHOW/DESCRIBE build their rows from the catalog: running them
            // is cheap and side-effect free, and is the only way the row
            // description is guaranteed to match what Execute sends.
            let schema = self.describe_by_running(statement).await?;
            return Ok(Described::new(
                declared_types(declared, 0),
                Vec::new(),
                schema,
            ));
        }
        let FreshetStatement::Standard(stmt) = statement.as_ref() else {
            let schema = crate::commands::describe_freshet(self, statement);
            return Ok(Described::new(
                model_source_parameter_types(statement, declared),
                Vec::new(),
                schema,
            ));
        };
        if !crate::commands::is_plannable(stmt) {
            let schema = crate::commands::describe_standard(self, stmt);
            let count = count_placeholders(stmt);
            return Ok(Described::new(
                declared_types(declared, count),
                Vec::new(),
                schema,
            ));
        }
        let started = self.begin_statement_txn();
        let described = self.describe_plannable(stmt, declared).await;
        if started {
            self.end_read_txn();
        }
        described
    }

    async fn describe_plannable(
        &mut self,
        stmt: &Statement,
        declared: &[Option<DataType>],
    ) -> Result<Described, EngineError> {
        // DataFusion cannot plan RETURNING; the parameters are typed from the
        // statement without it and the rows from the RETURNING list.
        let returning = crate::dml::describe_returning(self, stmt).await?;
        let plannable = crate::dml::name_leading_columns(self, without_returning(stmt));
        let plan = crate::planning::plan_query(&self.ctx.state(), plannable.clone()).await?;
        let inferred = plan.get_parameter_types().map_err(map_df_error)?;
        let inferred_fields = plan.get_parameter_fields().map_err(map_df_error)?;
        let cast_types = crate::pg_compat::placeholder_cast_types(&plan);
        let json_casts = crate::pg_compat::placeholder_json_casts(&plan);
        let count = inferred
            .keys()
            .filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok())
            .max()
            .unwrap_or(0)
            .max(declared.len());
        let mut types = Vec::with_capacity(count);
        let mut known = Vec::with_capacity(count);
        for i in 0..count {
            let id = format!("${}", i + 1);
            let from_plan = inferred.get(&id).cloned().flatten();
            let t = declared
                .get(i)
                .cloned()
                .flatten()
                .or_else(|| cast_types.get(&id).cloned())
                .or(from_plan);
            known.push(t.clone());
            types.push(t.unwrap_or(DataType::Utf8));
        }
        let json: Vec<bool> = (1..=count)
            .map(|i| {
                let id = format!("${i}");
                json_casts.contains(&id)
                    || inferred_fields
                        .get(&id)
                        .cloned()
                        .flatten()
                        .is_some_and(|f| crate::types::is_json(&f))
            })
            .collect();
        if let Some(schema) = returning {
            return Ok(Described::new(types, json, Some(schema)));
        }
        let schema = match &plan {
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                crate::commands::describe_standard(self, stmt)
            }
            _ if known.iter().any(Option::is_some) => {
                // Plan again with the parameter types fixed, so `SELECT $1`
                // is described with the type the client will bind.
                let typed = crate::planning::plan_with_parameter_types(
                    &self.ctx.state(),
                    plannable,
                    &known,
                )
                .await;
                match typed {
                    Ok(typed) => Some(crate::planning::analyzed_output_schema(
                        &self.ctx.state(),
                        &typed,
                    )),
                    Err(_) => Some(crate::planning::analyzed_output_schema(
                        &self.ctx.state(),
                        &plan,
                    )),
                }
            }
            _ => Some(crate::planning::analyzed_output_schema(
                &self.ctx.state(),
                &plan,
            )),
        };
        let point_lookup = schema
            .as_ref()
            .and_then(|output| PointLookup::recognize(self, &plan, output));
        let schema = match schema {
            Some(schema) => Some(crate::column_origins::annotate(self, &plan, schema).await),
            None => None,
        };
        Ok(Described {
            param_types: types,
            json_params: json,
            result_schema: schema,
            point_lookup,
        })
    }

    /// Runs a read-only listing statement and keeps only its row description.
    async fn describe_by_running(
        &mut self,
        statement: &Arc<FreshetStatement>,
    ) -> Result<Option<SchemaRef>, EngineError> {
        let started = self.begin_statement_txn();
        let output = crate::commands::run(self, statement.clone(), "", None).await;
        if started {
            self.end_read_txn();
        }
        Ok(match output? {
            QueryOutput::Rows { schema, .. } => Some(schema),
            _ => None,
        })
    }

    /// Runs one statement, handling transaction control and autocommit.
    pub(crate) async fn execute_statement(
        &mut self,
        statement: Arc<FreshetStatement>,
        source: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<QueryOutput, EngineError> {
        self.run_statement(statement, source, params, Planning::Plan)
            .await?
            .ok_or_else(not_executed)
    }

    /// [`Session::execute_statement`] as `planning` says: `None` only when
    /// a [`Planning::LookupOnly`] statement must be planned after all.
    ///
    /// Counts the statement by kind and outcome in the engine's metrics,
    /// with the time until its result was ready (rows of a query stream to
    /// the client afterwards, outside that time).
    async fn run_statement(
        &mut self,
        statement: Arc<FreshetStatement>,
        source: &str,
        params: Option<Vec<ScalarValue>>,
        planning: Planning<'_>,
    ) -> Result<Option<QueryOutput>, EngineError> {
        let started = std::time::Instant::now();
        let result = self
            .run_statement_uncounted(statement, source, params, planning)
            .await;
        let outcome = match &result {
            Ok(Some(_)) => Some(crate::server_metrics::Outcome::Ok),
            // Planned and counted by the execution that follows.
            Ok(None) => None,
            Err(_) => Some(crate::server_metrics::Outcome::Error),
        };
        if let Some(outcome) = outcome {
            self.engine.metrics.statement(
                crate::server_metrics::StatementKind::of_source(source),
                outcome,
                started.elapsed(),
            );
        }
        result
    }

    async fn run_statement_uncounted(
        &mut self,
        statement: Arc<FreshetStatement>,
        source: &str,
        params: Option<Vec<ScalarValue>>,
        planning: Planning<'_>,
    ) -> Result<Option<QueryOutput>, EngineError> {
        if let FreshetStatement::Standard(stmt) = statement.as_ref() {
            match stmt {
                Statement::StartTransaction { modes, .. } => {
                    crate::isolation::check_modes(modes)?;
                    return Ok(Some(self.begin_block()));
                }
                Statement::Commit { .. } => return self.commit_block().await.map(Some),
                Statement::Rollback {
                    savepoint: Some(name),
                    ..
                } => {
                    let result = self.rollback_to_savepoint(name);
                    return self.failing_block_on_error(result).map(Some);
                }
                Statement::Rollback { .. } => return Ok(Some(self.rollback_block())),
                Statement::Savepoint { name } if self.status != TransactionStatus::Failed => {
                    let result = self.savepoint(name);
                    return self.failing_block_on_error(result).map(Some);
                }
                Statement::ReleaseSavepoint { name }
                    if self.status != TransactionStatus::Failed =>
                {
                    let result = self.release_savepoint(name);
                    return self.failing_block_on_error(result).map(Some);
                }
                _ => {}
            }
        }
        if self.status == TransactionStatus::Failed {
            return Err(EngineError::new(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let autocommit = self.status == TransactionStatus::Idle;
        if autocommit {
            self.begin_statement_txn();
        }
        let looked_up = match planning {
            Planning::LookupFirst(lookup) | Planning::LookupOnly(lookup) => {
                lookup.run(self, params.as_deref().unwrap_or_default())
            }
            Planning::Plan => Ok(None),
        };
        let result = match looked_up {
            Ok(Some(rows)) => Ok(Some(rows)),
            Err(e) => Err(e),
            // A read-only transaction that read nothing: ending it below
            // changes nothing.
            Ok(None) if matches!(planning, Planning::LookupOnly(_)) => Ok(None),
            Ok(None) => {
                let params =
                    params.map(|p| ParamValues::List(p.into_iter().map(Into::into).collect()));
                crate::commands::run(self, statement, source, params)
                    .await
                    .map(Some)
            }
        };
        match result {
            Ok(output) => {
                if autocommit && self.copy_in.is_none() {
                    self.commit_statement_txn().await?;
                }
                Ok(output)
            }
            Err(e) => {
                if autocommit {
                    self.rollback_statement_txn();
                } else {
                    self.status = TransactionStatus::Failed;
                }
                Err(e)
            }
        }
    }

    fn begin_block(&mut self) -> QueryOutput {
        if self.status == TransactionStatus::Idle {
            self.begin_statement_txn();
            self.status = TransactionStatus::InBlock;
            self.block_settings = Some(self.shared.settings.read().clone());
            self.local_settings.clear();
        }
        // Postgres warns (not errors) on BEGIN inside a block.
        QueryOutput::Command(CommandTag {
            tag: "BEGIN".into(),
            rows: None,
        })
    }

    async fn commit_block(&mut self) -> Result<QueryOutput, EngineError> {
        match self.status {
            TransactionStatus::Idle => {}
            TransactionStatus::InBlock => {
                self.status = TransactionStatus::Idle;
                let committed = self.commit_statement_txn().await;
                self.end_block_settings(committed.is_ok());
                committed?;
            }
            TransactionStatus::Failed => {
                self.status = TransactionStatus::Idle;
                self.end_block_settings(false);
                self.rollback_statement_txn();
                return Ok(QueryOutput::Command(CommandTag {
                    tag: "ROLLBACK".into(),
                    rows: None,
                }));
            }
        }
        Ok(QueryOutput::Command(CommandTag {
            tag: "COMMIT".into(),
            rows: None,
        }))
    }

    fn rollback_block(&mut self) -> QueryOutput {
        if self.status != TransactionStatus::Idle {
            self.rollback_statement_txn();
            self.status = TransactionStatus::Idle;
            self.end_block_settings(false);
        }
        QueryOutput::Command(CommandTag {
            tag: "ROLLBACK".into(),
            rows: None,
        })
    }

    /// `result`, aborting an open block when it is an error, as any failed
    /// statement does.
    fn failing_block_on_error(
        &mut self,
        result: Result<QueryOutput, EngineError>,
    ) -> Result<QueryOutput, EngineError> {
        if result.is_err() {
            self.fail_in_block();
        }
        result
    }

    /// `SAVEPOINT name`: remembers the block's writes so far.
    fn savepoint(&mut self, name: &Ident) -> Result<QueryOutput, EngineError> {
        if self.status != TransactionStatus::InBlock {
            return Err(EngineError::new(
                "25P01",
                "SAVEPOINT can only be used in transaction blocks",
            ));
        }
        let savepoint = self
            .shared
            .txn
            .lock()
            .as_ref()
            .map(|t| t.savepoint())
            .ok_or_else(|| EngineError::new("XX000", "transaction block without a transaction"))?;
        self.savepoints.push((crate::names::ident(name), savepoint));
        Ok(command("SAVEPOINT", None))
    }

    /// The position of the newest savepoint called `name`.
    fn find_savepoint(&self, name: &Ident) -> Result<usize, EngineError> {
        let name = crate::names::ident(name);
        self.savepoints
            .iter()
            .rposition(|(n, _)| *n == name)
            .ok_or_else(|| {
                EngineError::new("3B001", format!("savepoint \"{name}\" does not exist"))
            })
    }

    /// `RELEASE [SAVEPOINT] name`: forgets the savepoint and those taken
    /// after it, keeping the writes.
    fn release_savepoint(&mut self, name: &Ident) -> Result<QueryOutput, EngineError> {
        if self.status != TransactionStatus::InBlock {
            return Err(EngineError::new(
                "25P01",
                "RELEASE SAVEPOINT can only be used in transaction blocks",
            ));
        }
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at);
        Ok(command("RELEASE", None))
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: undoes the writes made since the
    /// savepoint, which stays, and leaves an aborted block usable again.
    fn rollback_to_savepoint(&mut self, name: &Ident) -> Result<QueryOutput, EngineError> {
        if self.status == TransactionStatus::Idle {
            return Err(EngineError::new(
                "25P01",
                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
            ));
        }
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at + 1);
        if let Some(txn) = self.shared.txn.lock().as_mut() {
            txn.rollback_to(&self.savepoints[at].1);
        }
        self.copy_in = None;
        self.status = TransactionStatus::InBlock;
        Ok(command("ROLLBACK", None))
    }

    /// Moves an open block to the aborted state after a failure.
    pub(crate) fn mark_failed(&mut self) {
        self.fail_in_block();
    }

    /// Puts an open transaction block into the aborted state, as Postgres does
    /// after any failed statement. The wire layer calls this when a statement
    /// fails after the engine handed it a result (a stream that errors midway).
    pub fn fail_in_block(&mut self) {
        if self.status == TransactionStatus::InBlock {
            self.status = TransactionStatus::Failed;
        }
    }

    /// Cleans up after the wire layer abandoned a statement midway (a
    /// CancelRequest dropped its execution): an open block goes to the
    /// aborted state, and in autocommit mode the statement's own storage
    /// transaction is rolled back, so the next statement neither inherits
    /// its snapshot nor commits its partial writes.
    pub fn abandon_statement(&mut self) {
        match self.status {
            TransactionStatus::Idle => self.rollback_statement_txn(),
            TransactionStatus::InBlock | TransactionStatus::Failed => self.fail_in_block(),
        }
    }

    /// Opens a storage transaction if none is open. Returns whether it opened one.
    pub(crate) fn begin_statement_txn(&mut self) -> bool {
        let mut slot = self.shared.txn.lock();
        if slot.is_none() {
            *slot = Some(self.engine.store.begin());
            true
        } else {
            false
        }
    }

    /// Drops a read-only transaction opened for planning.
    pub(crate) fn end_read_txn(&mut self) {
        if self.status == TransactionStatus::Idle {
            self.shared.txn.lock().take();
        }
    }

    pub(crate) async fn commit_statement_txn(&mut self) -> Result<(), EngineError> {
        // A savepoint, and a cursor without HOLD, belong to the transaction
        // that ends here.
        self.savepoints.clear();
        self.cursors.end_transaction();
        let txn = self.shared.txn.lock().take();
        if let Some(txn) = txn {
            if !txn.is_read_only() {
                txn.commit().await.map_err(EngineError::from)?;
                self.engine.after_commit();
            }
        }
        Ok(())
    }

    pub(crate) fn rollback_statement_txn(&mut self) {
        self.copy_in = None;
        self.savepoints.clear();
        self.cursors.end_transaction();
        if let Some(txn) = self.shared.txn.lock().take() {
            txn.rollback();
        }
    }

    /// Changes a setting, recording it for ParameterStatus when Postgres reports it.
    /// How long a statement may run (`SET statement_timeout`), or `None`
    /// when it may run for ever. The wire layer enforces it: when it passes,
    /// the statement is cancelled with 57014, as a CancelRequest cancels it.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.shared
            .settings
            .read()
            .get("statement_timeout")
            .and_then(|shown| crate::durations::limit(shown))
    }

    pub(crate) fn set_setting(&mut self, name: &str, value: String) -> Result<(), EngineError> {
        let key = name.to_ascii_lowercase();
        let value = checked_setting(&key, value)?;
        match key.as_str() {
            "search_path" => {
                let schemas: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty() && s != "$user")
                    .collect();
                if let Some(first) = schemas.first().cloned() {
                    self.set_default_schema(&first);
                }
                self.search_path = schemas;
            }
            "statement_timeout" => {
                self.shared.settings.write().insert(key, value);
                return Ok(());
            }
            _ if crate::isolation::SETTINGS.contains(&key.as_str()) => {
                self.shared.settings.write().insert(key.clone(), value);
                return Ok(());
            }
            _ => {}
        }
        if let Some((_, canonical)) = REPORTED.iter().find(|(k, _)| *k == key) {
            self.changed_parameters
                .push((canonical.to_string(), value.clone()));
        }
        self.shared.settings.write().insert(key, value);
        Ok(())
    }

    /// `SET [LOCAL] name = value`, or with no `value` `RESET name` (`SET
    /// name TO DEFAULT`), as PostgreSQL scopes them: a `SET LOCAL` lasts
    /// until the transaction block ends, and outside one changes nothing
    /// (PostgreSQL warns); a plain `SET` lasts for the session unless the
    /// block it is in rolls back ([`Session::end_block_settings`]).
    pub(crate) fn change_setting(
        &mut self,
        name: &str,
        value: Option<String>,
        local: bool,
    ) -> Result<(), EngineError> {
        let key = name.to_ascii_lowercase();
        if local {
            if self.status != TransactionStatus::InBlock {
                return Ok(());
            }
            if !self.local_settings.contains_key(&key) {
                let current = self.shared.settings.read().get(&key).cloned();
                self.local_settings.insert(key.clone(), current);
            }
        } else {
            self.local_settings.remove(&key);
        }
        match value {
            Some(value) => self.set_setting(&key, value),
            None => self.reset_setting(&key),
        }
    }

    /// The end of a transaction block for the settings: a commit keeps what
    /// the block set, except its `SET LOCAL`s; a rollback returns every
    /// setting to what it was when the block began.
    fn end_block_settings(&mut self, committed: bool) {
        let began = self.block_settings.take();
        let locals = std::mem::take(&mut self.local_settings);
        let restore: Vec<(String, Option<String>)> = if committed {
            locals.into_iter().collect()
        } else {
            let Some(began) = began else { return };
            let current = self.shared.settings.read().clone();
            let mut restore: Vec<(String, Option<String>)> = began
                .iter()
                .filter(|(key, value)| current.get(*key) != Some(*value))
                .map(|(key, value)| (key.clone(), Some(value.clone())))
                .collect();
            restore.extend(
                current
                    .keys()
                    .filter(|key| !began.contains_key(*key))
                    .map(|key| (key.clone(), None)),
            );
            restore
        };
        for (key, value) in restore {
            match value {
                // Each was accepted once; one that no longer is keeps the
                // block's value.
                Some(value) => {
                    if let Err(e) = self.set_setting(&key, value) {
                        tracing::warn!("setting \"{key}\" not restored: {e}");
                    }
                }
                None => {
                    self.shared.settings.write().remove(&key);
                }
            }
        }
    }

    /// A setting the client sent in its startup packet (`application_name`):
    /// the session starts with it, and `RESET` returns to it, as in
    /// PostgreSQL.
    pub fn apply_startup_parameter(&mut self, name: &str, value: &str) -> Result<(), EngineError> {
        let key = name.to_ascii_lowercase();
        self.set_setting(&key, value.to_string())?;
        // Already announced to the client with the startup's ParameterStatus.
        self.changed_parameters
            .retain(|(name, _)| !name.eq_ignore_ascii_case(&key));
        if let Some(value) = self.shared.settings.read().get(&key) {
            self.reset_values.insert(key, value.clone());
        }
        Ok(())
    }

    /// `RESET name` or `SET name TO DEFAULT`: the setting returns to the
    /// value the session started with (the role's default, else the
    /// server's). A setting with no such value (a custom one the session
    /// set) is removed; a name never heard of is 42704.
    pub(crate) fn reset_setting(&mut self, name: &str) -> Result<(), EngineError> {
        let key = name.to_ascii_lowercase();
        if READ_ONLY_SETTINGS.contains(&key.as_str()) {
            return Err(EngineError::new(
                "55P02",
                format!("parameter \"{key}\" cannot be changed"),
            ));
        }
        match self.reset_values.get(&key).cloned() {
            Some(value) => self.set_setting(&key, value),
            None => {
                let known = self.shared.settings.write().remove(&key).is_some();
                // A custom `prefix.name` need not have been set.
                if known || key.contains('.') {
                    Ok(())
                } else {
                    Err(EngineError::new(
                        "42704",
                        format!("unrecognized configuration parameter \"{key}\""),
                    ))
                }
            }
        }
    }

    /// `RESET ALL` (and `DISCARD ALL`): every setting the session may
    /// change returns to its start value, except the current
    /// transaction's own characteristics, which PostgreSQL's RESET ALL
    /// leaves alone too.
    pub(crate) fn reset_all_settings(&mut self) -> Result<(), EngineError> {
        const KEPT: [&str; 3] = [
            "transaction_isolation",
            "transaction_read_only",
            "transaction_deferrable",
        ];
        let keys: Vec<String> = self.shared.settings.read().keys().cloned().collect();
        for key in keys {
            if !READ_ONLY_SETTINGS.contains(&key.as_str()) && !KEPT.contains(&key.as_str()) {
                self.reset_setting(&key)?;
            }
        }
        Ok(())
    }

    /// Switches the database (USE), rebuilding the DataFusion context.
    pub(crate) fn switch_database(
        &mut self,
        database: &str,
        schema: Option<&str>,
    ) -> Result<(), EngineError> {
        let schema = schema
            .map(str::to_string)
            .or_else(|| self.search_path.first().cloned())
            .unwrap_or_else(|| "public".into());
        self.ctx = build_context(&self.engine, &self.shared, &self.user, database, &schema)?;
        self.database = database.to_string();
        Ok(())
    }

    fn set_default_schema(&mut self, schema: &str) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = schema.to_string();
    }
}

fn declared_types(declared: &[Option<DataType>], count: usize) -> Vec<DataType> {
    (0..count.max(declared.len()))
        .map(|i| declared.get(i).cloned().flatten().unwrap_or(DataType::Utf8))
        .collect()
}

/// Parameter types of a Freshet statement: the only parameter these take is
/// a model's ONNX bytes (`CREATE MODEL … FROM $n`, `ALTER MODEL … ADD VERSION
/// … FROM $n`), which is bytea unless the client declared something else, so
/// drivers that let the server infer types send the bytes as binary.
fn model_source_parameter_types(
    statement: &FreshetStatement,
    declared: &[Option<DataType>],
) -> Vec<DataType> {
    use freshet_sql::{AlterModelAction, ModelSource};
    let source = match statement {
        FreshetStatement::CreateModel { source, .. } => Some(source),
        FreshetStatement::AlterModel {
            action: AlterModelAction::AddVersion { source, .. },
            ..
        } => Some(source),
        _ => None,
    };
    let bytes_parameter = match source {
        Some(ModelSource::Parameter(n)) => Some(*n),
        _ => None,
    };
    let count = declared.len().max(bytes_parameter.unwrap_or(0));
    (0..count)
        .map(|i| match declared.get(i).cloned().flatten() {
            Some(declared) => declared,
            None if Some(i + 1) == bytes_parameter => DataType::Binary,
            None => DataType::Utf8,
        })
        .collect()
}

/// Counts `$n` placeholders in a statement DataFusion cannot plan (e.g. CREATE MODEL … FROM $1).
fn count_placeholders(statement: &Statement) -> usize {
    use datafusion::sql::sqlparser::ast::{visit_expressions, Expr};
    let mut max = 0usize;
    let _ = visit_expressions(statement, |expr| {
        if let Expr::Value(v) = expr {
            if let Value::Placeholder(p) = &v.value {
                if let Ok(n) = p.trim_start_matches('$').parse::<usize>() {
                    max = max.max(n);
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    max
}

/// Builds the per-session DataFusion context: Freshet's catalogs, pg_catalog,
/// information_schema and Freshet's functions.
pub(crate) fn build_context(
    engine: &Arc<Engine>,
    shared: &Arc<SessionShared>,
    user: &str,
    database: &str,
    schema: &str,
) -> Result<SessionContext, EngineError> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(database, schema)
        // information_schema is registered below, corrected for Postgres.
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false)
        .with_target_partitions(engine.config.threads.max(1));
    {
        let options = config.options_mut();
        options.sql_parser.map_string_types_to_utf8view = false;
        options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        // Postgres types `1.005` as an exact numeric, so `numeric(10,2)`
        // rounds it to 1.01 instead of storing the float 1.00499….
        options.sql_parser.parse_float_as_decimal = true;
        // `timestamptz` is a zoned type (sent as Postgres timestamptz), in UTC.
        options.execution.time_zone = Some("+00:00".into());
        options.execution.parquet.schema_force_view_types = false;
    }
    let catalogs = Arc::new(DatabaseList {
        shared: shared.clone(),
    });
    let runtime = engine.runtime.clone();
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_catalog_list(catalogs)
        .with_default_features()
        .with_analyzer_rules(crate::type_resolution::analyzer_rules())
        .with_optimizer_rules(optimizer_rules())
        .with_physical_optimizer_rule(Arc::new(crate::filter_first::FilterFirst))
        .with_query_planner(Arc::new(crate::subplan::FreshetQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    *shared.state.write() = ctx.state_weak_ref();
    crate::pg_types::register_pg_catalog_functions(&ctx, database).map_err(map_df_error)?;
    {
        // information_schema and pg_catalog are code-provided schemas visible
        // from every database, so psql's \d keeps working after USE.
        let mut schemas = shared.virtual_schemas.write();
        let catalogs = ctx.state().catalog_list().clone();
        let information_schema = crate::info_schema::PostgresInformationSchema {
            inner: Arc::new(
                datafusion::catalog::information_schema::InformationSchemaProvider::new(
                    catalogs.clone(),
                ),
            ),
            catalogs: catalogs.clone(),
            shared: shared.clone(),
            database: database.to_string(),
        };
        schemas.insert("information_schema".into(), Arc::new(information_schema));
        let inner = crate::pg_types::current_database_pg_catalog(catalogs, database)
            .map_err(map_df_error)?;
        let key_oids = Arc::new(crate::pg_keys::KeyOids::default());
        crate::pg_keys::register(&ctx, key_oids.clone(), shared.clone(), database);
        let relation_oids = Arc::new(crate::relation_oids::RelationOids::default());
        crate::relation_size::register(&ctx, relation_oids.clone(), shared.clone(), database);
        crate::descriptions::register(&ctx, relation_oids.clone(), shared.clone(), database);
        crate::privilege_functions::register(&ctx, relation_oids.clone(), shared, database);
        let corrected = crate::pg_types::DeclaredTypesCatalog {
            inner,
            shared: shared.clone(),
            database: database.to_string(),
            key_oids,
            relation_oids,
            engine: engine.clone(),
        };
        schemas.insert("pg_catalog".into(), Arc::new(corrected));
    }
    // pg_catalog's own session_user answers "postgres"; drivers and tools show
    // and check the real login role.
    for name in ["current_user", "session_user", "user", "current_role"] {
        ctx.register_udf(constant_text_udf(name, user));
    }
    // Before pg_compat's casts, which pick a conversion by the operand's
    // type: `(ts - ts)::text` must see the interval these rules make.
    crate::float_ops::register(&ctx).map_err(crate::planning::map_df_error)?;
    crate::interval_scaling::register(&ctx).map_err(crate::planning::map_df_error)?;
    crate::float_domain::register(&ctx);
    crate::jsonb_concat::register(&ctx);
    crate::jsonb_order::register(&ctx);
    crate::recursive_cte::register(&ctx);
    crate::at_time_zone::register(&ctx);
    crate::datetime_ops::register(&ctx);
    crate::case_mapping::register(&ctx);
    crate::like_escape::register(&ctx);
    crate::set_multiplicity::register(&ctx);
    crate::interval_justify::register(&ctx);
    crate::datetime_constructors::register(&ctx).map_err(crate::planning::map_df_error)?;
    crate::string_format::register(&ctx);
    crate::numeric_functions::register(&ctx);
    crate::clock_timestamp::register(&ctx);
    crate::ordered_set_aggregates::register(&ctx);
    crate::template_input::register(&ctx);
    crate::number_templates::register(&ctx);
    crate::to_hex::register(&ctx);
    crate::age::register(&ctx);
    crate::array_dims::register(&ctx);
    crate::array_overlap::register(&ctx);
    crate::array_comparisons::register(&ctx);
    crate::unary_operators::register(&ctx);
    crate::jsonb_containment::register(&ctx);
    crate::json_sets::register(&ctx);
    crate::regexp_matches::register(&ctx);
    // PostgreSQL's name for DataFusion's signum.
    ctx.register_udf(
        datafusion::functions::math::signum()
            .as_ref()
            .clone()
            .with_aliases(["sign"]),
    );
    // PostgreSQL's other names for two of DataFusion's aggregates.
    ctx.register_udaf(
        datafusion::functions_aggregate::bool_and_or::bool_and_udaf()
            .as_ref()
            .clone()
            .with_aliases(["every"]),
    );
    ctx.register_udaf(
        datafusion::functions_aggregate::variance::var_samp_udaf()
            .as_ref()
            .clone()
            .with_aliases(["variance"]),
    );
    crate::pg_compat::register(&ctx);
    crate::json_build::register(&ctx);
    crate::subquery::register(&ctx);
    crate::overflow::register(&ctx);
    ctx.add_analyzer_rule(Arc::new(crate::similar_to::PostgresSimilarTo));
    crate::with_ties::register(&ctx);
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
        crate::pg_to_char::ToChar::new(),
    ));
    // PostgreSQL's array_remove and array_replace act on every matching
    // element; DataFusion's functions of those names on the first only.
    for (all, postgres_name) in [
        (
            datafusion::functions_nested::remove::array_remove_all_udf(),
            "array_remove",
        ),
        (
            datafusion::functions_nested::replace::array_replace_all_udf(),
            "array_replace",
        ),
    ] {
        ctx.register_udf(all.as_ref().clone().with_aliases([postgres_name]));
    }
    crate::system_info::register(&ctx, shared.clone());
    crate::functions::register(&ctx, engine, shared);
    // After pg_catalog's functions: its pg_backend_pid() answers 1.
    crate::activity::register(&ctx, engine, shared);
    crate::roles::register(&ctx, shared);
    crate::pg_expandarray::register(&ctx);
    crate::array_subquery::register(&ctx);
    // Last: the subqueries it moves out of sight are past every other rule.
    crate::lateral::register(&ctx);
    crate::subplan::register(&ctx);
    Ok(ctx)
}

/// DataFusion's optimizer rules that copy an expression into each of its
/// uses: they push struct-field access (`p['label']`) down through the
/// projection that defines `p`, so `p['label'], p['probabilities']` over
/// `m!predict(…) AS p` (what the Python client's `model.run` writes) called
/// the model twice and scored every row twice. Freshet's tables are not
/// nested Parquet, so the field pruning they enable gains nothing here.
const EXPRESSION_COPYING_RULES: [&str; 2] =
    ["extract_leaf_expressions", "push_down_leaf_projections"];

/// DataFusion's default optimizer rules without [`EXPRESSION_COPYING_RULES`].
fn optimizer_rules() -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
    datafusion::optimizer::Optimizer::new()
        .rules
        .into_iter()
        .filter(|rule| !EXPRESSION_COPYING_RULES.contains(&rule.name()))
        .collect()
}

/// A zero-argument function that always returns `value` (per session).
fn constant_text_udf(name: &str, value: &str) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility};
    let value = value.to_string();
    datafusion::logical_expr::create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

impl Drop for Session {
    /// Breaks the reference cycle between the session's shared state and the
    /// catalog providers registered in it (pg_catalog and information_schema
    /// hold the database list, which holds the shared state); without this
    /// every connection would leak, and with it the store it points to.
    fn drop(&mut self) {
        self.shared.virtual_schemas.write().clear();
    }
}

/// Parameter types, which parameters are json, and the row description.
/// How [`Session::run_statement`] executes a statement.
#[derive(Clone, Copy)]
enum Planning<'a> {
    /// Plan it.
    Plan,
    /// Try the point lookup it was prepared as, and plan it if that declines.
    LookupFirst(&'a PointLookup),
    /// Only the point lookup: nothing is done if it declines.
    LookupOnly(&'a PointLookup),
}

fn not_executed() -> EngineError {
    EngineError::new("XX000", "internal error: a statement was not executed")
}

/// What describing a statement found out.
struct Described {
    param_types: Vec<DataType>,
    json_params: Vec<bool>,
    result_schema: Option<SchemaRef>,
    point_lookup: Option<PointLookup>,
}

impl Described {
    fn new(
        param_types: Vec<DataType>,
        json_params: Vec<bool>,
        result_schema: Option<SchemaRef>,
    ) -> Described {
        Described {
            param_types,
            json_params,
            result_schema,
            point_lookup: None,
        }
    }
}

/// SHOW and DESCRIBE statements: they only read the catalog.
fn is_read_only_listing(statement: &FreshetStatement) -> bool {
    matches!(
        statement,
        FreshetStatement::ShowTables { .. }
            | FreshetStatement::ShowSchemas { .. }
            | FreshetStatement::ShowDatabases { .. }
            | FreshetStatement::ShowDynamicTables { .. }
            | FreshetStatement::DescribeDynamicTable { .. }
            | FreshetStatement::ShowModels { .. }
            | FreshetStatement::ShowModelGrants { .. }
            | FreshetStatement::ShowVersions { .. }
            | FreshetStatement::DescribeModel { .. }
            | FreshetStatement::Standard(Statement::ShowVariable { .. })
            | FreshetStatement::Standard(Statement::ShowTables { .. })
    )
}

/// The statement with any RETURNING clause removed.
fn without_returning(stmt: &Statement) -> Statement {
    let mut stmt = stmt.clone();
    match &mut stmt {
        // DataFusion plans neither ON CONFLICT nor an INSERT's table alias;
        // describing the statement needs neither.
        Statement::Insert(insert) => {
            insert.returning = None;
            insert.on = None;
            insert.table_alias = None;
        }
        Statement::Update(update) => update.returning = None,
        Statement::Delete(delete) => delete.returning = None,
        _ => {}
    }
    stmt
}

/// Whether a statement can share an implicit transaction with its neighbours
/// in a multi-statement query string.
fn allowed_in_implicit_block(statement: &FreshetStatement) -> bool {
    match statement {
        FreshetStatement::Standard(stmt) => !matches!(
            stmt,
            Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Copy { .. }
        ),
        _ => false,
    }
}
