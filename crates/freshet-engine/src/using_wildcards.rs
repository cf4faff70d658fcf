//! `SELECT *` over joins with `USING` or `NATURAL`, in PostgreSQL's columns.
//!
//! PostgreSQL lists the merged join columns first, then the left input's
//! other columns, then the right input's. The merged column of an inner or
//! left join is the left input's.
//!
//! DataFusion expands the wildcard in the join's schema order instead (left,
//! then right), and keeps the merged column of the side whose name sorts
//! first. So `SELECT * FROM b LEFT JOIN a USING (k)` listed `k` after `b`'s
//! other columns, and took it from `a`: NULL in every row without a match,
//! where PostgreSQL shows `b.k`. A client reading by position got the wrong
//! column, and the value was wrong: a wrong answer, without an error.
//!
//! [`expand`] rewrites each such unqualified `*` into the column list
//! PostgreSQL's rule gives, as qualified column references. The columns of
//! each FROM item come from DataFusion's own plan of the statement as
//! written (its table scans and aliases), so tables, views, CTEs, derived
//! tables and table functions are all covered. A FROM tree it cannot read
//! that way (an alias reused with other columns, an aliased parenthesized
//! join) is refused with 0A000 rather than answered in DataFusion's order.
//! RIGHT and FULL joins with `USING` are refused before this runs (see
//! [`crate::unanswerable`]).

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr,
    Statement, TableFactor, TableWithJoins, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::names::ident;
use crate::EngineError;

/// Whether `statement` has an unqualified `*` over a join with `USING` or
/// `NATURAL`: only then is [`expand`] needed (and the statement planned
/// twice).
pub(crate) fn needed(statement: &Statement) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if selects(&query.body).into_iter().any(select_needs) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    statement.visit(&mut Finder).is_break()
}

/// Rewrites every unqualified `*` over a `USING`/`NATURAL` join in
/// `statement` into PostgreSQL's column list. `plan` is DataFusion's plan of
/// the statement as written, which names each FROM item's columns.
pub(crate) fn expand(statement: &mut Statement, plan: &LogicalPlan) -> Result<(), EngineError> {
    let relations = Relations::of(plan);
    struct Rewriter<'a> {
        relations: &'a Relations,
    }
    impl VisitorMut for Rewriter<'_> {
        type Break = EngineError;
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<EngineError> {
            for select in selects_mut(&mut query.body) {
                if !select_needs(select) {
                    continue;
                }
                if let Err(e) = rewrite_select(select, self.relations) {
                    return ControlFlow::Break(e);
                }
            }
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Rewriter {
        relations: &relations,
    }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The SELECTs of a query body, through set operations and parentheses
/// (nested queries elsewhere are visited on their own).
fn selects(body: &SetExpr) -> Vec<&Select> {
    match body {
        SetExpr::Select(select) => vec![select],
        SetExpr::Query(query) => selects(&query.body),
        SetExpr::SetOperation { left, right, .. } => {
            let mut found = selects(left);
            found.extend(selects(right));
            found
        }
        _ => Vec::new(),
    }
}

fn selects_mut(body: &mut SetExpr) -> Vec<&mut Select> {
    match body {
        SetExpr::Select(select) => vec![select],
        SetExpr::Query(query) => selects_mut(&mut query.body),
        SetExpr::SetOperation { left, right, .. } => {
            let mut found = selects_mut(left);
            found.extend(selects_mut(right));
            found
        }
        _ => Vec::new(),
    }
}

fn select_needs(select: &Select) -> bool {
    select
        .projection
        .iter()
        .any(|item| matches!(item, SelectItem::Wildcard(_)))
        && select.from.iter().any(has_merging_join)
}

fn has_merging_join(from: &TableWithJoins) -> bool {
    let nested = |factor: &TableFactor| match factor {
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => has_merging_join(table_with_joins),
        _ => false,
    };
    nested(&from.relation)
        || from.joins.iter().any(|join| {
            nested(&join.relation)
                || matches!(
                    constraint(&join.join_operator),
                    Some(JoinConstraint::Using(_) | JoinConstraint::Natural)
                )
        })
}

fn constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

/// Each FROM item's columns, keyed by the name it is qualified with, as
/// DataFusion planned them. `None` for a name planned with two different
/// column lists (an alias reused in two scopes).
struct Relations(HashMap<String, Option<(TableReference, Vec<String>)>>);

impl Relations {
    fn of(plan: &LogicalPlan) -> Self {
        let mut found: HashMap<String, Option<(TableReference, Vec<String>)>> = HashMap::new();
        let _ = plan.apply_with_subqueries(|node| {
            let qualifier = match node {
                LogicalPlan::TableScan(scan) => Some(scan.table_name.clone()),
                LogicalPlan::SubqueryAlias(alias) => Some(alias.alias.clone()),
                _ => None,
            };
            if let Some(qualifier) = qualifier {
                let columns: Vec<String> = node
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let key = qualifier.table().to_string();
                match found.get(&key) {
                    None => {
                        found.insert(key, Some((qualifier, columns)));
                    }
                    Some(Some((_, seen))) if *seen == columns => {}
                    Some(_) => {
                        found.insert(key, None);
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        Relations(found)
    }

    fn columns(&self, name: &str) -> Result<Vec<Column>, EngineError> {
        match self.0.get(name) {
            Some(Some((qualifier, columns))) => Ok(columns
                .iter()
                .map(|column| Column {
                    name: column.clone(),
                    expr: SqlExpr::CompoundIdentifier(
                        qualifier
                            .to_vec()
                            .into_iter()
                            .chain([column.clone()])
                            .map(|part| Ident::with_quote('"', part))
                            .collect(),
                    ),
                })
                .collect()),
            _ => Err(unsupported(&format!(
                "the columns of \"{name}\" could not be told apart"
            ))),
        }
    }
}

/// One output column of a FROM item: its name, and the qualified reference
/// that reads it.
#[derive(Clone)]
struct Column {
    name: String,
    expr: SqlExpr,
}

fn unsupported(why: &str) -> EngineError {
    EngineError::new(
        "0A000",
        format!("SELECT * over a join with USING or NATURAL is not supported here ({why}); list the columns"),
    )
}

fn rewrite_select(select: &mut Select, relations: &Relations) -> Result<(), EngineError> {
    let mut columns = Vec::new();
    for from in &select.from {
        columns.extend(join_columns(from, relations)?);
    }
    let mut projection = Vec::with_capacity(select.projection.len() + columns.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(options) => {
                let plain = options.opt_ilike.is_none()
                    && options.opt_exclude.is_none()
                    && options.opt_except.is_none()
                    && options.opt_replace.is_none()
                    && options.opt_rename.is_none();
                if !plain {
                    return Err(unsupported("the wildcard has options"));
                }
                projection.extend(columns.iter().map(|c| SelectItem::ExprWithAlias {
                    expr: c.expr.clone(),
                    alias: Ident::with_quote('"', &c.name),
                }));
            }
            other => projection.push(other),
        }
    }
    select.projection = projection;
    Ok(())
}

fn join_columns(from: &TableWithJoins, relations: &Relations) -> Result<Vec<Column>, EngineError> {
    let mut left = factor_columns(&from.relation, relations)?;
    for join in &from.joins {
        let right = factor_columns(&join.relation, relations)?;
        let merged: Vec<String> = match constraint(&join.join_operator) {
            Some(JoinConstraint::Using(names)) => names
                .iter()
                .map(|name| {
                    crate::names::parts(name)
                        .pop()
                        .ok_or_else(|| unsupported("an empty USING name"))
                })
                .collect::<Result<_, _>>()?,
            Some(JoinConstraint::Natural) => {
                let mut common: Vec<String> = Vec::new();
                for c in &left {
                    if right.iter().any(|r| r.name == c.name) && !common.contains(&c.name) {
                        common.push(c.name.clone());
                    }
                }
                common
            }
            Some(_) => {
                left.extend(right);
                continue;
            }
            None => return Err(unsupported("a join of another kind")),
        };
        let from_right = matches!(
            join.join_operator,
            JoinOperator::Right(_) | JoinOperator::RightOuter(_)
        );
        if matches!(join.join_operator, JoinOperator::FullOuter(_)) {
            return Err(unsupported("a FULL join"));
        }
        let mut out = Vec::with_capacity(left.len() + right.len());
        for name in &merged {
            let pick = |side: &[Column]| -> Result<Column, EngineError> {
                let mut matching = side.iter().filter(|c| &c.name == name);
                match (matching.next(), matching.next()) {
                    (Some(c), None) => Ok(c.clone()),
                    _ => Err(EngineError::new(
                        "42702",
                        format!("common column name \"{name}\" appears more than once in one side of the join, or not at all"),
                    )),
                }
            };
            let (l, r) = (pick(&left)?, pick(&right)?);
            let mut column = if from_right { r } else { l };
            column.name = name.clone();
            out.push(column);
        }
        out.extend(left.into_iter().filter(|c| !merged.contains(&c.name)));
        out.extend(right.into_iter().filter(|c| !merged.contains(&c.name)));
        left = out;
    }
    Ok(left)
}

fn factor_columns(factor: &TableFactor, relations: &Relations) -> Result<Vec<Column>, EngineError> {
    let alias = |alias: &Option<datafusion::sql::sqlparser::ast::TableAlias>| {
        alias.as_ref().map(|a| ident(&a.name))
    };
    let name = match factor {
        TableFactor::Table { name, alias: a, .. } => match alias(a) {
            Some(a) => a,
            None => crate::names::parts(name)
                .pop()
                .ok_or_else(|| unsupported("an empty table name"))?,
        },
        TableFactor::NestedJoin {
            table_with_joins,
            alias: None,
        } => return join_columns(table_with_joins, relations),
        TableFactor::Derived { alias: a, .. }
        | TableFactor::Function { alias: a, .. }
        | TableFactor::TableFunction { alias: a, .. }
        | TableFactor::UNNEST { alias: a, .. } => {
            alias(a).ok_or_else(|| unsupported("a FROM item without an alias"))?
        }
        _ => return Err(unsupported("a FROM item of this kind")),
    };
    relations.columns(&name)
}
