//! Glue between Freshet statements and DataFusion planning, plus the mapping of
//! DataFusion's errors to Postgres SQLSTATEs.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, SchemaError};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SetExpr, Statement};

use crate::EngineError;

/// Plans one already-parsed standard statement with DataFusion.
pub(crate) async fn plan_statement(
    state: &SessionState,
    statement: Statement,
) -> Result<LogicalPlan, EngineError> {
    plan_compat(state, statement, |s| s)
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
    plan_compat(state, statement, |s| s).await
}

/// Plans a row-returning statement whose select list may repeat an output
/// name (`SELECT id, id`, `SELECT *, id`, two `(SELECT count(*) …)`), which
/// Postgres allows and DataFusion's unique-name rule does not. Such items
/// are planned under internal unique aliases; [`display_schema`] gives the
/// names the client sees. Only for results sent to a client: a table or view
/// built from such a query keeps DataFusion's error, as Postgres' CREATE
/// TABLE AS does (42701).
pub(crate) async fn plan_query(
    state: &SessionState,
    statement: Statement,
) -> Result<LogicalPlan, EngineError> {
    if !matches!(statement, Statement::Query(_)) {
        return plan_statement(state, statement).await;
    }
    // Unnamed expressions are named as PostgreSQL names them. The names are
    // a courtesy to clients, never a new error: a query they cannot be
    // given to (DISTINCT with ORDER BY over an expression, say) is planned
    // as written.
    let mut named = statement.clone();
    if let Statement::Query(query) = &mut named {
        if name_select_items(query.body.as_mut()) {
            if let Ok(plan) = plan_repeating_names(state, named).await {
                return Ok(plan);
            }
        }
    }
    plan_repeating_names(state, statement).await
}

/// [`plan_query`]'s planning of a query whose select list may repeat an
/// output name.
async fn plan_repeating_names(
    state: &SessionState,
    statement: Statement,
) -> Result<LogicalPlan, EngineError> {
    match plan_statement(state, statement.clone()).await {
        Err(error) if is_duplicate_name_error(&error) => {
            let mut statement = statement;
            if let Statement::Query(query) = &mut statement {
                alias_select_items(query.body.as_mut());
            }
            plan_statement(state, statement).await.map_err(|_| error)
        }
        other => other,
    }
}

/// Separates an internal unique output alias from the client-visible name
/// before it (empty when the name is the expression's own).
const OUTPUT_NAME_MARK: char = '\u{1}';

fn is_duplicate_name_error(error: &EngineError) -> bool {
    let message = error.to_string();
    message.contains("require unique expression names")
        || (error.sqlstate() == "42701" && message.contains("duplicate"))
        || message.contains("Ambiguous reference")
}

/// Gives the unnamed expression items of the query's outermost SELECT (the
/// first one of a set operation, whose names the result takes) an internal
/// unique alias recording the name PostgreSQL gives them (see
/// [`crate::output_names`]). Returns whether it named any.
fn name_select_items(body: &mut SetExpr) -> bool {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
    match body {
        SetExpr::Select(select) => {
            let mut named = false;
            for (i, item) in select.projection.iter_mut().enumerate() {
                let SelectItem::UnnamedExpr(expr) = item else {
                    continue;
                };
                let Some(name) = crate::output_names::figure_name(expr) else {
                    continue;
                };
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', format!("{name}{OUTPUT_NAME_MARK}{i}")),
                };
                named = true;
            }
            named
        }
        SetExpr::SetOperation { left, .. } => name_select_items(left),
        SetExpr::Query(query) => name_select_items(query.body.as_mut()),
        _ => false,
    }
}

/// Gives every select item of the query's outermost SELECT(s) an internal
/// unique alias that records the client-visible name.
fn alias_select_items(body: &mut SetExpr) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
    match body {
        SetExpr::Select(select) => {
            for (i, item) in select.projection.iter_mut().enumerate() {
                let (expr, shown) =
                    match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                        SelectItem::UnnamedExpr(expr) => {
                            let shown = match &expr {
                                SqlExpr::Identifier(ident) => crate::names::ident(ident),
                                SqlExpr::CompoundIdentifier(parts) => {
                                    parts.last().map(crate::names::ident).unwrap_or_default()
                                }
                                _ => String::new(),
                            };
                            (expr, shown)
                        }
                        SelectItem::ExprWithAlias { expr, alias }
                            if alias.value.contains(OUTPUT_NAME_MARK) =>
                        {
                            // Already named by `name_select_items`.
                            *item = SelectItem::ExprWithAlias { expr, alias };
                            continue;
                        }
                        SelectItem::ExprWithAlias { expr, alias } => {
                            (expr, crate::names::ident(&alias))
                        }
                        other => {
                            *item = other;
                            continue;
                        }
                    };
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::with_quote('"', format!("{shown}{OUTPUT_NAME_MARK}{i}")),
                };
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            alias_select_items(left);
            alias_select_items(right);
        }
        SetExpr::Query(query) => alias_select_items(query.body.as_mut()),
        _ => {}
    }
}

/// The plan's output schema with the names the client sees, when
/// [`plan_query`] had to use internal aliases; `None` when it did not.
pub(crate) fn display_schema(plan: &LogicalPlan) -> Option<SchemaRef> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let schema = plan.schema().as_arrow();
    if !schema
        .fields()
        .iter()
        .any(|f| f.name().contains(OUTPUT_NAME_MARK))
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let Some((shown, _)) = field.name().split_once(OUTPUT_NAME_MARK) else {
                return field.as_ref().clone();
            };
            let shown = if shown.is_empty() {
                aliased_expression_name(plan, field.name()).unwrap_or_else(|| "?column?".into())
            } else {
                shown.to_string()
            };
            field.as_ref().clone().with_name(shown)
        })
        .collect();
    Some(std::sync::Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// The plan's output schema with client-visible names (see [`display_schema`]).
pub(crate) fn output_schema(plan: &LogicalPlan) -> SchemaRef {
    display_schema(plan).unwrap_or_else(|| std::sync::Arc::new(plan.schema().as_arrow().clone()))
}

/// The schema the plan's rows will have, with client-visible names.
/// DataFusion settles the types of UNION columns and CASE results only in
/// its analyzer; before it a plan announces the first branch's type, which
/// is not what execution produces. Falls back to the unanalyzed schema when
/// analysis fails (with unbound parameters, say); execution reports that.
pub(crate) fn analyzed_output_schema(state: &SessionState, plan: &LogicalPlan) -> SchemaRef {
    match state
        .analyzer()
        .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
    {
        Ok(analyzed) => output_schema(&analyzed),
        Err(_) => output_schema(plan),
    }
}

/// The name DataFusion gives the expression aliased `alias` in the plan.
fn aliased_expression_name(plan: &LogicalPlan, alias: &str) -> Option<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(projection) = node {
            for expr in &projection.expr {
                if let Expr::Alias(a) = expr {
                    if a.name == alias {
                        found = Some(match a.expr.as_ref() {
                            Expr::Column(column) => column.name.clone(),
                            other => other.schema_name().to_string(),
                        });
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Plans `statement` after datafusion-pg-catalog's rewrites, chosen by
/// [`CompatRules`]; `wrap` builds the statement DataFusion plans (a PREPARE
/// around it, for instance).
async fn plan_compat(
    state: &SessionState,
    statement: Statement,
    wrap: impl Fn(Statement) -> Statement,
) -> Result<LogicalPlan, DataFusionError> {
    crate::unanswerable::refuse_unanswerable(&statement)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let to_plan = |statement: Statement, rules: CompatRules| {
        DfStatement::Statement(Box::new(wrap(compat_rewrite(statement, rules))))
    };
    // `SELECT *` over a USING or NATURAL join lists PostgreSQL's columns:
    // DataFusion's plan of the statement as written names each FROM item's
    // columns (a statement that does not plan keeps its own error below).
    let statement = if crate::using_wildcards::needed(&statement) {
        match state
            .statement_to_plan(to_plan(statement.clone(), CompatRules::General))
            .await
        {
            Ok(plan) => {
                let mut statement = statement;
                crate::using_wildcards::expand(&mut statement, &plan)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                statement
            }
            Err(_) => statement,
        }
    } else {
        statement
    };
    if !reads_system_catalog(&statement) {
        let plan = state
            .statement_to_plan(to_plan(statement, CompatRules::General))
            .await?;
        return crate::literal_types::narrow_integer_literals(plan);
    }
    let first = state
        .statement_to_plan(to_plan(statement.clone(), CompatRules::Catalog))
        .await;
    let first = match first {
        // Analysis (where DataFusion rejects subqueries it cannot run) only
        // happens on optimizing; try it now, so a catalog query can still
        // fall back.
        Ok(plan) if crate::subquery::has_subquery(&plan) && !is_prepare(&plan) => {
            match state.optimize(&plan) {
                Ok(_) => Ok(plan),
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match first {
        Ok(plan) => Ok(plan),
        Err(error) => state
            .statement_to_plan(to_plan(statement, CompatRules::CatalogFallback))
            .await
            .map_err(|_| error),
    }
}

fn is_prepare(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(_))
    )
}

/// Which of datafusion-pg-catalog's SQL rewrites a statement gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompatRules {
    /// Any statement not reading the system catalogs: only the rewrites that
    /// keep a query's meaning (`pg_catalog.` function qualifiers, `COLLATE`,
    /// `OPERATOR(pg_catalog.~)`, `::regclass`, …).
    General,
    /// A statement reading pg_catalog or information_schema also gets the
    /// rewrites written for catalog queries, which rename duplicate columns
    /// and requalify identifiers.
    Catalog,
    /// A catalog statement that did not plan otherwise: every rewrite,
    /// including the one that answers correlated select-list subqueries with
    /// NULL. Never applied to a user's query.
    CatalogFallback,
}

fn compat_rewrite(statement: Statement, rules: CompatRules) -> Statement {
    use datafusion_pg_catalog::sql::rules::{
        AliasDuplicatedProjectionRewrite, CurrentUserVariableToSessionUserFunctionCall,
        FixArrayLiteral, FixVersionColumnName, RemoveSubqueryFromProjection,
        ResolveUnqualifiedIdentifier, RewriteArrayAnyAllOperation, RewritePgCatalogOperator,
        RewriteRegCastToSubquery, SqlStatementRewriteRule, StripCallableQualifier, StripCollate,
    };
    use std::sync::{Arc, OnceLock};
    type Rules = Vec<(Arc<dyn SqlStatementRewriteRule>, CompatRules)>;
    // Each rule with the least catalog-specific mode that gets it, in
    // datafusion-pg-catalog's own order.
    static RULES: OnceLock<Rules> = OnceLock::new();
    let all = RULES.get_or_init(|| {
        vec![
            (
                Arc::new(AliasDuplicatedProjectionRewrite),
                CompatRules::Catalog,
            ),
            (Arc::new(ResolveUnqualifiedIdentifier), CompatRules::Catalog),
            (Arc::new(RewriteArrayAnyAllOperation), CompatRules::General),
            (Arc::new(StripCallableQualifier), CompatRules::General),
            (Arc::new(FixArrayLiteral), CompatRules::General),
            (
                Arc::new(CurrentUserVariableToSessionUserFunctionCall),
                CompatRules::General,
            ),
            (Arc::new(StripCollate), CompatRules::General),
            (Arc::new(RewritePgCatalogOperator), CompatRules::General),
            (
                Arc::new(RewriteRegCastToSubquery::new()),
                CompatRules::General,
            ),
            (
                Arc::new(RemoveSubqueryFromProjection),
                CompatRules::CatalogFallback,
            ),
            (Arc::new(FixVersionColumnName), CompatRules::General),
        ]
    });
    let applies = |needed: CompatRules| match rules {
        CompatRules::General => needed == CompatRules::General,
        CompatRules::Catalog => needed != CompatRules::CatalogFallback,
        CompatRules::CatalogFallback => true,
    };
    let mut statement = statement;
    crate::row_comparisons::rewrite(&mut statement);
    if rules == CompatRules::General {
        crate::array_comparisons::rewrite(&mut statement);
    }
    if rules == CompatRules::General {
        // Not in catalog statements: psql's `\d+` reads `unnest(column)`
        // inside a correlated ARRAY(…), which the catalog rewrites answer
        // as they always have.
        crate::set_returning::functions_in_from(&mut statement);
    }
    crate::table_function_names::rewrite(&mut statement);
    crate::pg_expandarray::rewrite(&mut statement);
    crate::array_literals::rewrite(&mut statement);
    crate::interval_literals::rewrite(&mut statement);
    crate::unary_operators::rewrite(&mut statement);
    let mut statement = all
        .iter()
        .filter(|(_, needed)| applies(*needed))
        .fold(statement, |s, (rule, _)| rule.rewrite(s));
    crate::pg_compat::rewrite_statement(
        &mut statement,
        rules != CompatRules::General,
        rules == CompatRules::CatalogFallback,
    );
    if rules == CompatRules::General {
        crate::array_constructors::rewrite(&mut statement);
    }
    statement
}

/// Whether the statement names a relation of pg_catalog or
/// information_schema: qualified, or an unqualified name of a pg_catalog
/// table that no WITH query in scope takes (see [`crate::catalog_names`]).
pub(crate) fn reads_system_catalog(statement: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast::visit_relations;
    let qualified = visit_relations(statement, |name| {
        let parts = crate::names::parts(name);
        match parts.as_slice() {
            [.., schema, _] if schema == "pg_catalog" || schema == "information_schema" => {
                std::ops::ControlFlow::Break(())
            }
            _ => std::ops::ControlFlow::Continue(()),
        }
    });
    qualified.is_break() || crate::catalog_names::qualify_catalog_relations(&mut statement.clone())
}

/// Runs a logical plan in the session and collects its batches.
pub(crate) async fn collect_plan(
    session: &crate::session::Session,
    plan: LogicalPlan,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, EngineError> {
    session
        .ctx
        .execute_logical_plan(plan)
        .await
        .map_err(map_df_error)?
        .collect()
        .await
        .map_err(map_df_error)
}

/// Maps an Arrow error met while reshaping batches the engine built itself
/// (an internal error: the shapes are the engine's own, not the user's).
pub(crate) fn map_arrow_error(error: datafusion::arrow::error::ArrowError) -> EngineError {
    EngineError::new("XX000", error.to_string())
}

/// Maps a DataFusion error to a SQLSTATE-carrying engine error. The one place
/// DataFusion failures get their SQLSTATE, whether they surface while planning
/// in the engine or while the wire layer drains a result stream.
pub fn map_df_error(error: DataFusionError) -> EngineError {
    if let Some(e) = find_engine_error(&error) {
        return e;
    }
    let error = strip_context(error);
    match error {
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<EngineError>() {
                return EngineError::Sql {
                    sqlstate: e.sqlstate(),
                    message: e.to_string(),
                    position: e.position(),
                    detail: e.detail().map(str::to_string),
                    object: e.object().cloned().map(Box::new),
                };
            }
            if let Some(e) = inner.downcast_ref::<freshet_storage::StorageError>() {
                return EngineError::from(e);
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
        ref e if e.to_string().contains("null_aware anti join") => EngineError::new(
            "0A000",
            "this NOT IN (subquery) is not supported: Freshet runs a correlated NOT IN only when \
             it compares one column; NOT EXISTS (… WHERE inner.col = outer.col) expresses the \
             same test where neither side is NULL",
        ),
        DataFusionError::NotImplemented(msg)
            if msg.contains("does not support logical expression OuterReferenceColumn") =>
        {
            EngineError::new("0A000", UNSUPPORTED_LATERAL)
        }
        DataFusionError::NotImplemented(msg) if is_undecorrelated_subquery(&msg) => {
            EngineError::new("0A000", UNSUPPORTED_SUBQUERY)
        }
        DataFusionError::NotImplemented(msg) => EngineError::new("0A000", msg),
        DataFusionError::Plan(msg)
            if msg.contains("Correlated scalar subquery")
                || msg.contains("Accessing outer reference columns")
                || msg.contains("Correlated column is not allowed") =>
        {
            EngineError::new("0A000", format!("{UNSUPPORTED_SUBQUERY} ({msg})"))
        }
        DataFusionError::Execution(msg)
            if msg.contains("Scalar subquery returned more than one row") =>
        {
            EngineError::new("21000", crate::subquery::MORE_THAN_ONE_ROW)
        }
        DataFusionError::Plan(msg) => {
            let lower = msg.to_ascii_lowercase();
            if let Some(missing) = missing_relation(&msg) {
                return EngineError::new("42P01", format!("relation \"{missing}\" does not exist"));
            }
            if msg.contains("Inconsistent data length across values list") {
                return EngineError::new("42601", "VALUES lists must all be the same length");
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
            if let ArrowError::CastError(m)
            | ArrowError::ParseError(m)
            | ArrowError::ComputeError(m)
            | ArrowError::InvalidArgumentError(m) = e.as_ref()
            {
                if let Some(e) = crate::overflow::cast_error(m) {
                    return e;
                }
            }
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
            if let Some(e) = crate::overflow::cast_error(&msg) {
                return e;
            }
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

/// What a client is told about a correlated subquery Freshet cannot run.
const UNSUPPORTED_SUBQUERY: &str = "this correlated subquery is not supported: Freshet runs a \
correlated subquery as a join, or once per outer row, but not a subquery nested in another \
that names a table of the outer query again, nor ANY, ALL or IN comparing intervals, arrays \
or records";

/// What a client is told about a LATERAL subquery that reads the tables
/// before it.
const UNSUPPORTED_LATERAL: &str = "a LATERAL subquery that reads columns of a query further out \
than the tables before it, or a LATERAL function call, is not supported";

/// DataFusion's physical planner refusing a subquery its optimizer left in place.
fn is_undecorrelated_subquery(message: &str) -> bool {
    message.contains("undecorrelated Subquery")
        || (message.contains("does not support logical expression")
            && ["ScalarSubquery", "Exists", "InSubquery", "SetComparison"]
                .iter()
                .any(|kind| message.contains(kind)))
}

/// The engine error (with its SQLSTATE) that `error` carries, however deep
/// DataFusion wrapped it: a failure inside a function that runs behind a
/// repartition arrives shared, as context, or inside an Arrow error.
fn find_engine_error(error: &DataFusionError) -> Option<EngineError> {
    use datafusion::arrow::error::ArrowError;
    fn from_dyn(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<EngineError> {
        if let Some(e) = inner.downcast_ref::<EngineError>() {
            return Some(EngineError::new(e.sqlstate(), e.to_string()));
        }
        if let Some(e) = inner.downcast_ref::<DataFusionError>() {
            return find_engine_error(e);
        }
        match inner.downcast_ref::<ArrowError>() {
            Some(ArrowError::ExternalError(inner)) => from_dyn(inner.as_ref()),
            _ => None,
        }
    }
    match error {
        DataFusionError::External(inner) => from_dyn(inner.as_ref()),
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::ExternalError(inner) => from_dyn(inner.as_ref()),
            _ => None,
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            find_engine_error(inner)
        }
        DataFusionError::Shared(inner) => find_engine_error(inner),
        DataFusionError::Collection(errors) => errors.first().and_then(find_engine_error),
        _ => None,
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
    let plan = plan_compat(state, statement, |statement| Statement::Prepare {
        name: Ident::new("freshet_describe"),
        data_types: data_types.clone(),
        statement: Box::new(statement),
    })
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
pub(crate) fn sql_type_name(data_type: &datafusion::arrow::datatypes::DataType) -> &'static str {
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
