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
    let statement = postgres_compat().rewrite(statement);
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
    let statement = postgres_compat().rewrite(statement);
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
                return EngineError::new(e.sqlstate(), e.to_string());
            }
            if let Some(e) = inner.downcast_ref::<freshet_storage::StorageError>() {
                return EngineError::new(e.sqlstate(), e.to_string());
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
            SchemaError::FieldNotFound { .. } => EngineError::new("42703", e.to_string()),
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
            let state = if lower.contains("table '") && lower.contains("not found")
                || lower.contains("failed to resolve schema")
                || lower.contains("failed to resolve catalog")
            {
                "42P01"
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
                ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
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
                "22P02"
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
