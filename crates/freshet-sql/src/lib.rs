//! Freshet's SQL dialect layer: parses Freshet's statements and hands the rest
//! to DataFusion.
//!
//! Freshet speaks the Postgres wire protocol, so ordinary SQL is parsed with
//! sqlparser's [`PostgreSqlDialect`](datafusion::sql::sqlparser::dialect::PostgreSqlDialect)
//! (through DataFusion's re-export, so there is exactly one SQL parser in the
//! server). On top of that it accepts the Snowflake constructs Freshet is
//! built around:
//!
//! * dynamic tables (`CREATE | ALTER | DROP | SHOW | DESCRIBE DYNAMIC TABLE`),
//! * models (`CREATE | ALTER | DROP MODEL`, `SHOW MODELS`, `SHOW VERSIONS`,
//!   `DESCRIBE MODEL`), databases, users, `USE`, and Snowflake-style
//!   `SHOW TABLES | SCHEMAS | DATABASES`;
//! * in any statement: `WITH alias AS MODEL name [VERSION v]` bindings,
//!   `alias!method(args)` / `name!method(args)` / `MODEL(name, v)!method(args)`
//!   model calls, and `expr:field.sub` semi-structured paths;
//! * Snowflake's dynamic-table monitoring relations
//!   (`TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'x'))`,
//!   `information_schema.dynamic_table_graph_history`, …), which become calls
//!   of the table functions listed in [`INFORMATION_SCHEMA_FUNCTIONS`].
//!
//! # How it works
//!
//! [`parse_sql`] tokenizes the whole string once (so every location refers to
//! the original text), splits it into statements at top-level `;`, applies
//! token-level rewrites (see the `rewrite` module docs: string literals,
//! quoted identifiers and comments are single tokens and are never touched),
//! and then parses each statement with a wrapper around sqlparser's
//! [`Parser`](datafusion::sql::sqlparser::parser::Parser) that recognises
//! Freshet's statements and delegates the rest.
//!
//! After rewriting, a model call is an ordinary function call
//! `freshet_model_call('<model>', '<version or empty>', '<method>', args...)`
//! ([`MODEL_CALL_FUNCTION`]) and a path `x:a.b` is
//! `freshet_get_field(freshet_get_field(x, 'a'), 'b')` ([`GET_FIELD_FUNCTION`]),
//! so DataFusion plans them as scalar UDFs the engine registers.
//!
//! # Errors
//!
//! Every failure is a [`SqlError`] with a SQLSTATE ([`SqlError::sqlstate`]) and,
//! where known, a 1-based character position into the original string, ready
//! for a Postgres `ErrorResponse`.
//!
//! # Limitations
//!
//! * Statements are split at `;` outside parentheses, so bodies like
//!   `BEGIN ATOMIC ... ; ... END` are not supported, and `COPY ... FROM STDIN`
//!   data cannot be inlined after the statement (use the COPY sub-protocol).
//! * A colon directly inside `[...]` is always an array slice, so write
//!   `arr[(x:i)]` to use a path as an index. A path after a cast needs
//!   parentheses: `(v::json):a`.
//! * Model bindings are visible to the whole statement (not only to the query
//!   level of the `WITH` that declares them).

#![warn(missing_docs)]

mod ast;
mod depth;
mod error;
mod information_schema;
mod parser;
mod postgres_syntax;
mod rewrite;
mod source;

pub use ast::{
    AlterDynamicTableAction, AlterModelAction, CreateDynamicTable, FreshetStatement, GranteeSpec,
    Initialize, ModelBinding, ModelCall, ModelSource, ModelVersionRef, OwnedObject, ParsedQuery,
    ParsedStatement, RefreshMode, RoleSettingChange, ShowScope, TargetLag,
};
pub use depth::{MAX_EXPRESSION_DEPTH, WORKER_STACK_SIZE};
pub use error::{SqlError, SqlErrorKind};
pub use information_schema::INFORMATION_SCHEMA_FUNCTIONS;
pub use postgres_syntax::MAKE_INTERVAL_PARAMETERS;
pub use rewrite::{
    collect_model_calls, function_call, model_name_literal, normalize_ident, split_model_name,
};

/// Re-export of the sqlparser crate Freshet's AST is built from, so engine
/// code can name `Statement`, `Query`, `Ident`... without guessing the path.
pub use datafusion::sql::sqlparser;

/// Name of the scalar function model calls are rewritten to.
///
/// Arguments: model name literal (see [`model_name_literal`]), version or
/// alias literal (`''` for the model's default version), method name literal
/// (normalized, e.g. `'predict'`), then the call's own arguments.
pub const MODEL_CALL_FUNCTION: &str = "freshet_model_call";

/// Name of the scalar function `expr:field` paths are rewritten to:
/// `freshet_get_field(expr, 'field')`, nested for `expr:a.b`. Field names keep
/// their case, as Snowflake path elements are case-sensitive.
pub const GET_FIELD_FUNCTION: &str = "freshet_get_field";

/// Parses a query string (one or more `;`-separated statements).
///
/// Empty statements are skipped, so `""` yields an empty vector. Use
/// [`parse_sql_with_source`] when the original text of each statement or its
/// model bindings are needed.
pub fn parse_sql(sql: &str) -> Result<Vec<FreshetStatement>, SqlError> {
    Ok(parse_sql_with_source(sql)?
        .into_iter()
        .map(|parsed| parsed.statement)
        .collect())
}

/// Like [`parse_sql`], but keeps each statement's original text, its start
/// position, and the model bindings stripped from it.
pub fn parse_sql_with_source(sql: &str) -> Result<Vec<ParsedStatement>, SqlError> {
    let map = source::SourceMap::new(sql);
    let tokens = parser::tokenize(sql, &map)?;
    parser::split_statements(tokens)
        .into_iter()
        .map(|tokens| {
            parser::parse_statement_tokens(
                &map,
                information_schema::rewrite_information_schema(tokens),
            )
        })
        .collect()
}

/// Parses a stand-alone query, such as a dynamic table's stored
/// [`CreateDynamicTable::query_text`], applying the same rewrites as
/// [`parse_sql`]. A trailing `;` is allowed; anything else after the query is
/// an error. Positions refer to `sql`.
pub fn parse_query_text(sql: &str) -> Result<ParsedQuery, SqlError> {
    let map = source::SourceMap::new(sql);
    let tokens = parser::tokenize(sql, &map)?;
    let statements = parser::split_statements(tokens)
        .into_iter()
        .map(information_schema::rewrite_information_schema)
        .collect();
    parser::parse_query_tokens(&map, statements)
}
