//! The names PostgreSQL gives unnamed output columns.
//!
//! Clients read result columns by name: pandas makes them a frame's
//! columns, ORMs map them to attributes, psql prints them. DataFusion names
//! an expression after its whole text (`abs(t1.a)`, `t1.a + Int64(1)`);
//! PostgreSQL names it after its outermost function, cast or keyword, and
//! `?column?` when there is none (its parser's `FigureColname`):
//!
//! | select item | name |
//! |---|---|
//! | `t.a`, `a::text` | `a` |
//! | `abs(a)`, `count(*)`, `pg_catalog.format_type(…)` | `abs`, `count`, `format_type` |
//! | `'x'::text`, `1::int`, `DATE '2024-01-01'` | `text`, `int4`, `date` |
//! | `CASE …`, `COALESCE(…)`, `EXISTS (…)`, `ARRAY[…]` | `case`, `coalesce`, `exists`, `array` |
//! | `(SELECT max(b) FROM …)` | the subquery's column name, `max` |
//! | `a + 1`, `1`, `a IS NULL` | `?column?` |
//!
//! [`figure_name`] computes that name from the statement's syntax tree;
//! `planning::plan_query` gives it to the client through the same internal
//! alias it uses for repeated names. Freshet's own functions (model calls,
//! `col:field` access) keep the names they give themselves.

use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr, Function, ObjectNamePart, Query, SelectItem, SetExpr, TimezoneInfo,
    TrimWhereField,
};

/// The name PostgreSQL gives an unnamed select item `expr`, or `None` when
/// Freshet keeps DataFusion's (plain columns, and Freshet's own functions).
pub(crate) fn figure_name(expr: &Expr) -> Option<String> {
    match figure(expr) {
        Figured::Name(name) => Some(name),
        Figured::Unnamed => Some("?column?".to_string()),
        Figured::Keep => None,
    }
}

/// What [`figure`] found: a name, nothing (PostgreSQL's `?column?`), or a
/// node whose DataFusion name is kept.
enum Figured {
    Name(String),
    Unnamed,
    Keep,
}

fn figure(expr: &Expr) -> Figured {
    use Figured::{Keep, Name, Unnamed};
    let named = |s: &str| Name(s.to_string());
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Keep,
        Expr::Nested(inner) => figure(inner),
        Expr::Function(function) => function_name(function),
        Expr::Cast {
            expr, data_type, ..
        } => match figure(expr) {
            Unnamed => type_name(data_type).map_or(Keep, Name),
            other => other,
        },
        Expr::TypedString(typed) => type_name(&typed.data_type).map_or(Keep, Name),
        Expr::Case { .. } => named("case"),
        Expr::Exists { .. } => named("exists"),
        Expr::Array(_) => named("array"),
        Expr::Subquery(query) => subquery_name(query),
        Expr::Extract { .. } => named("extract"),
        Expr::Ceil { .. } => named("ceil"),
        Expr::Floor { .. } => named("floor"),
        Expr::Position { .. } => named("position"),
        Expr::Substring { .. } => named("substring"),
        Expr::Overlay { .. } => named("overlay"),
        Expr::Trim { trim_where, .. } => named(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        // A path into a model call (`m!predict(…)->>'label'`) is named as
        // written, as the call is.
        Expr::BinaryOp { left, .. } if is_freshet_call(left) => Keep,
        Expr::Value(_)
        | Expr::BinaryOp { .. }
        | Expr::UnaryOp { .. }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::Between { .. }
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => Unnamed,
        _ => Keep,
    }
}

/// Whether `expr` is a call of one of Freshet's own functions, or a path
/// (`->`, `->>`) into one.
fn is_freshet_call(expr: &Expr) -> bool {
    match expr {
        Expr::Function(function) => matches!(function_name(function), Figured::Keep),
        Expr::BinaryOp { left, .. } | Expr::Nested(left) => is_freshet_call(left),
        _ => false,
    }
}

/// A function call's name: its last name part, as PostgreSQL reads it.
fn function_name(function: &Function) -> Figured {
    let Some(ObjectNamePart::Identifier(last)) = function.name.0.last() else {
        return Figured::Keep;
    };
    let name = crate::names::ident(last);
    if name.starts_with("freshet_") {
        // Model calls and field access, rewritten by the dialect layer.
        return Figured::Keep;
    }
    Figured::Name(name)
}

/// A scalar subquery takes the name of its single output column.
fn subquery_name(query: &Query) -> Figured {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => {
                return match select.projection.first() {
                    Some(SelectItem::ExprWithAlias { alias, .. }) => {
                        Figured::Name(crate::names::ident(alias))
                    }
                    Some(SelectItem::UnnamedExpr(expr)) => match expr {
                        Expr::Identifier(ident) => Figured::Name(crate::names::ident(ident)),
                        Expr::CompoundIdentifier(parts) => parts
                            .last()
                            .map_or(Figured::Keep, |p| Figured::Name(crate::names::ident(p))),
                        other => figure(other),
                    },
                    _ => Figured::Keep,
                }
            }
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => return Figured::Keep,
        }
    }
}

/// The name PostgreSQL's grammar gives a type in a cast (`int` is `int4`,
/// `double precision` is `float8`), or `None` for types Freshet leaves to
/// DataFusion's naming.
fn type_name(data_type: &SqlType) -> Option<String> {
    let name = match data_type {
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "int4",
        SqlType::BigInt(_) | SqlType::Int8(_) => "int8",
        SqlType::SmallInt(_) | SqlType::Int2(_) => "int2",
        SqlType::Real | SqlType::Float4 => "float4",
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 => "float8",
        SqlType::Float(info) => match info {
            datafusion::sql::sqlparser::ast::ExactNumberInfo::Precision(p) if *p <= 24 => "float4",
            _ => "float8",
        },
        SqlType::Numeric(_) | SqlType::Decimal(_) => "numeric",
        SqlType::Bool | SqlType::Boolean => "bool",
        SqlType::Text => "text",
        SqlType::Varchar(_) | SqlType::CharacterVarying(_) => "varchar",
        SqlType::Char(_) | SqlType::Character(_) => "bpchar",
        SqlType::Date => "date",
        SqlType::Time(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => "timetz",
            _ => "time",
        },
        SqlType::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => "timestamptz",
            _ => "timestamp",
        },
        SqlType::Interval { .. } => "interval",
        SqlType::JSON => "json",
        SqlType::JSONB => "jsonb",
        SqlType::Bytea => "bytea",
        SqlType::Uuid => "uuid",
        SqlType::Regclass => "regclass",
        SqlType::Custom(name, _) => {
            return match name.0.last() {
                Some(ObjectNamePart::Identifier(last)) => Some(crate::names::ident(last)),
                _ => None,
            }
        }
        _ => return None,
    };
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn name(sql: &str) -> Option<String> {
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("an expression");
        figure_name(&expr)
    }

    #[test]
    fn names_as_postgres_gives_them() {
        for (sql, expected) in [
            ("abs(t.a)", Some("abs")),
            ("pg_catalog.format_type(1, NULL)", Some("format_type")),
            ("count(*)", Some("count")),
            ("a + 1", Some("?column?")),
            ("1", Some("?column?")),
            ("'x'::text", Some("text")),
            ("1::int", Some("int4")),
            ("1::double precision", Some("float8")),
            ("a::text", None),
            ("(a)", None),
            ("CASE WHEN a THEN 1 END", Some("case")),
            ("COALESCE(a, 1)", Some("coalesce")),
            ("EXISTS (SELECT 1)", Some("exists")),
            ("(SELECT max(b) FROM t)", Some("max")),
            ("(SELECT b AS c FROM t)", Some("c")),
            ("DATE '2024-01-01'", Some("date")),
            ("a IS NULL", Some("?column?")),
            ("freshet_model_call('m', 'v', a)", None),
            ("freshet_model_call('m', 'v', a) ->> 'label'", None),
            ("j ->> 'label'", Some("?column?")),
        ] {
            assert_eq!(name(sql).as_deref(), expected, "{sql}");
        }
    }
}
