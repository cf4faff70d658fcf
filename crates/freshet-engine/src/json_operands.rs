//! Which operands of an operator are `json` or `jsonb`, as PostgreSQL
//! resolves its operators for them.
//!
//! Freshet keeps both JSON types as text (`Utf8` with a type tag), so
//! DataFusion plans `||`, `=` or `<` of them as text operators. The rules
//! that give them PostgreSQL's JSON operators instead
//! ([`crate::jsonb_concat`], [`crate::jsonb_order`]) ask [`operand`] what
//! each side is: a `jsonb` or `json` value, PostgreSQL's `unknown` (a string
//! literal or NULL, which takes the other side's type), or something else.

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable};

use crate::types::{json_kind, JsonKind};

/// What an operand of an operator is, as far as choosing PostgreSQL's
/// `json` or `jsonb` operator goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operand {
    Jsonb,
    Json,
    /// A string literal or NULL: PostgreSQL's `unknown`.
    Unknown,
    Other,
}

pub(crate) fn operand(expr: &Expr, schema: &DFSchema) -> Operand {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(_)
            | ScalarValue::Utf8View(_)
            | ScalarValue::LargeUtf8(_)
            | ScalarValue::Null,
            _,
        ) => Operand::Unknown,
        // Only these can be jsonb, and only these are asked for their field.
        // Other expressions (a `||` chain, above all) are not: asking walks
        // the whole subtree and formats its name, and at each node of a long
        // chain that would make planning cubic in its length. A cast is not
        // asked either: its field keeps the tag of what it casts.
        // These return one of their arguments, so they have their type.
        Expr::ScalarFunction(call) if matches!(call.name(), "coalesce" | "greatest" | "least") => {
            case_operand(call.args.iter(), schema)
        }
        Expr::ScalarFunction(call) if call.name() == "nullif" => {
            case_operand(call.args.iter().take(1), schema)
        }
        Expr::Column(_)
        | Expr::OuterReferenceColumn(..)
        | Expr::ScalarFunction(_)
        | Expr::ScalarSubquery(_) => match expr.to_field(schema) {
            Ok((_, field)) => match json_kind(&field) {
                Some(JsonKind::Jsonb) => Operand::Jsonb,
                Some(JsonKind::Json) => Operand::Json,
                None => Operand::Other,
            },
            Err(_) => Operand::Other,
        },
        Expr::Alias(alias) => operand(&alias.expr, schema),
        // A CASE has its branches' type: PostgreSQL resolves them to one,
        // and a string literal or NULL among them takes the others' type.
        Expr::Case(case) => case_operand(
            case.when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref()),
            schema,
        ),
        _ => Operand::Other,
    }
}

/// The type of a CASE whose results are `branches` (or of a function that
/// returns one of its arguments).
fn case_operand<'a>(branches: impl Iterator<Item = &'a Expr>, schema: &DFSchema) -> Operand {
    let mut kind = Operand::Unknown;
    for branch in branches {
        match (kind, operand(branch, schema)) {
            (_, Operand::Unknown) => {}
            (Operand::Unknown, other) => kind = other,
            (current, other) if current == other => {}
            _ => return Operand::Other,
        }
    }
    // A CASE of literals only is `text`.
    if kind == Operand::Unknown {
        Operand::Other
    } else {
        kind
    }
}
