//! Postgres behaviours DataFusion does not have, added around it rather than
//! inside it.
//!
//! Clients send Postgres SQL and compare results with Postgres. Where
//! DataFusion's semantics differ in ways users notice, Freshet adjusts the
//! statement before planning ([`rewrite_statement`]) or the plan after type
//! coercion ([`PostgresCasts`], an `AnalyzerRule`), and supplies the functions
//! those rewrites call:
//!
//! * `ARRAY(SELECT …)` becomes a scalar subquery aggregating its rows in
//!   their ORDER BY order ([`crate::array_subquery`]).
//! * `x::json` becomes `freshet_json(x)`, which validates the text and types
//!   the result as `json` (DataFusion has no JSON type); `x::jsonb` becomes
//!   `freshet_jsonb(x)`, which also puts it in jsonb's canonical text
//!   ([`crate::json_text`]).
//! * `x AT TIME ZONE z` becomes [`crate::at_time_zone`]'s function, `a && b`
//!   [`crate::array_overlap`]'s, and `substring(x FROM 'pattern')` a
//!   regular-expression match; `generate_series` in a select list is
//!   expanded into rows ([`crate::set_returning`]) and `FETCH FIRST` becomes
//!   `LIMIT` ([`crate::fetch_first`]).
//! * Text cast to `numeric` is read as `numeric_in` reads it
//!   ([`crate::numeric_text`]).
//! * An unaliased `col::type` in a select list is named `col`, as in Postgres;
//!   DataFusion would otherwise clash it with `ORDER BY col`.
//! * Text to `interval` accepts Postgres' `1 day 02:03:04` form.
//! * Date/time values cast to text use Postgres' output format
//!   (`2024-01-02 03:04:05.25`), not ISO 8601 with a `T`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, IntervalMonthDayNanoBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, FieldRef, Float32Type, Float64Type, IntervalMonthDayNanoType,
    IntervalUnit, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType as SqlType, Distinct, Expr as SqlExpr, GroupByExpr, Ident,
    OrderByKind, Query, SelectItem, SetExpr, Statement, UnaryOperator,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::types::JsonKind;
use crate::EngineError;

/// Name of the function `x::json` is rewritten to.
const JSON_FUNCTION: &str = "freshet_json";
/// Name of the function `x::jsonb` is rewritten to.
const JSONB_FUNCTION: &str = "freshet_jsonb";
/// Name of the function text-to-interval casts are rewritten to.
const INTERVAL_FUNCTION: &str = "freshet_text_to_interval";
/// Name of the function date/time-to-text casts are rewritten to.
const TEXT_FUNCTION: &str = "freshet_pg_text";

/// Applies the statement-level rewrites described in the module docs.
/// `catalog` says whether the statement reads the system catalogs; only then
/// may a correlated catalog subquery be answered NULL.
/// `null_correlated` (the last resort for a catalog query that did not plan
/// otherwise) also answers NULL for every correlated scalar subquery over
/// pg_catalog; before that, only those DataFusion cannot run are (see
/// `subquery::NullCatalogSubqueries`).
pub(crate) fn rewrite_statement(statement: &mut Statement, catalog: bool, null_correlated: bool) {
    use datafusion::sql::sqlparser::ast::visit_expressions_mut;
    crate::set_returning::expand_in_select_lists(statement);
    crate::fetch_first::rewrite(statement);
    let _ = visit_expressions_mut(statement, |expr| {
        if let SqlExpr::Cast {
            expr: inner,
            data_type: json_type @ (SqlType::JSON | SqlType::JSONB),
            ..
        } = expr
        {
            let kind = if matches!(json_type, SqlType::JSONB) {
                JsonKind::Jsonb
            } else {
                JsonKind::Json
            };
            if let Some(call) = json_call(inner, kind) {
                *expr = call;
            }
        } else if let Some(aggregated) = array_subquery(expr, catalog) {
            *expr = aggregated;
        } else if catalog && typed_null_array_argument(expr) {
            // Done above: `array_to_string(ARRAY(correlated …), …)`, whose
            // ARRAY became NULL, is given a NULL of an array type (psql's
            // `\dp` asks this of column privileges and policies).
        } else if let SqlExpr::AtTimeZone {
            timestamp,
            time_zone,
        } = expr
        {
            // PostgreSQL's result types and zone reading (`at_time_zone`).
            if let Some(call) = parse_expr(&format!(
                "{}({timestamp}, {time_zone})",
                crate::at_time_zone::AT_TIME_ZONE
            )) {
                *expr = call;
            }
        } else if let Some(matched) = substring_by_pattern(expr) {
            *expr = matched;
        } else if let SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::PGOverlap,
            right,
        } = expr
        {
            // `a && b` of arrays: whether they share an element.
            if let Some(call) = parse_expr(&format!(
                "{}({left}, {right})",
                crate::array_overlap::ARRAY_OVERLAP
            )) {
                *expr = call;
            }
        } else if let Some(power) = sign_binds_before_power(expr) {
            *expr = power;
        } else if let Some(cut) = length_limited_cast(expr) {
            *expr = cut;
        } else if let Some(lookup) = to_regtype_call(expr) {
            *expr = lookup;
        } else if let Some(subscripts) = generate_subscripts_call(expr) {
            *expr = subscripts;
        } else if let Some(remainder) = mod_call(expr) {
            *expr = remainder;
        } else if let Some(name) = regtype_text(expr) {
            *expr = name;
        } else if null_correlated
            && matches!(expr, SqlExpr::Subquery(q) if is_correlated_catalog_query(q))
        {
            // See `array_subquery`: psql asks these about objects Freshet
            // never has (publications, policies), and DataFusion cannot
            // decorrelate them inside CASE.
            *expr = SqlExpr::Value(datafusion::sql::sqlparser::ast::Value::Null.into());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    crate::catalog_names::qualify_catalog_relations(statement);
    if let Statement::Query(query) = statement {
        name_casts_like_postgres(query);
    }
    let _ = datafusion::sql::sqlparser::ast::VisitMut::visit(statement, &mut CatalogQueryShapes);
    if let Statement::Query(query) = statement {
        if query
            .to_string()
            .to_ascii_lowercase()
            .contains("pg_catalog.")
        {
            name_catalog_columns(query);
        }
    }
}

/// Names every unnamed computed column of a pg_catalog query the way
/// Postgres would (`case`, the function's name, `?column?`), made unique, so
/// DataFusion's rule that projection names be unique never rejects psql's
/// catalog queries, whose column names psql ignores.
fn name_catalog_columns(query: &mut Query) {
    name_catalog_select_columns(query.body.as_mut());
}

fn name_catalog_select_columns(body: &mut SetExpr) {
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { left, right, .. } => {
            name_catalog_select_columns(left);
            name_catalog_select_columns(right);
            return;
        }
        SetExpr::Query(q) => return name_catalog_columns(q),
        _ => return,
    };
    let mut used: HashSet<String> = HashSet::new();
    for item in select.projection.iter_mut() {
        let base = match item {
            SelectItem::UnnamedExpr(SqlExpr::Identifier(_))
            | SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(_)) => continue,
            SelectItem::UnnamedExpr(SqlExpr::Case { .. }) => "case".to_string(),
            SelectItem::UnnamedExpr(SqlExpr::Function(f)) => f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map_or_else(|| "?column?".to_string(), |i| i.value.to_ascii_lowercase()),
            SelectItem::UnnamedExpr(_) => "?column?".to_string(),
            _ => continue,
        };
        let mut name = base.clone();
        let mut n = 1;
        while !used.insert(name.clone()) {
            n += 1;
            name = format!("{base}{n}");
        }
        let SelectItem::UnnamedExpr(expr) =
            std::mem::replace(item, SelectItem::Wildcard(Default::default()))
        else {
            continue;
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::new(name),
        };
    }
}

/// Shapes psql's catalog queries use that DataFusion plans differently:
/// `unnest(arr) x` names the column `x` in Postgres, and `col = '{0}'`
/// compares an array column with an array literal written as text.
struct CatalogQueryShapes;

impl datafusion::sql::sqlparser::ast::VisitorMut for CatalogQueryShapes {
    type Break = ();

    fn pre_visit_table_factor(
        &mut self,
        factor: &mut datafusion::sql::sqlparser::ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{
            FunctionArg, FunctionArgExpr, TableAliasColumnDef, TableFactor,
        };
        let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = factor
        else {
            return std::ops::ControlFlow::Continue(());
        };
        let is_unnest = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"));
        if !is_unnest {
            return std::ops::ControlFlow::Continue(());
        }
        let array_exprs: Option<Vec<SqlExpr>> = args
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let Some(array_exprs) = array_exprs else {
            return std::ops::ControlFlow::Continue(());
        };
        let mut alias = alias.clone();
        if let Some(alias) = alias.as_mut() {
            if alias.columns.is_empty() && array_exprs.len() == 1 {
                alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
            }
        }
        *factor = TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: false,
        };
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::Value;
        if let SqlExpr::BinaryOp {
            op: BinaryOperator::Eq | BinaryOperator::NotEq,
            right,
            ..
        } = expr
        {
            if let SqlExpr::Value(v) = right.as_ref() {
                if let Value::SingleQuotedString(text) = &v.value {
                    if let Some(array) = integer_array_literal(text) {
                        **right = array;
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `'{1,2}'` as `make_array(1, 2)`, for integer array literals only, so JSON
/// text (which cannot be just digits in braces) is never touched.
fn integer_array_literal(text: &str) -> Option<SqlExpr> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty()
        || !inner
            .split(',')
            .all(|n| n.trim().trim_start_matches('-').parse::<u64>().is_ok())
    {
        return None;
    }
    parse_expr(&format!("make_array({inner})"))
}

/// Gives the NULL first argument of `array_to_string` an array type (text[])
/// in place; whether it did. [`array_subquery`] answers a correlated catalog
/// `ARRAY(…)` with an untyped NULL, which `array_to_string` refuses; its
/// result is text, whatever the element type.
fn typed_null_array_argument(expr: &mut SqlExpr) -> bool {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let SqlExpr::Function(function) = expr else {
        return false;
    };
    let name = function.name.to_string().to_ascii_lowercase();
    if name != "array_to_string" && name != "pg_catalog.array_to_string" {
        return false;
    }
    let FunctionArguments::List(list) = &mut function.args else {
        return false;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut() else {
        return false;
    };
    if !matches!(first, SqlExpr::Value(v) if v.value == datafusion::sql::sqlparser::ast::Value::Null)
    {
        return false;
    }
    match parse_expr("CAST(NULL AS text[])") {
        Some(typed) => {
            *first = typed;
            true
        }
        None => false,
    }
}

/// `ARRAY(SELECT x … ORDER BY k)` (which psql's `\d` and `\du` send) as
/// the equivalent scalar subquery `(SELECT freshet_array_of_rows(x ORDER BY
/// k) …)`, which DataFusion can plan; `{}` for no rows.
fn array_subquery(expr: &SqlExpr, catalog: bool) -> Option<SqlExpr> {
    use datafusion::sql::sqlparser::ast::FunctionArguments;
    let SqlExpr::Function(function) = expr else {
        return None;
    };
    let FunctionArguments::Subquery(query) = &function.args else {
        return None;
    };
    if !function.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    // `\du`'s role memberships are planned as the subquery they are.
    let memberships = query
        .to_string()
        .to_ascii_lowercase()
        .contains("pg_auth_members");
    if catalog && !memberships && is_correlated_catalog_query(query) {
        // DataFusion cannot decorrelate these inside CASE or function calls.
        // psql asks them about what Freshet never has (a policy's roles, a
        // table's storage options), so the answer is the empty array, as
        // PostgreSQL's would be.
        return parse_expr("CAST(make_array() AS text[])");
    }
    // Aggregate inside the subquery rather than over a derived table, so
    // correlated references still resolve. That takes each row's value as
    // it is, so forms whose rows are not the FROM's (LIMIT, OFFSET,
    // GROUP BY, HAVING, DISTINCT ON, set operations) are left to DataFusion,
    // which refuses them, rather than aggregated wrongly.
    let mut query = query.as_ref().clone();
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    if grouped || select.having.is_some() {
        return None;
    }
    let distinct = match select.distinct.take() {
        None => "",
        Some(Distinct::Distinct) => "DISTINCT ",
        Some(_) => return None,
    };
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let (element, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return None,
    };
    // The rows' order: ORDER BY's keys, where `1` and the item's alias name
    // the element itself.
    let order = match query.order_by.take().map(|o| o.kind) {
        None => String::new(),
        Some(OrderByKind::Expressions(keys)) => {
            // Another position (`ORDER BY 2`) is not in the one-item select
            // list: left to DataFusion, which refuses it as PostgreSQL does,
            // rather than sorted by a constant.
            if keys
                .iter()
                .any(|key| matches!(&key.expr, SqlExpr::Value(v) if v.value.to_string() != "1"))
            {
                return None;
            }
            let keys: Vec<String> = keys
                .into_iter()
                .map(|mut key| {
                    let names_element = match &key.expr {
                        SqlExpr::Value(v) => v.value.to_string() == "1",
                        SqlExpr::Identifier(ident) => alias
                            .as_ref()
                            .is_some_and(|a| crate::names::ident(a) == crate::names::ident(ident)),
                        _ => false,
                    };
                    if names_element {
                        key.expr = element.clone();
                    }
                    key.to_string()
                })
                .collect();
            format!(" ORDER BY {}", keys.join(", "))
        }
        Some(OrderByKind::All(_)) => return None,
    };
    let aggregate = parse_expr(&format!(
        "{}({distinct}{element}{order})",
        crate::array_subquery::ARRAY_OF_ROWS
    ))?;
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    }
    Some(SqlExpr::Subquery(Box::new(query)))
}

/// `to_regtype(name)` as `(SELECT oid FROM pg_catalog.pg_type WHERE name IN
/// (typname, format_type(oid, NULL)))`: the type's oid for its internal
/// (`int4`) or SQL (`integer`) name, or NULL when there is none. psycopg 3 looks
/// types up with it (SQLAlchemy's psycopg dialect asks for `hstore` on
/// connect).
fn to_regtype_call(expr: &SqlExpr) -> Option<SqlExpr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let SqlExpr::Function(function) = expr else {
        return None;
    };
    let name = function.name.0.last()?.as_ident()?;
    if !name.value.eq_ignore_ascii_case("to_regtype") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] = list.args.as_slice() else {
        return None;
    };
    let mut query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(
            "SELECT oid FROM pg_catalog.pg_type WHERE NULL IN (typname, format_type(oid, NULL))",
        )
        .ok()?
        .parse_query()
        .ok()?;
    if let SetExpr::Select(select) = query.body.as_mut() {
        if let Some(SqlExpr::InList { expr, .. }) = select.selection.as_mut() {
            **expr = argument.clone();
        }
    }
    Some(SqlExpr::Subquery(query))
}

/// `generate_subscripts(a, d)` in a select list as
/// `unnest(generate_series(1, array_length(a, d)))`: the subscripts of a
/// PostgreSQL array (whose lower bound is 1) as the set-returning function
/// gives them, which DataFusion lacks. SQLAlchemy's key and index
/// reflection numbers a key's columns with it, beside `unnest(indkey)`;
/// DataFusion zips the two unnests as PostgreSQL does. An empty or NULL
/// array gives no rows, as in PostgreSQL.
fn generate_subscripts_call(expr: &SqlExpr) -> Option<SqlExpr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let SqlExpr::Function(function) = expr else {
        return None;
    };
    let name = function.name.0.last()?.as_ident()?;
    if !name.value.eq_ignore_ascii_case("generate_subscripts") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array)), FunctionArg::Unnamed(FunctionArgExpr::Expr(dimension))] =
        list.args.as_slice()
    else {
        return None;
    };
    parse_expr(&format!(
        "unnest(generate_series(1, CAST(array_length({array}, {dimension}) AS BIGINT)))"
    ))
}

/// `mod(a, b)` as `(a) % (b)`: PostgreSQL's `mod` is its `%` operator as
/// a function (the remainder takes the dividend's sign), which DataFusion
/// lacks.
fn mod_call(expr: &SqlExpr) -> Option<SqlExpr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let SqlExpr::Function(function) = expr else {
        return None;
    };
    let parts = crate::names::parts(&function.name);
    if !matches!(parts.as_slice(), [name] | [_, name] if name == "mod") {
        return None;
    }
    if parts.len() == 2 && parts[0] != "pg_catalog" {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(a)), FunctionArg::Unnamed(FunctionArgExpr::Expr(b))] =
        list.args.as_slice()
    else {
        return None;
    };
    if !list.clauses.is_empty() || function.over.is_some() || function.filter.is_some() {
        return None;
    }
    Some(SqlExpr::Nested(Box::new(SqlExpr::BinaryOp {
        left: Box::new(SqlExpr::Nested(Box::new(a.clone()))),
        op: BinaryOperator::Modulo,
        right: Box::new(SqlExpr::Nested(Box::new(b.clone()))),
    })))
}

/// `x::regtype::text` as `format_type(x, NULL)`: the type's name
/// (`integer`), where the oid-as-integer cast would give its number.
fn regtype_text(expr: &SqlExpr) -> Option<SqlExpr> {
    let bare = |t: &SqlType| {
        let name = t.to_string().to_ascii_lowercase();
        name.strip_prefix("pg_catalog.")
            .unwrap_or(&name)
            .to_string()
    };
    let SqlExpr::Cast {
        expr: inner,
        data_type: outer,
        ..
    } = expr
    else {
        return None;
    };
    let SqlExpr::Cast {
        expr: operand,
        data_type: middle,
        ..
    } = inner.as_ref()
    else {
        return None;
    };
    if !matches!(
        bare(outer).as_str(),
        "text" | "varchar" | "character varying"
    ) || bare(middle) != "regtype"
    {
        return None;
    }
    parse_expr(&format!("format_type({operand}, NULL)"))
}

/// A subquery over pg_catalog that refers to a table of the enclosing query.
fn is_correlated_catalog_query(query: &Query) -> bool {
    use datafusion::sql::sqlparser::ast::{TableFactor, Visit, Visitor};
    struct Scan {
        local: HashSet<String>,
        qualifiers: HashSet<String>,
        catalog: bool,
    }
    impl Visitor for Scan {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> std::ops::ControlFlow<()> {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    let text = name.to_string().to_ascii_lowercase();
                    self.catalog |= text.starts_with("pg_") || text == "unnest";
                    self.local
                        .insert(text.rsplit('.').next().unwrap_or(&text).to_string());
                    if let Some(a) = alias {
                        self.local.insert(a.name.value.to_ascii_lowercase());
                    }
                }
                TableFactor::UNNEST { alias: Some(a), .. } => {
                    self.catalog = true;
                    self.local.insert(a.name.value.to_ascii_lowercase());
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> std::ops::ControlFlow<()> {
            if let SqlExpr::CompoundIdentifier(parts) = expr {
                if parts.len() == 2 {
                    self.qualifiers.insert(parts[0].value.to_ascii_lowercase());
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut scan = Scan {
        local: HashSet::new(),
        qualifiers: HashSet::new(),
        catalog: query
            .to_string()
            .to_ascii_lowercase()
            .contains("pg_catalog."),
    };
    let _ = query.visit(&mut scan);
    scan.catalog && scan.qualifiers.iter().any(|q| !scan.local.contains(q))
}

fn json_call(inner: &SqlExpr, kind: JsonKind) -> Option<SqlExpr> {
    parse_expr(&format!("{}({inner})", json_function(kind)))
}

/// `substring(text FROM pattern)` with a string literal pattern: the part
/// of the text the POSIX regular expression matches (its first
/// parenthesized part, if it has one), NULL when it does not match, as
/// PostgreSQL reads this form. DataFusion took the pattern for a start
/// position and failed with an internal error.
fn substring_by_pattern(expr: &SqlExpr) -> Option<SqlExpr> {
    let SqlExpr::Substring {
        expr: text,
        substring_from: Some(pattern),
        substring_for: None,
        ..
    } = expr
    else {
        return None;
    };
    let SqlExpr::Value(value) = pattern.as_ref() else {
        return None;
    };
    if !matches!(
        value.value,
        datafusion::sql::sqlparser::ast::Value::SingleQuotedString(_)
            | datafusion::sql::sqlparser::ast::Value::EscapedStringLiteral(_)
    ) {
        return None;
    }
    parse_expr(&format!("(regexp_match({text}, {pattern}))[1]"))
}

/// `-2 ^ 2` as PostgreSQL reads it, `(-2) ^ 2 = 4`: a unary sign binds
/// tighter than `^`. sqlparser reads it as `-(2 ^ 2)`; the sign moves down to
/// the leftmost operand of the `^` chain. (For `*`, `/`, `%`, `+` and `-`
/// the two readings give the same value; a parenthesised `-(2 ^ 2)` is a
/// `Nested` expression and keeps its meaning.)
fn sign_binds_before_power(expr: &SqlExpr) -> Option<SqlExpr> {
    fn push(op: UnaryOperator, expr: SqlExpr) -> SqlExpr {
        match expr {
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::PGExp,
                right,
            } => SqlExpr::BinaryOp {
                left: Box::new(push(op, *left)),
                op: BinaryOperator::PGExp,
                right,
            },
            other => SqlExpr::UnaryOp {
                op,
                expr: Box::new(other),
            },
        }
    }
    match expr {
        SqlExpr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } if matches!(
            inner.as_ref(),
            SqlExpr::BinaryOp {
                op: BinaryOperator::PGExp,
                ..
            }
        ) =>
        {
            Some(push(*op, inner.as_ref().clone()))
        }
        _ => None,
    }
}

/// `CAST(x AS varchar(n))` (or `char(n)`, in any of their spellings) as
/// PostgreSQL runs it: an explicit cast cuts the text to `n` characters, and
/// never fails for its length. DataFusion drops the length from the type, so
/// the text is cut first; the outer cast keeps the type's name for the
/// column's name. `character varying(n)`, which DataFusion does not know, is
/// spelled `varchar(n)`.
fn length_limited_cast(expr: &SqlExpr) -> Option<SqlExpr> {
    use datafusion::sql::sqlparser::ast::CharacterLength;
    let SqlExpr::Cast {
        expr: inner,
        data_type,
        format: None,
        array: false,
        ..
    } = expr
    else {
        return None;
    };
    let (name, length) = match data_type {
        SqlType::Varchar(length)
        | SqlType::CharacterVarying(length)
        | SqlType::CharVarying(length) => ("varchar", length),
        SqlType::Char(length) | SqlType::Character(length) => ("char", length),
        _ => return None,
    };
    let length = match length {
        Some(CharacterLength::IntegerLength { length, .. }) => *length,
        // `character` without a length is `character(1)`.
        None if name == "char" => 1,
        _ => return None,
    };
    // A `char(n)` value's trailing spaces do not count: they are dropped,
    // as a `char(n)` column stores it (`dml::conform`).
    let cut = format!("left(CAST(({inner}) AS text), {length})");
    let cut = if name == "char" {
        format!("rtrim({cut}, ' ')")
    } else {
        cut
    };
    parse_expr(&format!("CAST({cut} AS {name}({length}))"))
}

/// `text` parsed as a PostgreSQL expression (the rewrites build their
/// replacements as SQL text).
pub(crate) fn parse_expr(text: &str) -> Option<SqlExpr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .ok()?
        .parse_expr()
        .ok()
}

/// Gives `SELECT col::type` the output name `col`, as Postgres does, unless
/// another select item already uses that name.
fn name_casts_like_postgres(query: &mut Query) {
    fn visit(body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                let mut taken: HashSet<String> = select
                    .projection
                    .iter()
                    .filter_map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => {
                            Some(alias.value.to_ascii_lowercase())
                        }
                        SelectItem::UnnamedExpr(SqlExpr::Identifier(i)) => {
                            Some(i.value.to_ascii_lowercase())
                        }
                        SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(parts)) => {
                            parts.last().map(|i| i.value.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect();
                for item in select.projection.iter_mut() {
                    let SelectItem::UnnamedExpr(SqlExpr::Cast { expr, .. }) = item else {
                        continue;
                    };
                    let column = match expr.as_ref() {
                        SqlExpr::Identifier(i) => i.clone(),
                        SqlExpr::CompoundIdentifier(parts) => match parts.last() {
                            Some(last) => last.clone(),
                            None => continue,
                        },
                        _ => continue,
                    };
                    if !taken.insert(column.value.to_ascii_lowercase()) {
                        continue;
                    }
                    let SelectItem::UnnamedExpr(cast) =
                        std::mem::replace(item, SelectItem::Wildcard(Default::default()))
                    else {
                        continue;
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: cast,
                        alias: Ident::new(column.value),
                    };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                visit(left);
                visit(right);
            }
            SetExpr::Query(q) => visit(&mut q.body),
            _ => {}
        }
    }
    visit(&mut query.body);
}

/// Replaces casts whose DataFusion behaviour differs from Postgres' with
/// Freshet's functions. Runs after type coercion, when every expression's
/// type is known.
#[derive(Debug, Default)]
pub(crate) struct PostgresCasts;

impl AnalyzerRule for PostgresCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, rewrite_cast)
    }

    fn name(&self) -> &str {
        "freshet_postgres_casts"
    }
}

/// The schema a node's expressions are evaluated against.
pub(crate) fn expression_schema(plan: &LogicalPlan) -> DFSchemaRef {
    let inputs = plan.inputs();
    match inputs.as_slice() {
        [] => plan.schema().clone(),
        [one] => one.schema().clone(),
        [first, rest @ ..] => {
            let mut merged: DFSchema = first.schema().as_ref().clone();
            for other in rest {
                merged.merge(other.schema());
            }
            Arc::new(merged)
        }
    }
}

fn rewrite_cast(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    if let Some(octets) = bytea_length(&expr, schema) {
        return Ok(Transformed::yes(octets));
    }
    let (inner, target) = match &expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            (expr.as_ref(), field.data_type())
        }
        _ => return Ok(Transformed::no(expr)),
    };
    let Ok(source) = inner.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if let (
        Expr::Cast(_),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
        DataType::Timestamp(_, zone),
    ) = (&expr, &source, target)
    {
        // Postgres' timestamp input (see `datetime_input`).
        let udf = crate::datetime_input::text_to_timestamp_udf(zone.is_some());
        let parsed = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![inner.clone()]));
        return Ok(Transformed::yes(Expr::Cast(Cast::new(
            Box::new(parsed),
            target.clone(),
        ))));
    }
    if let (
        Expr::Cast(_),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
        DataType::Date32,
    ) = (&expr, &source, target)
    {
        // Postgres' date input (see `datetime_input`).
        let udf = crate::datetime_input::text_to_date_udf();
        return Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, vec![inner.clone()]),
        )));
    }
    if let (
        Expr::Cast(_),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
        DataType::Decimal128(_, _),
    ) = (&expr, &source, target)
    {
        // Postgres' numeric input: exponents, `+`, white space.
        let plain = Expr::ScalarFunction(ScalarFunction::new_udf(
            crate::numeric_text::udf(),
            vec![inner.clone()],
        ));
        return Ok(Transformed::yes(Expr::Cast(Cast::new(
            Box::new(plain),
            target.clone(),
        ))));
    }
    // An array's text is PostgreSQL's `{a,b}` (Arrow's cast writes
    // `[a, b]`); a list that is a JSON value keeps its JSON text.
    let array_text = matches!(
        (&source, target),
        (DataType::List(_) | DataType::LargeList(_), DataType::Utf8)
    ) && !inner
        .to_field(schema)
        .is_ok_and(|(_, field)| crate::types::is_json(&field));
    let function = match (&source, target) {
        _ if array_text => text_udf(),
        (
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
            DataType::Interval(IntervalUnit::MonthDayNano),
        ) => interval_udf(),
        (
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
            DataType::Binary | DataType::BinaryView | DataType::LargeBinary,
        ) => bytea_udf(),
        (DataType::Binary | DataType::LargeBinary | DataType::BinaryView, DataType::Utf8) => {
            text_udf()
        }
        (
            DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Time64(_)
            | DataType::Interval(IntervalUnit::MonthDayNano)
            | DataType::Float32
            | DataType::Float64,
            DataType::Utf8,
        ) => text_udf(),
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(function, vec![inner.clone()]),
    )))
}

/// `length(bytea)` counts bytes in Postgres. Coercion has already turned
/// the argument into text (and this rule into `freshet_pg_text`), so undo
/// that and count the bytes.
fn bytea_length(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::ScalarFunction(call) = expr else {
        return None;
    };
    if !matches!(call.name(), "length" | "character_length" | "char_length") {
        return None;
    }
    let bytes = match call.args.as_slice() {
        [Expr::ScalarFunction(text)] if text.name() == TEXT_FUNCTION => {
            match text.args.as_slice() {
                [bytes] => bytes,
                _ => return None,
            }
        }
        [Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. })] => expr.as_ref(),
        _ => return None,
    };
    let is_binary = matches!(
        bytes.get_type(schema).ok()?,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    );
    is_binary.then(|| {
        let as_binary = Expr::Cast(Cast::new(Box::new(bytes.clone()), DataType::Binary));
        Expr::ScalarFunction(ScalarFunction::new_udf(bytea_length_udf(), vec![as_binary]))
    })
}

/// `freshet_bytea_length(bytea) -> int4`: the byte count. DataFusion's
/// `octet_length` only takes text.
fn bytea_length_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(datafusion::logical_expr::create_udf(
            "freshet_bytea_length",
            vec![DataType::Binary],
            DataType::Int32,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let [bytes] = arrays.as_slice() else {
                    return Err(DataFusionError::Internal(
                        "freshet_bytea_length takes one argument".into(),
                    ));
                };
                let lengths = datafusion::arrow::compute::kernels::length::length(bytes)?;
                if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    let scalar = datafusion::common::ScalarValue::try_from_array(&lengths, 0)?;
                    Ok(ColumnarValue::Scalar(scalar))
                } else {
                    Ok(ColumnarValue::Array(lengths))
                }
            }),
        ))
    })
    .clone()
}

/// Registers the functions the rewrites call.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(JsonText::new(JsonKind::Json)));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonText::new(JsonKind::Jsonb)));
    ctx.register_udf(interval_udf().as_ref().clone());
    ctx.register_udf(bytea_udf().as_ref().clone());
    ctx.register_udf(text_udf().as_ref().clone());
    ctx.register_udf(bytea_length_udf().as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(PostgresCasts));
    // Freshet has no logical replication; psql passes the OID as text.
    ctx.register_udf(ScalarUDF::new_from_impl(NeverPublishable {
        signature: Signature::any(1, Volatility::Stable),
    }));
    // Every collation is pg_catalog's, which is always searched.
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let oids = match args {
                [ColumnarValue::Array(array)] => array.clone(),
                [ColumnarValue::Scalar(scalar)] => scalar.to_array()?,
                _ => {
                    return Err(engine_error(
                        "42883",
                        "pg_collation_is_visible takes one argument".into(),
                    ))
                }
            };
            let visible: datafusion::arrow::array::BooleanArray = (0..oids.len())
                .map(|i| oids.is_valid(i).then_some(true))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(visible)))
        }),
    ));
    // psql's `\d+` shows column comments; Freshet keeps none for tables.
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "col_description",
        vec![DataType::Int32, DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Utf8(None),
            ))
        }),
    ));
}

/// A catalog function whose text answer Freshet does not have: NULL, as
/// PostgreSQL answers for an object without one. Serves
/// `shobj_description` (databases and roles carry no comments).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NullText {
    pub(crate) name: &'static str,
    pub(crate) signature: Signature,
}

impl ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(None),
        ))
    }
}

/// `pg_relation_is_publishable(oid)`: always false, whatever the OID's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NeverPublishable {
    signature: Signature,
}

impl ScalarUDFImpl for NeverPublishable {
    fn name(&self) -> &str {
        "pg_relation_is_publishable"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Boolean(Some(false)),
        ))
    }
}

fn bytea_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(ScalarUDF::new_from_impl(TextToBytea::new())))
        .clone()
}

/// `freshet_text_to_bytea(text)`: Postgres bytea input (`\x` hex or the
/// escape format) instead of the text's own UTF-8 bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextToBytea {
    signature: Signature,
}

impl TextToBytea {
    fn new() -> Self {
        TextToBytea {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextToBytea {
    fn name(&self) -> &str {
        "freshet_text_to_bytea"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let text = crate::udf_args::only_argument_as_text(&args, || {
            engine_error("42883", "bytea input takes one argument".into())
        })?;
        let text = text.as_string::<i32>();
        let mut out = datafusion::arrow::array::BinaryBuilder::with_capacity(text.len(), 0);
        for value in text.iter() {
            match value {
                None => out.append_null(),
                Some(s) => out.append_value(parse_bytea(s).ok_or_else(|| {
                    engine_error(
                        "22P02",
                        format!("invalid input syntax for type bytea: \"{s}\""),
                    )
                })?),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Decodes Postgres bytea text: `\x0102ff` (hex) or the escape format, where
/// `\\` is a backslash and `\nnn` an octal byte.
pub fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

fn interval_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(ScalarUDF::new_from_impl(TextToInterval::new())))
        .clone()
}

fn text_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(ScalarUDF::new_from_impl(PostgresText::new())))
        .clone()
}

fn engine_error(sqlstate: &'static str, message: String) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::new(sqlstate, message)))
}

/// The function that reads text as `kind`.
fn json_function(kind: JsonKind) -> &'static str {
    match kind {
        JsonKind::Json => JSON_FUNCTION,
        JsonKind::Jsonb => JSONB_FUNCTION,
    }
}

/// `freshet_json(text)` validates JSON text and marks the result as `json`;
/// `freshet_jsonb(text)` also puts it in `jsonb`'s canonical form and marks
/// it `jsonb` (see `json_text`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonText {
    kind: JsonKind,
    signature: Signature,
}

impl JsonText {
    fn new(kind: JsonKind) -> Self {
        JsonText {
            kind,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonText {
    fn name(&self) -> &str {
        json_function(self.kind)
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(crate::types::json_field(
            self.name(),
            self.kind,
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let text = crate::udf_args::only_argument_as_text(&args, || {
            engine_error("42883", format!("{} takes one argument", self.name()))
        })?;
        let text = text.as_string::<i32>();
        let ext = |e: EngineError| DataFusionError::External(Box::new(e));
        match self.kind {
            JsonKind::Json => {
                for value in text.iter().flatten() {
                    crate::json_text::validate_json(value).map_err(ext)?;
                }
                Ok(ColumnarValue::Array(Arc::new(text.clone())))
            }
            JsonKind::Jsonb => {
                let canonical: datafusion::arrow::array::StringArray = text
                    .iter()
                    .map(|v| v.map(crate::json_text::jsonb_text).transpose())
                    .collect::<Result<_, _>>()
                    .map_err(ext)?;
                Ok(ColumnarValue::Array(Arc::new(canonical)))
            }
        }
    }
}

/// `freshet_text_to_interval(text)`: Postgres interval input.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextToInterval {
    signature: Signature,
}

impl TextToInterval {
    fn new() -> Self {
        TextToInterval {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextToInterval {
    fn name(&self) -> &str {
        INTERVAL_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let text = crate::udf_args::only_argument_as_text(&args, || {
            engine_error("42883", "interval input takes one argument".into())
        })?;
        let text = text.as_string::<i32>();
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(text.len());
        for value in text.iter() {
            match value {
                None => out.append_null(),
                Some(s) => out.append_value(parse_interval(s).ok_or_else(|| {
                    engine_error(
                        "22007",
                        format!("invalid input syntax for type interval: \"{s}\""),
                    )
                })?),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Parses Postgres interval text: unit pairs (`3 mons -1 days`), an optional
/// `[-]hh:mm[:ss[.frac]]` clock part, `@` and `ago`.
pub fn parse_interval(
    text: &str,
) -> Option<<IntervalMonthDayNanoType as datafusion::arrow::datatypes::ArrowPrimitiveType>::Native>
{
    let mut words: Vec<String> = Vec::new();
    let mut negate_all = false;
    for token in text.split_whitespace() {
        if token == "@" {
            continue;
        }
        if token.eq_ignore_ascii_case("ago") {
            negate_all = true;
            continue;
        }
        if token.contains(':') {
            let (sign, clock) = match token.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", token.strip_prefix('+').unwrap_or(token)),
            };
            let mut parts = clock.split(':');
            let hours = parts.next()?;
            let minutes = parts.next()?;
            let seconds = parts.next().unwrap_or("0");
            if parts.next().is_some()
                || [hours, minutes]
                    .iter()
                    .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
                || seconds.parse::<f64>().is_err()
            {
                return None;
            }
            words.push(format!(
                "{sign}{hours} hours {sign}{minutes} minutes {sign}{seconds} seconds"
            ));
        } else {
            // `+2 hours`: Arrow's parser takes no `+`.
            let unsigned = token
                .strip_prefix('+')
                .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'));
            words.push(unsigned.unwrap_or(token).to_string());
        }
    }
    if words.is_empty() {
        return None;
    }
    let value = datafusion::arrow::compute::kernels::cast_utils::parse_interval_month_day_nano(
        &words.join(" "),
    )
    .ok()?;
    Some(if negate_all {
        IntervalMonthDayNanoType::make_value(-value.months, -value.days, -value.nanoseconds)
    } else {
        value
    })
}

/// `freshet_pg_text(value)`: a date/time/interval value as Postgres prints it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PostgresText {
    signature: Signature,
}

impl PostgresText {
    fn new() -> Self {
        PostgresText {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PostgresText {
    fn name(&self) -> &str {
        TEXT_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(engine_error(
                "42883",
                "text output takes one argument".into(),
            ));
        };
        let array = value.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(postgres_text(&array)?))
    }
}

/// Formats a date/time/interval array the way Postgres prints it.
pub(crate) fn postgres_text(array: &ArrayRef) -> DfResult<ArrayRef> {
    use crate::types::pg_text;
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 26);
    macro_rules! each {
        ($typ:ty, $fmt:expr) => {{
            let values = array.as_primitive::<$typ>();
            for i in 0..values.len() {
                if values.is_null(i) {
                    out.append_null();
                } else {
                    out.append_option($fmt(values.value(i)));
                }
            }
        }};
    }
    match array.data_type() {
        DataType::Timestamp(unit, tz) => {
            let with_zone = tz.is_some();
            match unit {
                TimeUnit::Second => each!(TimestampSecondType, |v: i64| pg_text::timestamp_micros(
                    v.checked_mul(1_000_000)?,
                    with_zone
                )),
                TimeUnit::Millisecond => {
                    each!(
                        TimestampMillisecondType,
                        |v: i64| pg_text::timestamp_micros(v.checked_mul(1_000)?, with_zone)
                    )
                }
                TimeUnit::Microsecond => {
                    each!(
                        TimestampMicrosecondType,
                        |v: i64| pg_text::timestamp_micros(v, with_zone)
                    )
                }
                TimeUnit::Nanosecond => {
                    each!(TimestampNanosecondType, |v: i64| pg_text::timestamp_micros(
                        v / 1_000,
                        with_zone
                    ))
                }
            }
        }
        DataType::Date32 => each!(Date32Type, pg_text::date_days),
        DataType::Float64 => each!(Float64Type, |v| Some(pg_text::float8(v))),
        DataType::Float32 => each!(Float32Type, |v| Some(pg_text::float4(v))),
        DataType::Time64(TimeUnit::Microsecond) => {
            each!(Time64MicrosecondType, pg_text::time_micros)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            each!(IntervalMonthDayNanoType, |v| Some(pg_text::interval(v)))
        }
        DataType::Binary => {
            let values = array.as_binary::<i32>();
            for value in values.iter() {
                out.append_option(value.map(|bytes| {
                    let mut text = String::with_capacity(2 + bytes.len() * 2);
                    text.push_str("\\x");
                    for byte in bytes {
                        text.push_str(&format!("{byte:02x}"));
                    }
                    text
                }));
            }
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let lists = datafusion::arrow::compute::cast(
                array,
                &DataType::new_list(item.data_type().clone(), true),
            )?;
            let lists = lists.as_list::<i32>();
            let nested = matches!(
                lists.value_type(),
                DataType::List(_) | DataType::LargeList(_)
            );
            let elements = match lists.value_type() {
                // t and f inside an array, as array_out writes them.
                DataType::Boolean => Arc::new(
                    lists
                        .values()
                        .as_boolean()
                        .iter()
                        .map(|b| b.map(|b| if b { "t" } else { "f" }))
                        .collect::<datafusion::arrow::array::StringArray>(),
                ) as ArrayRef,
                _ => postgres_text(lists.values())?,
            };
            let elements = elements.as_string::<i32>();
            for (i, offsets) in lists.offsets().windows(2).enumerate() {
                if lists.is_null(i) {
                    out.append_null();
                    continue;
                }
                let mut text = String::from("{");
                for j in offsets[0] as usize..offsets[1] as usize {
                    if j > offsets[0] as usize {
                        text.push(',');
                    }
                    if elements.is_null(j) {
                        text.push_str("NULL");
                    } else if nested {
                        text.push_str(elements.value(j));
                    } else {
                        push_array_element(&mut text, elements.value(j));
                    }
                }
                text.push('}');
                out.append_value(text);
            }
        }
        _ => return Ok(datafusion::arrow::compute::cast(array, &DataType::Utf8)?),
    }
    Ok(Arc::new(out.finish()))
}

/// Appends one element of an array's text as PostgreSQL's `array_out`
/// writes it: in double quotes, with `"` and `\` escaped, when it is empty,
/// spells NULL, or holds a delimiter, brace, quote, backslash or blank.
fn push_array_element(text: &mut String, element: &str) {
    let quote = element.is_empty()
        || element.eq_ignore_ascii_case("NULL")
        || element
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !quote {
        text.push_str(element);
        return;
    }
    text.push('"');
    for c in element.chars() {
        if matches!(c, '"' | '\\') {
            text.push('\\');
        }
        text.push(c);
    }
    text.push('"');
}

/// Types implied for parameters by casts such as `$1::bigint`: DataFusion
/// infers parameter types from comparisons and inserts, not from casts, but
/// drivers need them to bind values in binary.
pub(crate) fn placeholder_cast_types(
    plan: &LogicalPlan,
) -> std::collections::HashMap<String, DataType> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = std::collections::HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) = e
                {
                    if let Expr::Placeholder(p) = expr.as_ref() {
                        if p.field.is_none() {
                            found
                                .entry(p.id.clone())
                                .or_insert_with(|| field.data_type().clone());
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// Parameters passed straight to `x::json` (`freshet_json($1)`): the client
/// sends them as json.
pub(crate) fn placeholder_json_casts(plan: &LogicalPlan) -> HashSet<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = HashSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.name() == JSON_FUNCTION || f.name() == JSONB_FUNCTION {
                        if let [Expr::Placeholder(p)] = f.args.as_slice() {
                            found.insert(p.id.clone());
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}
