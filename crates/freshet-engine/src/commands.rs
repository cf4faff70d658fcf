//! Statement dispatch: which module executes which statement.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    ContextModifier, DiscardObject, Expr, Reset, Set, Statement, Value,
};

use freshet_sql::FreshetStatement;

use crate::planning::map_df_error;
use crate::session::Session;
use crate::{batch_output, CommandTag, EngineError, QueryOutput, RowsCommand};

/// Whether DataFusion's planner understands this statement (used by Describe).
pub(crate) fn is_plannable(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Explain { .. }
    )
}

/// The row description of a non-query standard statement, if it returns rows.
pub(crate) fn describe_standard(session: &Session, statement: &Statement) -> Option<SchemaRef> {
    match statement {
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            Some(text_schema(&[name.as_str()]))
        }
        Statement::ShowTables { .. } => Some(text_schema(&["schema_name", "name", "kind"])),
        Statement::Fetch { name, .. } => session.cursors.schema(name),
        Statement::Insert(insert) if insert.returning.is_some() => None,
        _ => None,
    }
}

/// The row description of a Freshet statement, if it returns rows.
pub(crate) fn describe_freshet(
    session: &Session,
    statement: &FreshetStatement,
) -> Option<SchemaRef> {
    crate::registry::describe(session, statement)
        .or_else(|| crate::dynamic::describe(session, statement))
}

/// A schema of nullable text columns.
pub(crate) fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// One batch of text rows.
pub(crate) fn text_rows(names: &[&str], rows: Vec<Vec<Option<String>>>) -> QueryOutput {
    let schema = text_schema(names);
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    match RecordBatch::try_new(schema.clone(), columns) {
        Ok(batch) => batch_output(batch),
        Err(_) => batch_output(RecordBatch::new_empty(schema)),
    }
}

pub(crate) fn command(tag: &str, rows: Option<u64>) -> QueryOutput {
    QueryOutput::Command(CommandTag {
        tag: tag.to_string(),
        rows,
    })
}

/// Executes one statement inside the session's current transaction.
pub(crate) async fn run(
    session: &mut Session,
    statement: Arc<FreshetStatement>,
    source: &str,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    match statement.as_ref() {
        FreshetStatement::Standard(stmt) => run_standard(session, stmt, source, params).await,
        other => {
            if let Some(result) = crate::ddl::run_freshet(session, other).await {
                return result;
            }
            if let Some(result) = crate::registry::run(session, other, params.as_ref()).await {
                return result;
            }
            if let Some(result) = crate::dynamic::run(session, other, source).await {
                return result;
            }
            Err(EngineError::new(
                "0A000",
                "this statement is not supported yet",
            ))
        }
    }
}

async fn run_standard(
    session: &mut Session,
    stmt: &Statement,
    source: &str,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    match stmt {
        Statement::Query(_) | Statement::Explain { .. } => {
            run_query(session, stmt.clone(), params).await
        }
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
            crate::dml::run_dml(session, stmt, params).await
        }
        Statement::Truncate(_) => crate::dml::truncate(session, stmt).await,
        Statement::Copy { .. } => crate::dml::copy(session, stmt, params).await,
        Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateIndex(_)
        | Statement::Drop { .. }
        | Statement::AlterTable(_) => crate::ddl::run_standard(session, stmt, source, params).await,
        Statement::Grant(grant) => crate::privileges::grant(session, grant),
        Statement::Revoke(revoke) => crate::privileges::revoke(session, revoke),
        Statement::Set(set) => run_set(session, set),
        Statement::Reset(reset) => {
            match &reset.reset {
                Reset::ALL => session.reset_all_settings()?,
                Reset::ConfigurationParameter(name) => {
                    session.change_setting(&name.to_string(), None, false)?
                }
            }
            Ok(command("RESET", None))
        }
        Statement::ShowVariable { variable } => run_show(session, variable),
        Statement::ShowTables { .. } => {
            crate::ddl::show_tables(session, None, &freshet_sql::ShowScope::Current)
        }
        Statement::Use(_) => crate::ddl::run_use(session, stmt),
        Statement::Discard { object_type } => {
            // Freshet caches no plans, has no sequences and no temporary
            // tables: only ALL has something to discard, the cursors and
            // the settings.
            if matches!(object_type, DiscardObject::ALL) {
                session.cursors.close_all();
                session.reset_all_settings()?;
            }
            Ok(command(&format!("DISCARD {object_type}"), None))
        }
        Statement::Declare { stmts } => crate::cursors::declare(session, stmts, params).await,
        Statement::Fetch {
            name,
            direction,
            into: None,
            ..
        } => crate::cursors::fetch(session, name, direction).await,
        Statement::Close { cursor } => crate::cursors::close(session, cursor),
        Statement::Deallocate { .. } => Ok(command("DEALLOCATE", None)),
        Statement::Analyze { .. } => Ok(command("ANALYZE", None)),
        Statement::CreateRole(_) | Statement::AlterRole { .. } => Err(EngineError::new(
            "0A000",
            "use CREATE USER name PASSWORD '…' to create users",
        )),
        other => Err(EngineError::new(
            "0A000",
            format!(
                "statement not supported: {}",
                other.to_string().chars().take(60).collect::<String>()
            ),
        )),
    }
}

/// Plans and runs a row-returning statement; rows stream lazily.
pub(crate) async fn run_query(
    session: &mut Session,
    stmt: Statement,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let state = session.ctx.state();
    let mut plan = crate::planning::plan_query(&state, stmt).await?;
    if let Some(params) = params {
        plan = plan.with_param_values(params).map_err(map_df_error)?;
    }
    let renamed_columns = crate::planning::display_schema(&plan).is_some();
    let schema: SchemaRef = crate::planning::analyzed_output_schema(&state, &plan);
    let schema = crate::column_origins::annotate(session, &plan, schema).await;
    let df = session
        .ctx
        .execute_logical_plan(plan)
        .await
        .map_err(map_df_error)?;
    let stream = df.execute_stream().await.map_err(map_df_error)?;
    if !renamed_columns {
        return Ok(QueryOutput::Rows {
            schema,
            stream,
            command: RowsCommand::Select,
        });
    }
    // Output names Postgres allows to repeat (see `plan_query`). The
    // renamed schema wraps the batches as they come; the wire carries no
    // nullability, so it claims none (an analyzed NOT NULL need not hold of
    // a catalog subquery Freshet answers with NULL).
    let schema: SchemaRef =
        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
    let renamed = schema.clone();
    let stream = futures::StreamExt::map(stream, move |batch| {
        batch.and_then(|batch| {
            datafusion::arrow::record_batch::RecordBatch::try_new(
                renamed.clone(),
                batch.columns().to_vec(),
            )
            .map_err(|e| datafusion::common::DataFusionError::ArrowError(Box::new(e), None))
        })
    });
    let stream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema.clone(), stream),
    );
    Ok(QueryOutput::Rows {
        schema,
        stream,
        command: RowsCommand::Select,
    })
}

fn expr_setting_value(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn run_set(session: &mut Session, set: &Set) -> Result<QueryOutput, EngineError> {
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            let name = variable.to_string();
            let value = values
                .iter()
                .map(expr_setting_value)
                .collect::<Vec<_>>()
                .join(", ");
            let value = (!value.eq_ignore_ascii_case("default")).then_some(value);
            let local = matches!(scope, Some(ContextModifier::Local));
            session.change_setting(&name, value, local)?;
            Ok(command("SET", None))
        }
        Set::SetTimeZone { value, local } => {
            session.change_setting("timezone", Some(expr_setting_value(value)), *local)?;
            Ok(command("SET", None))
        }
        Set::SetNames { charset_name, .. } => {
            session.set_setting("client_encoding", charset_name.to_string())?;
            Ok(command("SET", None))
        }
        Set::SetTransaction { modes, .. } => {
            crate::isolation::check_modes(modes)?;
            Ok(command("SET", None))
        }
        Set::SetRole { .. } | Set::SetSessionAuthorization(_) => Err(EngineError::new(
            "0A000",
            "SET ROLE / SESSION AUTHORIZATION is not supported",
        )),
        other => {
            let text = other.to_string();
            Err(EngineError::new(
                "0A000",
                format!("unsupported SET form: {text}"),
            ))
        }
    }
}

/// The column name PostgreSQL gives `SHOW name`'s result: the parameter's
/// own spelling, which is mixed-case for a few (`SHOW datestyle` answers a
/// column `DateStyle`).
fn show_column_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        "transaction isolation level" => "transaction_isolation",
        other => other,
    }
}

fn run_show(
    session: &mut Session,
    variable: &[datafusion::sql::sqlparser::ast::Ident],
) -> Result<QueryOutput, EngineError> {
    let name = variable
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    if name == "all" {
        let rows = session
            .shared
            .settings
            .read()
            .iter()
            .map(|(k, v)| vec![Some(k.clone()), Some(v.clone())])
            .collect();
        return Ok(text_rows(&["name", "setting"], rows));
    }
    let value = match name.as_str() {
        "search_path" => Some(session.search_path.join(", ")),
        "transaction isolation level" => Some(crate::isolation::PROVIDED.to_string()),
        _ => session.shared.settings.read().get(&name).cloned(),
    };
    match value {
        Some(v) => Ok(text_rows(&[show_column_name(&name)], vec![vec![Some(v)]])),
        None => Err(EngineError::new(
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        )),
    }
}
