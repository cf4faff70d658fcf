//! `INTERVAL '…'` literals read as PostgreSQL reads interval text.
//!
//! DataFusion parses an interval literal with Arrow's parser, which refuses
//! some of PostgreSQL's spellings: a clock part after units (`interval '1
//! year 2 months 3 days 04:05:06.7'`), a `+` sign (`'-1 day +2 hours'`),
//! `@ … ago`. A cast of the same text (`'…'::interval`) already reads them
//! through [`crate::pg_compat::parse_interval`].
//!
//! [`rewrite`] gives each plain interval literal whose text Arrow refuses
//! and PostgreSQL's reading accepts the same value in a spelling Arrow
//! reads (`N months N days N nanoseconds`). It stays a literal, so it is
//! still accepted where only a constant is (a window frame's `RANGE`
//! offset). Text neither reads is left for DataFusion's error.

use std::ops::ControlFlow;

use datafusion::arrow::compute::kernels::cast_utils::parse_interval_month_day_nano;
use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, Interval, Statement, Value};

/// Rewrites the interval literals of `statement` (see the module docs).
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Interval(Interval {
            value,
            leading_field: None,
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        }) = expr
        {
            if let Expr::Value(literal) = value.as_mut() {
                if let Value::SingleQuotedString(text) = &mut literal.value {
                    if let Some(readable) = arrow_spelling(text) {
                        *text = readable;
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The text in a spelling Arrow reads, when Arrow refuses it and
/// PostgreSQL's reading accepts it.
fn arrow_spelling(text: &str) -> Option<String> {
    if parse_interval_month_day_nano(text).is_ok() {
        return None;
    }
    let value = crate::pg_compat::parse_interval(text)?;
    Some(format!(
        "{} months {} days {} nanoseconds",
        value.months, value.days, value.nanoseconds
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spellings_get_an_arrow_spelling_of_the_same_value() {
        for text in [
            "1 year 2 months 3 days 04:05:06.7",
            "-1 day +2 hours",
            "@ 3 days ago",
        ] {
            let spelled = arrow_spelling(text).expect(text);
            assert_eq!(
                parse_interval_month_day_nano(&spelled).ok(),
                crate::pg_compat::parse_interval(text),
                "{text}"
            );
        }
        assert_eq!(arrow_spelling("1 day"), None);
        assert_eq!(arrow_spelling("not an interval"), None);
    }
}
