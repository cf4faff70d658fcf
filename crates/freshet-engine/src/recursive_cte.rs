//! `WITH RECURSIVE` whose recursive term computes its columns.
//!
//! DataFusion runs a recursive query only when each column of the
//! recursive term has the same field metadata as the non-recursive term's.
//! Freshet types columns through field metadata (`text` as opposed to
//! `varchar(n)`, `jsonb`), which a computed expression does not carry, so
//! an ordinary hierarchy walk failed to plan:
//!
//! ```sql
//! WITH RECURSIVE t(id, path) AS (
//!     SELECT id, name FROM e WHERE mgr IS NULL
//!     UNION ALL
//!     SELECT e.id, t.path || '/' || e.name FROM e JOIN t ON e.mgr = t.id)
//! SELECT * FROM t
//! ```
//!
//! PostgreSQL gives the recursive term's columns the non-recursive term's
//! types. [`RecursiveTermTypes`], an `AnalyzerRule`, does the same: a column
//! of the recursive term whose metadata differs is passed through
//! `freshet_typed_as`, which returns its argument with the non-recursive
//! term's metadata. Values are untouched; data types already agree
//! (DataFusion coerces them).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, RecursiveQuery, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(RecursiveTermTypes));
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct RecursiveTermTypes;

impl AnalyzerRule for RecursiveTermTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::RecursiveQuery(query) => align(query),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_recursive_term_types"
    }
}

fn align(query: RecursiveQuery) -> DfResult<Transformed<LogicalPlan>> {
    let expected = query.static_term.schema();
    let recursive = query.recursive_term.schema();
    let differs = |(expected, got): (&FieldRef, &FieldRef)| expected.metadata() != got.metadata();
    if expected.fields().len() != recursive.fields().len()
        || !expected
            .fields()
            .iter()
            .zip(recursive.fields())
            .any(differs)
    {
        return Ok(Transformed::no(LogicalPlan::RecursiveQuery(query)));
    }
    let columns: Vec<Expr> = recursive
        .iter()
        .zip(expected.fields())
        .map(|((qualifier, field), wanted)| {
            let column = Expr::Column(Column::from((qualifier, field)));
            if field.metadata() == wanted.metadata() {
                column
            } else {
                let typed = ScalarUDF::new_from_impl(TypedAs {
                    signature: Signature::any(1, Volatility::Immutable),
                    metadata: wanted
                        .metadata()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                });
                Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(typed), vec![column]))
                    .alias(field.name())
            }
        })
        .collect();
    let recursive_term = LogicalPlanBuilder::from(query.recursive_term.as_ref().clone())
        .project(columns)?
        .build()?;
    Ok(Transformed::yes(LogicalPlan::RecursiveQuery(
        RecursiveQuery {
            recursive_term: Arc::new(recursive_term),
            ..query
        },
    )))
}

/// `freshet_typed_as(x)`: `x`, with the field metadata it was made with.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypedAs {
    signature: Signature,
    metadata: BTreeMap<String, String>,
}

impl ScalarUDFImpl for TypedAs {
    fn name(&self) -> &str {
        "freshet_typed_as"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        args.first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("freshet_typed_as takes one argument".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let [arg] = args.arg_fields else {
            return Err(DataFusionError::Internal(
                "freshet_typed_as takes one argument".into(),
            ));
        };
        Ok(Arc::new(
            Field::new(self.name(), arg.data_type().clone(), arg.is_nullable())
                .with_metadata(self.metadata.clone().into_iter().collect()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "freshet_typed_as takes one argument".into(),
            ));
        };
        Ok(value.clone())
    }
}
