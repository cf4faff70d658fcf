//! Set-returning functions in a select list return rows, and in FROM they
//! may read the tables before them, as in PostgreSQL.
//!
//! PostgreSQL's `generate_series` is a set-returning function: `SELECT
//! generate_series(1, 3), 'x'` is three rows. DataFusion has it as a table
//! function, and as a scalar function that returns the whole series as one
//! list: the same query gave one row, `{1,2,3} | x`, without an error.
//!
//! [`expand_in_select_lists`] wraps each call of a set-returning function
//! in a select list in `unnest(…)` of a list, which DataFusion expands
//! into rows (several in one list are zipped, as PostgreSQL 10 and later
//! do), keeping the column name of the function: `generate_series(…)` is
//! its own list, and the JSON functions (`jsonb_array_elements`,
//! `jsonb_array_elements_text`, `jsonb_object_keys` and their `json`
//! twins) are lists of [`crate::json_sets`], their elements cast back to
//! `jsonb` or `json`, and `regexp_matches` a list of
//! [`crate::regexp_matches`]. Only calls at the top of a select item, or under
//! operators, casts and parentheses there, are wrapped; subqueries are
//! select lists of their own, reached by the visitor.
//!
//! [`functions_in_from`] makes a function call in FROM a derived table
//! whose select list calls it, `LATERAL` when its arguments name columns,
//! so `FROM t, jsonb_array_elements(t.j) AS e` and `FROM t, unnest(t.a)`
//! run it for each row of `t` ([`crate::lateral`]), as PostgreSQL does.
//! DataFusion has no lateral function calls (0A000), and no JSON table
//! functions at all. This covers the JSON functions (with `jsonb_each` and
//! `jsonb_each_text`, whose `key` and `value` columns are two lists
//! unnested side by side) and `regexp_matches` everywhere, and `unnest` of
//! one array and `generate_series` when their arguments name columns; with
//! constant arguments those two stay DataFusion's table functions. `WITH
//! ORDINALITY` adds `ordinality`, an unnested list `1, 2, …` as long as
//! the function's. Columns are named as PostgreSQL names them: `value`
//! (and `key`) for the JSON functions that declare those names, and for the
//! others the table alias, or the function's name when there is none; a
//! column list in the alias (`AS e(v, n)`) renames them in order.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, Expr, FunctionArg, FunctionArguments, Ident, ObjectName, Query, SelectItem,
    SetExpr, Statement, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::json_sets::{list_function, JsonSetFunction, Piece, ORDINALS};

/// Rewrites every select list of `statement` as the module docs say.
pub(crate) fn expand_in_select_lists(statement: &mut Statement) {
    let _ = statement.visit(&mut SelectLists);
}

/// Rewrites every function call in a FROM clause of `statement` that the
/// module docs name into a derived table.
pub(crate) fn functions_in_from(statement: &mut Statement) {
    let _ = statement.visit(&mut FromFunctions);
}

struct SelectLists;

impl VisitorMut for SelectLists {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        expand_set(query.body.as_mut());
        ControlFlow::Continue(())
    }
}

fn expand_set(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(expr) if set_returning(expr).is_some() => {
                        let name = set_returning(expr).map(|(name, _)| name);
                        let call = std::mem::replace(
                            expr,
                            Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
                        );
                        *item = SelectItem::ExprWithAlias {
                            expr: unnest(call),
                            alias: Ident::new(name.unwrap_or_default()),
                        };
                    }
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                        wrap(expr)
                    }
                    _ => {}
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            expand_set(left);
            expand_set(right);
        }
        // A parenthesized query is a `Query`, which the visitor reaches.
        _ => {}
    }
}

/// The name of the set-returning function `expr` calls, in lower case,
/// and its arguments as SQL text.
fn set_returning(expr: &Expr) -> Option<(String, String)> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    // `jsonb_each` and `jsonb_each_text` return a record of two columns,
    // which a select list cannot hold here; they are for FROM.
    let expands = match JsonSetFunction::named(&name) {
        Some((function, _)) => {
            !matches!(function, JsonSetFunction::Each | JsonSetFunction::EachText)
        }
        None => matches!(name.as_str(), "generate_series" | "regexp_matches"),
    };
    if !expands {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    Some((name, comma_list(&list.args)))
}

fn comma_list(args: &[FunctionArg]) -> String {
    args.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The list a set-returning function's rows are the elements of, as SQL
/// text, and the type they are cast to.
fn list_of(name: &str, args: &str) -> Option<(String, Option<&'static str>)> {
    match name {
        "generate_series" => return Some((format!("generate_series({args})"), None)),
        "regexp_matches" => {
            return Some((
                format!("{}({args})", crate::regexp_matches::REGEXP_MATCHES),
                None,
            ))
        }
        _ => {}
    }
    let (function, jsonb) = JsonSetFunction::named(name)?;
    let piece = match function {
        JsonSetFunction::ArrayElements => Piece::Elements,
        JsonSetFunction::ArrayElementsText => Piece::ElementTexts,
        JsonSetFunction::ObjectKeys => Piece::Keys,
        JsonSetFunction::Each | JsonSetFunction::EachText => return None,
    };
    let cast = (function == JsonSetFunction::ArrayElements).then_some(if jsonb {
        "JSONB"
    } else {
        "JSON"
    });
    Some((
        format!("{}({args})", list_function(function, jsonb, piece)),
        cast,
    ))
}

fn unnest(call: Expr) -> Expr {
    let Some((list, cast)) = set_returning(&call).and_then(|(name, args)| list_of(&name, &args))
    else {
        return call;
    };
    let text = match cast {
        Some(cast) => format!("CAST(unnest({list}) AS {cast})"),
        None => format!("unnest({list})"),
    };
    crate::pg_compat::parse_expr(&text).unwrap_or(call)
}

/// Wraps the set-returning calls in `expr`, looking through operators,
/// casts and parentheses only.
fn wrap(expr: &mut Expr) {
    if set_returning(expr).is_some() {
        let call = std::mem::replace(
            expr,
            Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
        );
        *expr = unnest(call);
        return;
    }
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            wrap(left);
            wrap(right);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => wrap(expr),
        _ => {}
    }
}

struct FromFunctions;

impl VisitorMut for FromFunctions {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let call = match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                with_ordinality,
                alias,
                ..
            } if args.settings.is_none() => function_name(name).map(|function| FromCall {
                function,
                args: comma_list(&args.args),
                correlated: names_columns(args.args.iter()),
                with_ordinality: *with_ordinality,
                alias: alias.clone(),
            }),
            TableFactor::Function {
                name,
                args,
                with_ordinality,
                alias,
                ..
            } => function_name(name).map(|function| FromCall {
                function,
                args: comma_list(args),
                correlated: names_columns(args.iter()),
                with_ordinality: *with_ordinality,
                alias: alias.clone(),
            }),
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality,
                ..
            } if array_exprs.len() == 1 => Some(FromCall {
                function: "unnest".to_string(),
                args: array_exprs[0].to_string(),
                correlated: names_columns_in(&array_exprs[0]),
                with_ordinality: *with_ordinality,
                alias: alias.clone(),
            }),
            _ => None,
        };
        if let Some(derived) = call.and_then(|call| call.derived_table()) {
            *factor = derived;
        }
        ControlFlow::Continue(())
    }
}

/// A function's name in FROM, in lower case, unless it is qualified by a
/// schema other than `pg_catalog`.
fn function_name(name: &ObjectName) -> Option<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [function] => Some(function.clone()),
        [schema, function] if schema == "pg_catalog" => Some(function.clone()),
        _ => None,
    }
}

/// Whether any of `args` names a column (so the call reads the row of a
/// table before it).
fn names_columns<'a>(mut args: impl Iterator<Item = &'a FunctionArg>) -> bool {
    args.any(|arg| {
        let mut found = false;
        let _ = visit_expressions(arg, |expr| {
            found |= matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
            ControlFlow::<()>::Continue(())
        });
        found
    })
}

fn names_columns_in(expr: &Expr) -> bool {
    let mut found = false;
    let _ = visit_expressions(expr, |expr| {
        found |= matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// A function call in FROM.
struct FromCall {
    /// The function's name, in lower case.
    function: String,
    /// Its arguments as SQL text.
    args: String,
    /// Whether its arguments name columns.
    correlated: bool,
    with_ordinality: bool,
    alias: Option<TableAlias>,
}

impl FromCall {
    /// The derived table the call becomes, or `None` for a call left as it
    /// is (see the module docs).
    fn derived_table(self) -> Option<TableFactor> {
        let json = JsonSetFunction::named(&self.function);
        let rewritten = match self.function.as_str() {
            // DataFusion's own table functions, which take constants.
            "unnest" | "generate_series" => self.correlated,
            "regexp_matches" => true,
            _ => json.is_some(),
        };
        if !rewritten {
            return None;
        }
        let args = &self.args;
        // The column a one-column function without a declared name gets.
        let own_name = || {
            let name = match &self.alias {
                Some(alias) => crate::names::ident(&alias.name),
                None => self.function.clone(),
            };
            Ident::with_quote('"', name).to_string()
        };
        let (items, list) = match json {
            Some((function @ (JsonSetFunction::Each | JsonSetFunction::EachText), jsonb)) => {
                let keys = list_function(function, jsonb, Piece::Keys);
                let (values, cast) = if function == JsonSetFunction::Each {
                    let cast = if jsonb { "JSONB" } else { "JSON" };
                    (list_function(function, jsonb, Piece::Values), Some(cast))
                } else {
                    (list_function(function, jsonb, Piece::ValueTexts), None)
                };
                let value = match cast {
                    Some(cast) => format!("CAST(unnest({values}({args})) AS {cast})"),
                    None => format!("unnest({values}({args}))"),
                };
                (
                    format!("unnest({keys}({args})) AS key, {value} AS value"),
                    format!("{keys}({args})"),
                )
            }
            Some((function, _)) => {
                let column = match function {
                    JsonSetFunction::ObjectKeys => own_name(),
                    _ => "value".to_string(),
                };
                let (list, _) = list_of(&self.function, args)?;
                (format!("{}({args}) AS {column}", self.function), list)
            }
            None if self.function == "unnest" => {
                (format!("unnest({args}) AS {}", own_name()), args.clone())
            }
            None => (
                format!("{}({args}) AS {}", self.function, own_name()),
                list_of(&self.function, args)?.0,
            ),
        };
        let ordinality = if self.with_ordinality {
            format!(", unnest({ORDINALS}({list})) AS ordinality")
        } else {
            String::new()
        };
        let query = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&format!("SELECT {items}{ordinality}"))
            .ok()?
            .parse_query()
            .ok()?;
        let mut alias = self.alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new(&self.function),
            columns: Vec::new(),
            at: None,
        });
        // A column list shorter than the columns renames the first ones
        // and leaves the others their names, as in PostgreSQL.
        if !alias.columns.is_empty() {
            if let SetExpr::Select(select) = query.body.as_ref() {
                let names = select.projection.iter().filter_map(|item| match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
                    _ => None,
                });
                let given = alias.columns.len();
                alias
                    .columns
                    .extend(names.skip(given).map(|name| TableAliasColumnDef {
                        name,
                        data_type: None,
                    }));
            }
        }
        Some(TableFactor::Derived {
            lateral: self.correlated,
            subquery: query,
            alias: Some(alias),
            sample: None,
        })
    }
}
