//! Postgres' result type for UNION and CASE branches of different types
//! (PostgreSQL manual, "UNION, CASE, and Related Constructs"), and its
//! operand types for comparisons of `double precision` or `real` with
//! `numeric`.
//!
//! DataFusion brings branches to a common type too, but by its own rules,
//! which differ from Postgres' where users notice: `numeric` with `double
//! precision` becomes a decimal (Postgres: `double precision`, its preferred
//! numeric type, to which numeric converts implicitly), and `date` with
//! `timestamp` becomes a nanosecond timestamp without the time zone of a
//! `timestamptz` branch. A comparison of a float with a decimal is made in
//! the decimal type by DataFusion, which silently rounds the float to the
//! decimal's scale (`1e-20::float8 > 0.0` was false) and fails on NaN,
//! infinities and large values; Postgres compares them as `double
//! precision`. [`PostgresBranchTypes`] runs just before DataFusion's type
//! coercion and casts the branches, or the numeric operands, to Postgres'
//! type where the two disagree; DataFusion's coercion then has nothing to
//! change.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Between, BinaryExpr, Case, Cast, InList, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator, Union, Values,
};
use datafusion::optimizer::AnalyzerRule;

/// Analyzer rule: Postgres' branch types for UNION and CASE (module docs).
#[derive(Debug, Default)]
pub(crate) struct PostgresBranchTypes;

impl AnalyzerRule for PostgresBranchTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let plan = resolve_values_lists(plan)?;
        plan.transform_up_with_subqueries(|plan| {
            let plan = match plan {
                LogicalPlan::Union(union) => resolve_union(union)?,
                other => Transformed::no(other),
            };
            plan.transform_data(resolve_case_branches)
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_postgres_branch_types"
    }
}

/// The analyzer's rules with [`PostgresBranchTypes`], Freshet's aggregate
/// results and the check of `jsonb` comparisons just before DataFusion's
/// type coercion.
pub(crate) fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    let at = rules
        .iter()
        .position(|rule| rule.name() == "type_coercion")
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(PostgresBranchTypes));
    rules.insert(
        at + 1,
        Arc::new(crate::aggregate_results::PostgresAggregateResults),
    );
    rules.insert(
        at + 2,
        Arc::new(crate::jsonb_order::JsonbComparisonOperands),
    );
    rules
}

/// The type Postgres gives branches of these types, where it differs from
/// DataFusion's choice; `None` to leave the choice to DataFusion.
pub(crate) fn postgres_common_type(types: &[DataType]) -> Option<DataType> {
    let known: Vec<&DataType> = types.iter().filter(|t| !t.is_null()).collect();
    if known.windows(2).all(|pair| pair[0] == pair[1]) {
        return None;
    }
    if known.iter().all(|t| t.is_numeric()) {
        // numeric and the integers convert implicitly to real and double
        // precision; double precision is the category's preferred type.
        let float = if known.contains(&&DataType::Float64) {
            DataType::Float64
        } else if known.contains(&&DataType::Float32) {
            DataType::Float32
        } else {
            return None;
        };
        return known.iter().any(|t| t.is_decimal()).then_some(float);
    }
    let is_temporal = |t: &&DataType| matches!(t, DataType::Date32 | DataType::Timestamp(_, _));
    if known.iter().all(is_temporal) && known.contains(&&DataType::Date32) {
        // date converts implicitly to timestamp and timestamptz; a zoned
        // branch makes the result timestamptz (the category's preferred type).
        let mut unit = None;
        let mut zone = None;
        for t in &known {
            if let DataType::Timestamp(u, z) = t {
                unit.get_or_insert(*u);
                if z.is_some() && zone.is_none() {
                    zone = z.clone();
                }
            }
        }
        return Some(DataType::Timestamp(
            unit.unwrap_or(TimeUnit::Microsecond),
            zone,
        ));
    }
    None
}

/// Gives each `VALUES` list column mixing `double precision` (or `real`)
/// with `numeric` Postgres' type, `double precision`, except the list an
/// INSERT writes, whose columns take the target table's types.
///
/// DataFusion resolves a VALUES column's type while planning the SQL, and
/// casts every row's value to it, so a float among numerics arrives here
/// already rounded to a decimal: `VALUES (1e-20::float8), (0.0)` held two
/// zeros. The value each row had before that cast is recovered by peeling
/// one cast to the column type, but only where DataFusion's own resolution
/// of the peeled types gives back the column type: a value the user cast to
/// `numeric` themselves then keeps its cast (`VALUES (x::float8::numeric),
/// (0.5)` stays numeric, as in Postgres).
fn resolve_values_lists(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    if let LogicalPlan::Dml(dml) = &plan {
        if matches!(dml.op, datafusion::logical_expr::WriteOp::Insert(_)) {
            return plan
                .map_children(|input| insert_source(input).map(Transformed::yes))
                .data()?
                .recompute_schema();
        }
    }
    let mut changed = false;
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::Values(values) => {
            let resolved = resolve_values(values)?;
            changed |= resolved.transformed;
            Ok(resolved)
        }
        other if changed => Ok(Transformed::yes(other.recompute_schema()?)),
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// An INSERT's source: its VALUES list (under projections and aliases)
/// is left as planned for the target's types; anything else is resolved.
fn insert_source(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    match plan {
        LogicalPlan::Values(_) => Ok(plan),
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => plan
            .map_children(|input| insert_source(input).map(Transformed::yes))
            .data()?
            .recompute_schema(),
        other => resolve_values_lists(other),
    }
}

fn resolve_values(values: Values) -> DfResult<Transformed<LogicalPlan>> {
    let empty = DFSchema::empty();
    let columns = values.schema.fields().len();
    let mut targets: Vec<Option<DataType>> = vec![None; columns];
    for (j, target) in targets.iter_mut().enumerate() {
        let column_type = values.schema.field(j).data_type();
        if !column_type.is_decimal() {
            continue;
        }
        let mut peeled = Vec::with_capacity(values.values.len());
        for row in &values.values {
            let value = match &row[j] {
                Expr::Cast(cast) if cast.field.data_type() == column_type => cast.expr.as_ref(),
                other => other,
            };
            let Ok(t) = value.get_type(&empty) else {
                peeled.clear();
                break;
            };
            peeled.push(t);
        }
        if peeled.is_empty()
            || !float_with_decimal(&peeled)
            || type_union_resolution(&peeled).as_ref() != Some(column_type)
        {
            continue;
        }
        *target = postgres_common_type(&peeled);
    }
    if targets.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Values(values)));
    }
    let column_types: Vec<&DataType> = values
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    let rows = values
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(targets.iter().zip(&column_types))
                .map(|(value, (target, column_type))| match (value, target) {
                    (Expr::Cast(cast), Some(t)) if cast.field.data_type() == *column_type => {
                        Expr::Cast(Cast::new(cast.expr, t.clone()))
                    }
                    (value, Some(t)) => Expr::Cast(Cast::new(Box::new(value), t.clone())),
                    (value, None) => value,
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let fields: Vec<_> = values
        .schema
        .iter()
        .zip(&targets)
        .map(|((qualifier, field), target)| {
            let field = match target {
                Some(t) => Arc::new(field.as_ref().clone().with_data_type(t.clone())),
                None => field.clone(),
            };
            (qualifier.cloned(), field)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    })))
}

/// Casts the inputs of a UNION whose column types Postgres would resolve
/// differently.
fn resolve_union(union: Union) -> DfResult<Transformed<LogicalPlan>> {
    let Some(first) = union.inputs.first() else {
        return Ok(Transformed::no(LogicalPlan::Union(union)));
    };
    let columns = first.schema().fields().len();
    if union
        .inputs
        .iter()
        .any(|input| input.schema().fields().len() != columns)
    {
        return Ok(Transformed::no(LogicalPlan::Union(union)));
    }
    let targets: Vec<Option<DataType>> = (0..columns)
        .map(|i| {
            let types: Vec<DataType> = union
                .inputs
                .iter()
                .map(|input| input.schema().field(i).data_type().clone())
                .collect();
            postgres_common_type(&types)
        })
        .collect();
    if targets.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Union(union)));
    }
    let mut inputs = Vec::with_capacity(union.inputs.len());
    for input in union.inputs {
        let schema = input.schema().clone();
        let needs_cast = targets.iter().enumerate().any(|(i, target)| {
            target
                .as_ref()
                .is_some_and(|t| schema.field(i).data_type() != t)
        });
        if !needs_cast {
            inputs.push(input);
            continue;
        }
        let exprs: Vec<Expr> = schema
            .iter()
            .zip(&targets)
            .map(|((qualifier, field), target)| {
                let column = Expr::Column((qualifier, field).into());
                match target {
                    Some(t) if field.data_type() != t => {
                        Expr::Cast(Cast::new(Box::new(column), t.clone()))
                            .alias_qualified(qualifier.cloned(), field.name())
                    }
                    _ => column,
                }
            })
            .collect();
        let projected = LogicalPlanBuilder::from(Arc::unwrap_or_clone(input))
            .project(exprs)?
            .build()?;
        inputs.push(Arc::new(projected));
    }
    Ok(Transformed::yes(LogicalPlan::Union(
        Union::try_new_with_loose_types(inputs)?,
    )))
}

/// Casts the THEN/ELSE branches of every CASE, and the numeric operands of
/// every comparison of a float with a decimal, in the node's expressions.
fn resolve_case_branches(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    crate::plan_rewrite::rewrite_node(plan, |e, schema| match e {
        Expr::Case(_) => resolve_case(e, schema),
        Expr::BinaryExpr(_) => resolve_date_arithmetic(e, schema)?
            .transform_data(|e| resolve_comparison(e, schema))?
            .transform_data(|e| resolve_real_arithmetic(e, schema)),
        Expr::Between(_) | Expr::InList(_) => resolve_comparison(e, schema),
        Expr::ScalarFunction(_) => resolve_function_arguments(e, schema),
        Expr::InSubquery(_) => resolve_in_subquery(e, schema),
        other => Ok(Transformed::no(other)),
    })
}

/// Whether `op` compares its operands.
pub(crate) fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// Whether values of these types are compared as `double precision`: a
/// float among decimals (and the integers, which convert to either).
fn float_with_decimal(types: &[DataType]) -> bool {
    types
        .iter()
        .any(|t| matches!(t, DataType::Float32 | DataType::Float64))
        && types.iter().any(DataType::is_decimal)
        && types.iter().all(|t| t.is_numeric() || t.is_null())
}

/// `e` cast to `double precision` if its type `t` is a decimal.
fn decimal_as_float(e: Expr, t: &DataType) -> Expr {
    if t.is_decimal() {
        Expr::Cast(Cast::new(Box::new(e), DataType::Float64))
    } else {
        e
    }
}

/// Functions whose arguments take one common type, as CASE branches do:
/// a float with decimals makes it `double precision`.
const COMMON_TYPE_FUNCTIONS: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "make_array",
    "nvl",
    "ifnull",
];

fn resolve_function_arguments(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::ScalarFunction(call) = expr else {
        return Ok(Transformed::no(expr));
    };
    if !COMMON_TYPE_FUNCTIONS.contains(&call.func.name()) {
        return Ok(Transformed::no(Expr::ScalarFunction(call)));
    }
    let Ok(types) = call
        .args
        .iter()
        .map(|a| a.get_type(schema))
        .collect::<DfResult<Vec<_>>>()
    else {
        return Ok(Transformed::no(Expr::ScalarFunction(call)));
    };
    if !float_with_decimal(&types) {
        return Ok(Transformed::no(Expr::ScalarFunction(call)));
    }
    let args = call
        .args
        .into_iter()
        .zip(&types)
        .map(|(a, t)| decimal_as_float(a, t))
        .collect();
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(call.func, args),
    )))
}

/// `x IN (SELECT …)` with a float on one side and a decimal on the other
/// compares them as `double precision`.
fn resolve_in_subquery(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::InSubquery(mut in_subquery) = expr else {
        return Ok(Transformed::no(expr));
    };
    let fields = in_subquery.subquery.subquery.schema().fields();
    let (Ok(left), [field]) = (in_subquery.expr.get_type(schema), fields.as_ref()) else {
        return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
    };
    let right = field.data_type().clone();
    if !float_with_decimal(&[left.clone(), right.clone()]) {
        return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
    }
    if right.is_decimal() {
        let plan = in_subquery.subquery.subquery.as_ref().clone();
        let (qualifier, field) = plan.schema().qualified_field(0);
        let column = Expr::Column((qualifier, field).into());
        let cast =
            decimal_as_float(column, &right).alias_qualified(qualifier.cloned(), field.name());
        in_subquery.subquery.subquery =
            Arc::new(LogicalPlanBuilder::from(plan).project([cast])?.build()?);
    }
    in_subquery.expr = Box::new(decimal_as_float(*in_subquery.expr, &left));
    Ok(Transformed::yes(Expr::InSubquery(in_subquery)))
}

/// Casts the decimal operands of a comparison (`=`, `<`, …, BETWEEN, IN)
/// that also has a float operand to `double precision`, the type Postgres
/// compares them in: numeric converts implicitly to float8, not the reverse.
/// `date ± interval` is a `timestamp` in Postgres (`date '2024-01-01' +
/// interval '90 minutes'` is 01:30 that day); DataFusion keeps a date and
/// drops the time. The date is cast to `timestamp` first.
fn resolve_date_arithmetic(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::BinaryExpr(b) = expr else {
        return Ok(Transformed::no(expr));
    };
    if !matches!(b.op, Operator::Plus | Operator::Minus) {
        return Ok(Transformed::no(Expr::BinaryExpr(b)));
    }
    let (Ok(left), Ok(right)) = (b.left.get_type(schema), b.right.get_type(schema)) else {
        return Ok(Transformed::no(Expr::BinaryExpr(b)));
    };
    let is_interval = |t: &DataType| matches!(t, DataType::Interval(_));
    let as_timestamp = |e: Box<Expr>| {
        Box::new(Expr::Cast(Cast::new(
            e,
            DataType::Timestamp(TimeUnit::Microsecond, None),
        )))
    };
    Ok(match (&left, &right) {
        (DataType::Date32, r) if is_interval(r) => Transformed::yes(Expr::BinaryExpr(
            BinaryExpr::new(as_timestamp(b.left), b.op, b.right),
        )),
        (l, DataType::Date32) if is_interval(l) && b.op == Operator::Plus => Transformed::yes(
            Expr::BinaryExpr(BinaryExpr::new(b.left, b.op, as_timestamp(b.right))),
        ),
        _ => Transformed::no(Expr::BinaryExpr(b)),
    })
}

/// `real` with an integer or a `numeric` in `+ - * /` is computed in
/// `double precision` by PostgreSQL (it has no operator for the pair, and
/// picks the `float48` ones): `1.5::real / 3` is 0.5 as a double, and
/// `v::real / 3` keeps a double's digits. DataFusion computes in `real` and
/// loses them. Both operands are cast to `double precision`.
fn resolve_real_arithmetic(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::BinaryExpr(b) = expr else {
        return Ok(Transformed::no(expr));
    };
    let arithmetic = matches!(
        b.op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide
    );
    let exact = |t: &DataType| t.is_integer() || t.is_decimal();
    let mixed = arithmetic
        && match (b.left.get_type(schema), b.right.get_type(schema)) {
            (Ok(DataType::Float32), Ok(other)) | (Ok(other), Ok(DataType::Float32)) => {
                exact(&other)
            }
            _ => false,
        };
    if !mixed {
        return Ok(Transformed::no(Expr::BinaryExpr(b)));
    }
    let double = |e: Box<Expr>| Box::new(Expr::Cast(Cast::new(e, DataType::Float64)));
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
        double(b.left),
        b.op,
        double(b.right),
    ))))
}

fn resolve_comparison(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let operands: Vec<&Expr> = match &expr {
        Expr::BinaryExpr(b) if is_comparison(&b.op) => vec![&b.left, &b.right],
        Expr::Between(b) => vec![&b.expr, &b.low, &b.high],
        Expr::InList(i) => std::iter::once(i.expr.as_ref()).chain(&i.list).collect(),
        _ => return Ok(Transformed::no(expr)),
    };
    let mut types = Vec::with_capacity(operands.len());
    for operand in operands {
        match operand.get_type(schema) {
            Ok(t) => types.push(t),
            Err(_) => return Ok(Transformed::no(expr)),
        }
    }
    if !float_with_decimal(&types) {
        return Ok(Transformed::no(expr));
    }
    let mut types = types.into_iter();
    let mut cast = |e: Box<Expr>| -> Box<Expr> {
        if types.next().is_some_and(|t| t.is_decimal()) {
            Box::new(Expr::Cast(Cast::new(e, DataType::Float64)))
        } else {
            e
        }
    };
    Ok(Transformed::yes(match expr {
        Expr::BinaryExpr(b) => Expr::BinaryExpr(BinaryExpr::new(cast(b.left), b.op, cast(b.right))),
        Expr::Between(b) => Expr::Between(Between::new(
            cast(b.expr),
            b.negated,
            cast(b.low),
            cast(b.high),
        )),
        Expr::InList(i) => {
            let target = cast(i.expr);
            let list = i.list.into_iter().map(|e| *cast(Box::new(e))).collect();
            Expr::InList(InList::new(target, list, i.negated))
        }
        other => other,
    }))
}

fn resolve_case(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::Case(case) = expr else {
        return Ok(Transformed::no(expr));
    };
    let (case, operand_cast) = resolve_case_operand(case, schema);
    let results = resolve_case_results(case, schema)?;
    Ok(if operand_cast {
        Transformed::yes(results.data)
    } else {
        results
    })
}

/// `CASE x WHEN v …` compares `x` with each `v`: as `double precision`
/// when a float meets a decimal. Returns whether it cast anything.
fn resolve_case_operand(mut case: Case, schema: &DFSchema) -> (Case, bool) {
    let Some(operand) = &case.expr else {
        return (case, false);
    };
    let types: Option<Vec<DataType>> = std::iter::once(operand.as_ref())
        .chain(case.when_then_expr.iter().map(|(when, _)| when.as_ref()))
        .map(|e| e.get_type(schema).ok())
        .collect();
    let Some(types) = types else {
        return (case, false);
    };
    if !float_with_decimal(&types) {
        return (case, false);
    }
    let mut types = types.into_iter();
    let mut cast = |e: Box<Expr>| match types.next() {
        Some(t) => Box::new(decimal_as_float(*e, &t)),
        None => e,
    };
    case.expr = case.expr.map(&mut cast);
    case.when_then_expr = case
        .when_then_expr
        .into_iter()
        .map(|(when, then)| (cast(when), then))
        .collect();
    (case, true)
}

/// Casts the THEN/ELSE results of `case` to Postgres' common type.
fn resolve_case_results(case: Case, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let mut types = Vec::with_capacity(case.when_then_expr.len() + 1);
    for (_, then) in &case.when_then_expr {
        match then.get_type(schema) {
            Ok(t) => types.push(t),
            Err(_) => return Ok(Transformed::no(Expr::Case(case))),
        }
    }
    if let Some(otherwise) = &case.else_expr {
        match otherwise.get_type(schema) {
            Ok(t) => types.push(t),
            Err(_) => return Ok(Transformed::no(Expr::Case(case))),
        }
    }
    let Some(target) = postgres_common_type(&types) else {
        return Ok(Transformed::no(Expr::Case(case)));
    };
    let cast = |e: Box<Expr>, t: &DataType| -> Box<Expr> {
        if t == &target || t.is_null() {
            e
        } else {
            Box::new(Expr::Cast(Cast::new(e, target.clone())))
        }
    };
    let mut branch_types = types.iter();
    let when_then_expr = case
        .when_then_expr
        .into_iter()
        .map(|(when, then)| {
            let t = branch_types.next().cloned().unwrap_or(DataType::Null);
            (when, cast(then, &t))
        })
        .collect();
    let else_expr = case.else_expr.map(|e| {
        let t = branch_types.next().cloned().unwrap_or(DataType::Null);
        cast(e, &t)
    });
    Ok(Transformed::yes(Expr::Case(Case {
        expr: case.expr,
        when_then_expr,
        else_expr,
    })))
}
