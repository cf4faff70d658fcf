//! SQL that DataFusion would plan and answer differently from PostgreSQL,
//! refused with 0A000 (feature_not_supported) before planning.
//!
//! A wrong answer without an error is worse than no answer, so each of
//! these is refused until Freshet computes it as PostgreSQL does:
//!
//! * `RIGHT` and `FULL` joins with `USING` or `NATURAL`. DataFusion takes the
//!   merged join column from the left input, so a row present only on the
//!   right had NULL in it (PostgreSQL: `COALESCE(left.k, right.k)`). Written
//!   with `ON` they are answered.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    JoinConstraint, JoinOperator, Query, SetExpr, Statement, TableFactor, TableWithJoins, Visit,
    Visitor,
};

use crate::EngineError;

/// Refuses a statement with any construct in the module docs, anywhere in
/// it (subqueries, CTEs, views' and dynamic tables' queries included).
pub(crate) fn refuse_unanswerable(statement: &Statement) -> Result<(), EngineError> {
    match statement.visit(&mut Finder) {
        ControlFlow::Break(message) => Err(EngineError::new("0A000", message)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Finder;

impl Visitor for Finder {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        set_expression(&query.body)
    }
}

fn set_expression(body: &SetExpr) -> ControlFlow<String> {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            set_expression(left)?;
            set_expression(right)
        }
        SetExpr::Select(select) => select.from.iter().try_for_each(joins),
        SetExpr::Query(query) => set_expression(&query.body),
        _ => ControlFlow::Continue(()),
    }
}

fn joins(from: &TableWithJoins) -> ControlFlow<String> {
    nested(&from.relation)?;
    for join in &from.joins {
        nested(&join.relation)?;
        let (kind, constraint) = match &join.join_operator {
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT", c),
            JoinOperator::FullOuter(c) => ("FULL", c),
            _ => continue,
        };
        let form = match constraint {
            JoinConstraint::Using(_) => "USING",
            JoinConstraint::Natural => "NATURAL",
            _ => continue,
        };
        return ControlFlow::Break(format!(
            "{kind} JOIN with {form} is not supported yet (the merged column would not be \
             taken from both sides); write ON a.k = b.k and select COALESCE(a.k, b.k)"
        ));
    }
    ControlFlow::Continue(())
}

fn nested(relation: &TableFactor) -> ControlFlow<String> {
    match relation {
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => joins(table_with_joins),
        _ => ControlFlow::Continue(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<(), EngineError> {
        let statements = freshet_sql::parse_sql(sql).expect("parses");
        let Some(freshet_sql::FreshetStatement::Standard(statement)) =
            statements.into_iter().next()
        else {
            panic!("not a standard statement: {sql}");
        };
        refuse_unanswerable(&statement)
    }

    #[test]
    fn refuses_what_would_be_answered_wrong() {
        for sql in [
            "SELECT * FROM (SELECT 1 UNION (SELECT k FROM a FULL JOIN b USING (k))) s",
            "WITH w AS (SELECT * FROM a NATURAL RIGHT JOIN b) SELECT * FROM w",
            "SELECT k FROM a FULL JOIN b USING (k)",
            "SELECT k FROM a RIGHT JOIN b USING (k)",
            "SELECT * FROM a NATURAL FULL JOIN b",
            "SELECT * FROM a JOIN (b RIGHT OUTER JOIN c USING (k)) ON true",
            "INSERT INTO t SELECT k FROM a FULL JOIN b USING (k)",
        ] {
            let err = check(sql).expect_err(sql);
            assert_eq!(err.sqlstate(), "0A000", "{sql}");
        }
    }

    #[test]
    fn answers_what_it_can() {
        for sql in [
            "SELECT 1 EXCEPT SELECT 2",
            "SELECT 1 INTERSECT SELECT 2",
            "SELECT 1 EXCEPT ALL SELECT 2",
            "SELECT 1 INTERSECT ALL SELECT 2",
            "SELECT 1 UNION ALL SELECT 2",
            "SELECT k FROM a LEFT JOIN b USING (k)",
            "SELECT k FROM a JOIN b USING (k)",
            "SELECT * FROM a NATURAL JOIN b",
            "SELECT * FROM a FULL JOIN b ON a.k = b.k",
        ] {
            check(sql).expect(sql);
        }
    }
}
