//! Which table column each result column comes from, for RowDescription.
//!
//! PostgreSQL's RowDescription names, for a result column that is a plain
//! reference to a table's column, that table's OID and the column's number
//! (`pg_class.oid`, `pg_attribute.attnum`); for anything computed, 0 and 0.
//! Drivers read them: pgjdbc's `ResultSetMetaData.getTableName` and
//! `isNullable` look the pair up in `pg_attribute`, node-postgres exposes
//! them as `tableID` and `columnID`.
//!
//! [`annotate`] traces each output column of a query's logical plan down
//! through projections (a column or an alias of one), filters, sorts,
//! limits, subquery aliases, joins and GROUP BY keys to a table scan, and
//! records the relation's OID, as the session's `pg_class` gives it, and
//! the column's number in the result schema's field metadata
//! ([`TABLE_OID_METADATA`], [`COLUMN_NUMBER_METADATA`]), which the wire
//! layer sends. A table created from a result does not keep them
//! ([`crate::types::normalize_result_field`] drops all but the JSON marker).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan};

use crate::session::Session;

/// Field metadata: the OID of the relation a result column comes from.
pub const TABLE_OID_METADATA: &str = "freshet.table_oid";
/// Field metadata: the column's number in that relation (1-based).
pub const COLUMN_NUMBER_METADATA: &str = "freshet.column_number";

/// A table column a result column comes from: the relation as the plan
/// names it, and the column's 0-based position in its schema.
type Origin = (TableReference, usize);

/// Where output column `index` of `plan` comes from, if it is a table's
/// column passed through unchanged.
fn trace(plan: &LogicalPlan, index: usize) -> Option<Origin> {
    match plan {
        LogicalPlan::Projection(projection) => {
            let mut expr = projection.expr.get(index)?;
            while let Expr::Alias(alias) = expr {
                expr = alias.expr.as_ref();
            }
            let Expr::Column(column) = expr else {
                return None;
            };
            let below = projection.input.schema().index_of_column(column).ok()?;
            trace(&projection.input, below)
        }
        LogicalPlan::Filter(filter) => trace(&filter.input, index),
        LogicalPlan::Sort(sort) => trace(&sort.input, index),
        LogicalPlan::Limit(limit) => trace(&limit.input, index),
        LogicalPlan::SubqueryAlias(alias) => trace(&alias.input, index),
        LogicalPlan::Repartition(repartition) => trace(&repartition.input, index),
        LogicalPlan::Distinct(Distinct::All(input)) => trace(input, index),
        LogicalPlan::Aggregate(aggregate) => {
            let Expr::Column(column) = aggregate.group_expr.get(index)? else {
                return None;
            };
            let below = aggregate.input.schema().index_of_column(column).ok()?;
            trace(&aggregate.input, below)
        }
        LogicalPlan::Join(join) => {
            let left = join.left.schema().fields().len();
            match join.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                    if index < left {
                        trace(&join.left, index)
                    } else {
                        trace(&join.right, index - left)
                    }
                }
                JoinType::LeftSemi | JoinType::LeftAnti => trace(&join.left, index),
                JoinType::RightSemi | JoinType::RightAnti => trace(&join.right, index),
                _ => None,
            }
        }
        LogicalPlan::TableScan(scan) => {
            let column = match &scan.projection {
                Some(projection) => *projection.get(index)?,
                None => index,
            };
            Some((scan.table_name.clone(), column))
        }
        _ => None,
    }
}

/// `schema` (the output schema of `plan`) with each column's origin in its
/// metadata, where it has one the session's `pg_class` lists.
pub(crate) async fn annotate(
    session: &Session,
    plan: &LogicalPlan,
    schema: SchemaRef,
) -> SchemaRef {
    let origins: Vec<Option<Origin>> = (0..schema.fields().len()).map(|i| trace(plan, i)).collect();
    if origins.iter().all(Option::is_none) {
        return schema;
    }
    // The two names only: `SessionContext::state()` would clone the whole
    // session state on every query.
    let (catalog, default_schema) = {
        let state = session.ctx.state_ref();
        let state = state.read();
        let names = &state.config_options().catalog;
        (names.default_catalog.clone(), names.default_schema.clone())
    };
    let mut oids: HashMap<(String, String), Option<i32>> = HashMap::new();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for (field, origin) in schema.fields().iter().zip(origins) {
        let Some((relation, column)) = origin else {
            fields.push(field.as_ref().clone());
            continue;
        };
        let resolved = relation.resolve(&catalog, &default_schema);
        // System catalogs, and the session's virtual schemas (the rows an
        // INSERT … RETURNING wrote), are not relations pg_class lists.
        if *resolved.catalog != *catalog
            || matches!(&*resolved.schema, "pg_catalog" | "information_schema")
            || session
                .shared
                .virtual_schemas
                .read()
                .contains_key(&*resolved.schema)
        {
            fields.push(field.as_ref().clone());
            continue;
        }
        let key = (resolved.schema.to_string(), resolved.table.to_string());
        let oid = match oids.get(&key) {
            Some(oid) => *oid,
            None => {
                let oid = crate::pg_types::relation_oid(session, &key.0, &key.1).await;
                oids.insert(key, oid);
                oid
            }
        };
        let (Some(oid), Ok(number)) = (oid, i16::try_from(column + 1)) else {
            fields.push(field.as_ref().clone());
            continue;
        };
        let mut metadata = field.metadata().clone();
        metadata.insert(TABLE_OID_METADATA.to_string(), oid.to_string());
        metadata.insert(COLUMN_NUMBER_METADATA.to_string(), number.to_string());
        fields.push(field.as_ref().clone().with_metadata(metadata));
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
