//! Glue between Freshet statements and DataFusion planning, plus the mapping of
//! DataFusion's errors to Postgres SQLSTATEs.

use datafusion::common::{DataFusionError, SchemaError};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::EngineError;

/// Plans one already-parsed standard statement with DataFusion.
pub(crate) async fn plan_statement(
    state: &SessionState,
    statement: Statement,
) -> Result<LogicalPlan, EngineError> {
    let mut statement = postgres_compat().rewrite(statement);
    crate::pg_compat::rewrite_statement(&mut statement);
    state
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
        .map_err(map_df_error)
}

/// Plans a view's stored query text (which may itself call models).
pub(crate) async fn plan_view_query(
    state: &SessionState,
    query_text: &str,
) -> Result<LogicalPlan, DataFusionError> {
    let statements = freshet_sql::parse_sql(query_text)
        .map_err(|e| DataFusionError::Plan(format!("invalid view definition: {e}")))?;
    let Some(freshet_sql::FreshetStatement::Standard(statement)) = statements.into_iter().next()
    else {
        return Err(DataFusionError::Plan(
            "view definition is not a query".into(),
        ));
    };
    let mut statement = postgres_compat().rewrite(statement);
    crate::pg_compat::rewrite_statement(&mut statement);
    state
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
}

/// The shared rewriter that turns psql's and drivers' Postgres-isms into SQL
/// DataFusion plans (`::regclass`, `OPERATOR(pg_catalog.~)`, …).
pub(crate) fn postgres_compat() -> &'static datafusion_pg_catalog::sql::PostgresCompatibilityParser
{
    static PARSER: std::sync::OnceLock<datafusion_pg_catalog::sql::PostgresCompatibilityParser> =
        std::sync::OnceLock::new();
    PARSER.get_or_init(datafusion_pg_catalog::sql::PostgresCompatibilityParser::new)
}

/// Maps a DataFusion error to a SQLSTATE-carrying engine error. The one place
/// DataFusion failures get their SQLSTATE, whether they surface while planning
/// in the engine or while the wire layer drains a result stream.
pub fn map_df_error(error: DataFusionError) -> EngineError {
    let error = strip_context(error);
    match error {
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<EngineError>() {
                return EngineError::Sql {
                    sqlstate: e.sqlstate(),
                    message: e.to_string(),
                    position: e.position(),
                    detail: e.detail().map(str::to_string),
                };
            }
            if let Some(e) = inner.downcast_ref::<freshet_storage::StorageError>() {
                return EngineError::Sql {
                    sqlstate: e.sqlstate(),
                    message: e.to_string(),
                    position: None,
                    detail: e.detail().map(str::to_string),
                };
            }
            if let Some(e) = inner.downcast_ref::<freshet_catalog::CatalogError>() {
                return EngineError::new(e.sqlstate(), e.to_string());
            }
            if let Some(e) = inner.downcast_ref::<freshet_models::ModelError>() {
                return EngineError::new(e.sqlstate(), e.to_string());
            }
            EngineError::new("XX000", inner.to_string())
        }
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                // Postgres' wording, which tools match on.
                let message = match &field.relation {
                    Some(relation) => {
                        format!("column {}.{} does not exist", relation.table(), field.name)
                    }
                    None => format!("column \"{}\" does not exist", field.name),
                };
                EngineError::new("42703", message)
            }
            SchemaError::AmbiguousReference { .. } => EngineError::new("42702", e.to_string()),
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => {
                EngineError::new("42701", e.to_string())
            }
        },
        DataFusionError::SQL(e, _) => EngineError::new("42601", e.to_string()),
        DataFusionError::NotImplemented(msg) => EngineError::new("0A000", msg),
        DataFusionError::Plan(msg) => {
            let lower = msg.to_ascii_lowercase();
            if let Some(missing) = missing_relation(&msg) {
                return EngineError::new("42P01", format!("relation \"{missing}\" does not exist"));
            }
            let state = if lower.contains("table '") && lower.contains("not found")
                || lower.contains("failed to resolve schema")
                || lower.contains("failed to resolve catalog")
            {
                "42P01"
            } else if lower.contains("not supported") || lower.contains("not yet supported") {
                "0A000"
            } else if lower.contains("invalid function") || lower.contains("no function matches") {
                "42883"
            } else if lower.contains("cannot be cast") || lower.contains("cannot cast") {
                "42846"
            } else if lower.contains("does not match") || lower.contains("coerc") {
                "42804"
            } else {
                "42000"
            };
            EngineError::new(state, msg)
        }
        DataFusionError::ArrowError(e, _) => {
            use datafusion::arrow::error::ArrowError;
            let state = match e.as_ref() {
                ArrowError::CastError(m) | ArrowError::ParseError(m) => cast_failure_sqlstate(m),
                ArrowError::DivideByZero => "22012",
                ArrowError::ComputeError(m) if m.contains("Overflow") => "22003",
                ArrowError::ArithmeticOverflow(_) => "22003",
                ArrowError::InvalidArgumentError(m) if m.contains("null") => "23502",
                _ => "22000",
            };
            EngineError::new(state, e.to_string())
        }
        DataFusionError::Execution(msg) => {
            let lower = msg.to_ascii_lowercase();
            let state = if lower.contains("divide by zero") {
                "22012"
            } else if lower.contains("cast") || lower.contains("parse") {
                cast_failure_sqlstate(&msg)
            } else if lower.contains("overflow") {
                "22003"
            } else {
                "XX000"
            };
            EngineError::new(state, msg)
        }
        DataFusionError::ResourcesExhausted(msg) => EngineError::new("53200", msg),
        other => EngineError::new("XX000", other.to_string()),
    }
}

/// The relation name in DataFusion's "table 'db.schema.name' not found".
fn missing_relation(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let (qualified, tail) = rest.split_once('\'')?;
    if !tail.trim_start().starts_with("not found") {
        return None;
    }
    Some(
        qualified
            .rsplit('.')
            .next()
            .unwrap_or(qualified)
            .to_string(),
    )
}

/// The SQLSTATE for a failed conversion, by what it converted to: Postgres
/// distinguishes out-of-range numbers (22003) and bad date/time text (22007)
/// from other malformed input (22P02).
pub(crate) fn cast_failure_sqlstate(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.contains("can't cast value")
        || lower.contains("overflow")
        || lower.contains("out of range")
    {
        "22003"
    } else if [
        "date32",
        "date64",
        "timestamp",
        "time64",
        "time32",
        "interval",
    ]
    .iter()
    .any(|t| lower.contains(t))
    {
        if looks_like_iso_date(message) {
            // Well-formed, but a field is out of range (February 30th):
            // PostgreSQL's datetime_field_overflow.
            "22008"
        } else {
            "22007"
        }
    } else {
        "22P02"
    }
}

/// Whether the value quoted in a cast error (`… string '2024-02-30' …`)
/// has the shape of an ISO date, `Y-M-D` with digits only, so that its
/// failure to cast is a field out of range rather than bad syntax.
fn looks_like_iso_date(message: &str) -> bool {
    let Some((_, rest)) = message.split_once('\'') else {
        return false;
    };
    let Some((value, _)) = rest.split_once('\'') else {
        return false;
    };
    let date = value.trim().split([' ', 'T']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts.iter().zip([4, 2, 2]).all(|(p, max)| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        })
}

fn strip_context(error: DataFusionError) -> DataFusionError {
    match error {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            strip_context(*inner)
        }
        DataFusionError::Collection(mut errors) if !errors.is_empty() => {
            strip_context(errors.swap_remove(0))
        }
        DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => strip_context(e),
            Err(shared) => DataFusionError::Execution(shared.to_string()),
        },
        other => other,
    }
}

/// Plans `statement` with its parameters' types fixed (`None` = text), the way
/// `PREPARE name(types) AS statement` would, so expressions over parameters
/// (`SELECT $1 AS x`) get the types the client declared or implied.
pub(crate) async fn plan_with_parameter_types(
    state: &SessionState,
    statement: Statement,
    types: &[Option<datafusion::arrow::datatypes::DataType>],
) -> Result<LogicalPlan, EngineError> {
    use datafusion::sql::sqlparser::ast::Ident;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let mut data_types = Vec::with_capacity(types.len());
    for t in types {
        let name = t.as_ref().map_or("text", sql_type_name);
        let parsed = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(name)
            .and_then(|mut p| p.parse_data_type())
            .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        data_types.push(parsed);
    }
    let mut statement = postgres_compat().rewrite(statement);
    crate::pg_compat::rewrite_statement(&mut statement);
    let prepare = Statement::Prepare {
        name: Ident::new("freshet_describe"),
        data_types,
        statement: Box::new(statement),
    };
    let plan = state
        .statement_to_plan(DfStatement::Statement(Box::new(prepare)))
        .await
        .map_err(map_df_error)?;
    match plan {
        LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(prepare)) => {
            Ok(prepare.input.as_ref().clone())
        }
        other => Ok(other),
    }
}

/// The SQL spelling of an Arrow type, for building `PREPARE` type lists.
fn sql_type_name(data_type: &datafusion::arrow::datatypes::DataType) -> &'static str {
    use datafusion::arrow::datatypes::DataType;
    match data_type {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 => "smallint",
        DataType::Int32 => "int",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(_, _) => "numeric",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Interval(_) => "interval",
        _ => "text",
    }
}
