//! `FETCH FIRST n ROWS ONLY`, the SQL standard's `LIMIT n`.
//!
//! PostgreSQL takes both spellings (`OFFSET m ROWS FETCH NEXT n ROWS ONLY`
//! is what Hibernate 6 and other ORMs generate); DataFusion refuses `FETCH`.
//! [`rewrite`] moves a `FETCH … ONLY` clause into the query's `LIMIT`,
//! keeping its `OFFSET`: `FETCH FIRST ROW ONLY` is `LIMIT 1`. `WITH TIES`,
//! which `LIMIT` cannot say, is [`crate::with_ties`]'s; `PERCENT`, which
//! PostgreSQL does not have either, is left for DataFusion to refuse.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, LimitClause, Query, Statement, Value, VisitMut, VisitorMut,
};

/// Rewrites every `FETCH … ONLY` of `statement` into a `LIMIT`.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut FetchAsLimit);
}

struct FetchAsLimit;

impl VisitorMut for FetchAsLimit {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Some(fetch) = &query.fetch else {
            return ControlFlow::Continue(());
        };
        if fetch.percent {
            return ControlFlow::Continue(());
        }
        let count = fetch
            .quantity
            .clone()
            .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
        let count = if fetch.with_ties {
            crate::with_ties::marked(count)
        } else {
            count
        };
        let offset = match query.limit_clause.take() {
            None => None,
            Some(LimitClause::LimitOffset {
                limit: None,
                offset,
                limit_by,
            }) if limit_by.is_empty() => offset,
            Some(other) => {
                // A LIMIT and a FETCH together: left as written, refused.
                query.limit_clause = Some(other);
                return ControlFlow::Continue(());
            }
        };
        query.fetch = None;
        query.limit_clause = Some(LimitClause::LimitOffset {
            limit: Some(count),
            offset,
            limit_by: Vec::new(),
        });
        ControlFlow::Continue(())
    }
}
