//! INSERT, UPDATE, DELETE, TRUNCATE and COPY.
//!
//! Writes go into the session's storage transaction. UPDATE and DELETE are
//! planned as ordinary SELECTs over the target table *with its hidden row-id
//! column exposed*, so every WHERE clause, subquery, `UPDATE … FROM` join and
//! model call DataFusion can plan works unchanged; the selected row ids are then
//! deleted (and, for UPDATE, the new row versions inserted). INSERT reuses
//! DataFusion's INSERT planning for column matching, casts and defaults, then
//! writes the resulting batches; `INSERT … VALUES` of plain literals and
//! parameters skips the planner ([`crate::fast_insert`]).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, UInt64Array};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
use datafusion::sql::sqlparser::ast::{
    Assignment, CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget,
    FromTable, ObjectName, SelectItem, Statement, TableFactor, TableObject, UpdateTableFromKind,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use freshet_catalog::{QualifiedName, RelationEntry, RelationKind, TablePrivilege};
use freshet_storage::{RowId, TableId, ROW_ID_COLUMN};

use crate::commands::{command, run_query};
use crate::keys::OnConflict;
use crate::names::{lookup_relation, resolve_name};
use crate::output::RowsCommand;
use crate::planning::{collect_plan, map_df_error, plan_statement};
use crate::session::{CopyInState, Session};
use crate::{CommandTag, CopyFormat, CopyInTarget, CopyOptions, EngineError, QueryOutput};

/// The virtual schema holding the per-statement DML helper tables.
const DML_SCHEMA: &str = "__freshet_dml";

/// A table that rows are being written to.
#[derive(Debug, Clone)]
pub(crate) struct InsertTarget {
    pub(crate) name: QualifiedName,
    pub(crate) table_id: TableId,
    pub(crate) schema: SchemaRef,
    pub(crate) relation: RelationEntry,
}

/// Resolves a DML target, refusing views and dynamic tables, and a user
/// without `privilege` on it (42501).
pub(crate) fn writable_target(
    session: &Session,
    name: &ObjectName,
    privilege: TablePrivilege,
) -> Result<InsertTarget, EngineError> {
    let qualified = resolve_name(session, name)?;
    let relation = lookup_relation(session, &qualified)?;
    if matches!(relation.kind, RelationKind::Table) {
        require_on(session, &relation, privilege)?;
    }
    let table_id = match (&relation.kind, relation.table_id) {
        (RelationKind::Table, Some(id)) => id,
        (RelationKind::DynamicTable(_), _) => {
            return Err(EngineError::new(
                "42809",
                format!(
                    "cannot modify dynamic table \"{}\": its contents are maintained by refreshes",
                    relation.name
                ),
            ))
        }
        _ => {
            return Err(EngineError::new(
                "42809",
                format!("cannot modify view \"{}\"", relation.name),
            ))
        }
    };
    let schema = session
        .shared
        .with_txn(|t| t.table_schema(table_id))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    Ok(InsertTarget {
        name: qualified,
        table_id,
        schema,
        relation,
    })
}

/// Fails with 42501 unless the session's user holds `privilege` on the
/// table `relation` (a write's target; RETURNING also needs SELECT, ON
/// CONFLICT DO UPDATE also needs UPDATE).
fn require_on(
    session: &Session,
    relation: &RelationEntry,
    privilege: TablePrivilege,
) -> Result<(), EngineError> {
    crate::privileges::require(
        &session.shared,
        session.user(),
        &relation.name,
        &relation.acl,
        privilege,
    )
}

/// Whether any of `exprs` names a column (or anything else by name).
fn names_columns<'a>(exprs: impl IntoIterator<Item = &'a SqlExpr>) -> bool {
    use datafusion::sql::sqlparser::ast::visit_expressions;
    exprs.into_iter().any(|expr| {
        visit_expressions(expr, |e| match e {
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                std::ops::ControlFlow::Break(())
            }
            _ => std::ops::ControlFlow::Continue(()),
        })
        .is_break()
    })
}

/// The privilege a writing statement needs on its target.
fn change_privilege(stmt: &Statement) -> TablePrivilege {
    match stmt {
        Statement::Update(_) => TablePrivilege::Update,
        Statement::Delete(_) => TablePrivilege::Delete,
        _ => TablePrivilege::Insert,
    }
}

/// Casts a batch to the table's column types and enforces NOT NULL.
pub(crate) fn conform(
    batch: &RecordBatch,
    target: &InsertTarget,
) -> Result<RecordBatch, EngineError> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns = Vec::with_capacity(target.schema.fields().len());
    for (i, field) in target.schema.fields().iter().enumerate() {
        let column = batch.column(i);
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else if let Some(parsed) =
            crate::datetime_input::parse_text_array(column, field.data_type())
        {
            parsed?
        } else if let Some(parsed) =
            crate::float_input::text_array_to_float(column, field.data_type())
        {
            parsed?
        } else if column.data_type() == &DataType::Float64
            && field.data_type() == &DataType::Float32
        {
            crate::float_input::doubles_to_reals(column)?
        } else {
            // Numeric text as PostgreSQL reads it (`1e2`, `+3.5`).
            let plain;
            let column = if matches!(field.data_type(), DataType::Decimal128(_, _))
                && matches!(
                    column.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ) {
                plain = crate::numeric_text::plain_array(column)?;
                &plain
            } else {
                column
            };
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                let message = format!("invalid value for column \"{}\": {e}", field.name());
                EngineError::new(crate::planning::cast_failure_sqlstate(&message), message)
            })?
        };
        let blank_padded = crate::types::is_blank_padded(field);
        let column = match crate::types::declared_char_length(field) {
            Some(limit) => check_char_length(column, limit, blank_padded)?,
            None => column,
        };
        let column = if blank_padded {
            strip_trailing_spaces(column)
        } else {
            column
        };
        let column = if crate::types::is_json(field) {
            conform_json(column, field)?
        } else {
            column
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(EngineError::new(
                "23502",
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    field.name(),
                    target.name.name
                ),
            ));
        }
        columns.push(column);
    }
    RecordBatch::try_new(target.schema.clone(), columns)
        .map_err(|e| EngineError::new("XX000", e.to_string()))
}

/// A `json` column's values validated, a `jsonb` column's also put in
/// `jsonb`'s canonical form (`json_text`), as PostgreSQL's input functions
/// do on every write: 22P02 for text that is not JSON.
fn conform_json(column: ArrayRef, field: &Field) -> Result<ArrayRef, EngineError> {
    use datafusion::arrow::array::{AsArray, StringArray};
    let Some(strings) = column.as_string_opt::<i32>() else {
        return Ok(column);
    };
    let jsonb = field
        .metadata()
        .get(crate::types::SQL_TYPE_METADATA)
        .is_some_and(|t| t == "jsonb");
    if !jsonb {
        for value in strings.iter().flatten() {
            crate::json_text::validate_json(value)?;
        }
        return Ok(column);
    }
    let canonical: StringArray = strings
        .iter()
        .map(|v| v.map(crate::json_text::jsonb_text).transpose())
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(canonical))
}

/// A `char(n)` column's values without their trailing spaces, which
/// PostgreSQL does not count (`'a  '` and `'a'` are one value, and `'a  '`
/// read as text is `'a'`). Stored so, they compare, group and join as
/// PostgreSQL's do; they are sent without padding.
fn strip_trailing_spaces(column: ArrayRef) -> ArrayRef {
    use datafusion::arrow::array::{AsArray, StringArray};
    let Some(strings) = column.as_string_opt::<i32>() else {
        return column;
    };
    if !strings.iter().flatten().any(|s| s.ends_with(' ')) {
        return column;
    }
    let stripped: StringArray = strings
        .iter()
        .map(|value| value.map(|s| s.trim_end_matches(' ')))
        .collect();
    Arc::new(stripped)
}

/// Enforces `varchar(n)` and `char(n)`: Postgres refuses longer values with
/// 22001 rather than truncating them, unless what passes the limit is only
/// spaces, which are cut off (`'abc  '` fits `varchar(3)`).
fn check_char_length(
    column: ArrayRef,
    limit: usize,
    blank_padded: bool,
) -> Result<ArrayRef, EngineError> {
    use datafusion::arrow::array::{AsArray, StringArray};
    let Some(strings) = column.as_string_opt::<i32>() else {
        return Ok(column);
    };
    let fits = |s: &str| s.chars().count() <= limit;
    if strings.iter().flatten().all(fits) {
        return Ok(column);
    }
    let cut: StringArray = strings
        .iter()
        .map(|value| match value {
            Some(s) if !fits(s) => {
                let (end, _) = s.char_indices().nth(limit).unwrap_or((s.len(), ' '));
                if s[end..].chars().all(|c| c == ' ') {
                    Ok(Some(&s[..end]))
                } else {
                    Err(EngineError::new(
                        "22001",
                        format!(
                            "value too long for type {}({limit})",
                            if blank_padded {
                                "character"
                            } else {
                                "character varying"
                            }
                        ),
                    ))
                }
            }
            other => Ok(other),
        })
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(cut))
}

/// Writes validated batches into the target table.
pub(crate) fn write_batches(
    session: &Session,
    target: &InsertTarget,
    batches: &[RecordBatch],
) -> Result<u64, EngineError> {
    let mut rows = 0u64;
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = conform(batch, target)?;
        rows += batch.num_rows() as u64;
        crate::ddl::txn_mut(session, |t| Ok(t.insert(target.table_id, batch)?))?;
    }
    Ok(rows)
}

/// Writes validated batches, leaving out rows whose key in unique index
/// `index` (any unique index if `None`) is taken: `ON CONFLICT DO NOTHING`.
/// Returns the number of rows written and the rows themselves.
fn write_batches_skipping_conflicts(
    session: &Session,
    target: &InsertTarget,
    batches: &[RecordBatch],
    index: Option<usize>,
) -> Result<(u64, Vec<RecordBatch>), EngineError> {
    let mut rows = 0u64;
    let mut written = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = conform(batch, target)?;
        let kept = crate::ddl::txn_mut(session, |t| {
            Ok(t.insert_skipping_conflicts(target.table_id, batch, index)?)
        })?;
        rows += kept.num_rows() as u64;
        written.push(kept);
    }
    Ok((rows, written))
}

/// INSERT, UPDATE or DELETE, with optional RETURNING.
pub(crate) async fn run_dml(
    session: &mut Session,
    stmt: &Statement,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let result = match stmt {
        Statement::Insert(insert) => insert_rows(session, insert, params).await,
        Statement::Update(_) | Statement::Delete(_) => {
            update_or_delete(session, stmt, params).await
        }
        _ => Err(EngineError::new("XX000", "not a DML statement")),
    };
    session.shared.virtual_schemas.write().remove(DML_SCHEMA);
    result
}

async fn insert_rows(
    session: &mut Session,
    insert: &datafusion::sql::sqlparser::ast::Insert,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(EngineError::new(
            "0A000",
            "INSERT INTO TABLE FUNCTION is not supported",
        ));
    };
    let target = writable_target(session, name, TablePrivilege::Insert)?;
    // As in PostgreSQL: RETURNING reads the rows, and DO UPDATE changes them.
    if insert.returning.is_some() {
        require_on(session, &target.relation, TablePrivilege::Select)?;
    }
    if matches!(
        &insert.on,
        Some(datafusion::sql::sqlparser::ast::OnInsert::OnConflict(conflict))
            if matches!(conflict.action, datafusion::sql::sqlparser::ast::OnConflictAction::DoUpdate(_))
    ) {
        require_on(session, &target.relation, TablePrivilege::Update)?;
    }
    let named;
    let insert = match leading_columns(insert, &target) {
        Some(with_columns) => {
            named = with_columns;
            &named
        }
        None => insert,
    };
    let defaulted;
    let insert = match values_with_defaults(insert, &target)? {
        Some(filled) => {
            defaulted = filled;
            &defaulted
        }
        None => insert,
    };
    let on_conflict = crate::keys::on_conflict(&target, insert.on.as_ref())?;
    if let Some(batch) = crate::fast_insert::values_batch(insert, &target, params.as_ref())? {
        let rows = write_batches(session, &target, &[batch])?;
        return Ok(QueryOutput::Command(CommandTag {
            tag: "INSERT 0".into(),
            rows: Some(rows),
        }));
    }
    let mut planned_insert = insert.clone();
    let returning = planned_insert.returning.take();
    planned_insert.on = None;
    planned_insert.table_alias = None;
    let mut plan = plan_statement(&session.ctx.state(), Statement::Insert(planned_insert)).await?;
    if let Some(params) = params.clone() {
        plan = plan.with_param_values(params).map_err(map_df_error)?;
    }
    let LogicalPlan::Dml(dml) = plan else {
        return Err(EngineError::new("XX000", "INSERT did not plan as DML"));
    };
    let batches = collect_plan(session, dml.input.as_ref().clone()).await?;
    let conformed = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| conform(b, &target))
        .collect::<Result<Vec<_>, _>>()?;
    let (rows, conformed) = match on_conflict {
        None => (write_batches(session, &target, &conformed)?, conformed),
        Some(OnConflict::Nothing(index)) => {
            write_batches_skipping_conflicts(session, &target, &conformed, index)?
        }
        Some(OnConflict::Update {
            index,
            assignments,
            selection,
        }) => {
            let alias = insert.table_alias.as_ref().map(|a| a.alias.value.clone());
            let upsert = Upsert {
                index,
                alias: alias.as_deref().unwrap_or(&target.name.name),
                assignments: &assignments,
                selection: selection.as_deref(),
            };
            upsert
                .run(session, &target, conformed, params.clone())
                .await?
        }
    };
    match returning {
        Some(items) => {
            returning_rows(
                session,
                &target,
                &target.name.name,
                conformed,
                &items,
                params,
                RowsCommand::Insert,
            )
            .await
        }
        None => Ok(QueryOutput::Command(CommandTag {
            tag: "INSERT 0".into(),
            rows: Some(rows),
        })),
    }
}

/// `statement` with an INSERT's leading columns named (see
/// [`leading_columns`]) and its VALUES' `DEFAULT`s filled in (see
/// [`values_with_defaults`]), for describing it as it will run; unchanged
/// when it is not such an INSERT or its target does not resolve (planning
/// says why).
pub(crate) fn name_leading_columns(session: &Session, statement: Statement) -> Statement {
    if let Statement::Insert(insert) = &statement {
        if let TableObject::TableName(name) = &insert.table {
            if let Ok(target) = writable_target(session, name, TablePrivilege::Insert) {
                let named = leading_columns(insert, &target);
                let insert = named.as_ref().unwrap_or(insert);
                match values_with_defaults(insert, &target) {
                    Ok(Some(filled)) => return Statement::Insert(filled),
                    _ => {
                        if let Some(named) = named {
                            return Statement::Insert(named);
                        }
                    }
                }
            }
        }
    }
    statement
}

/// PostgreSQL fills an INSERT without a column list from the table's first
/// columns: `INSERT INTO t VALUES (1)` into `t (a, b)` sets `a` and gives
/// `b` its default. The statement with those columns named, when its source
/// is narrower than the table (VALUES, or a SELECT list without `*`).
fn leading_columns(
    insert: &datafusion::sql::sqlparser::ast::Insert,
    target: &InsertTarget,
) -> Option<datafusion::sql::sqlparser::ast::Insert> {
    use datafusion::sql::sqlparser::ast::{Ident, SetExpr};
    if !insert.columns.is_empty() {
        return None;
    }
    let width = match insert.source.as_deref()?.body.as_ref() {
        SetExpr::Values(values) => values.rows.first()?.len(),
        SetExpr::Select(select)
            if select.projection.iter().all(|item| {
                matches!(
                    item,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            }) =>
        {
            select.projection.len()
        }
        _ => return None,
    };
    let fields = target.schema.fields();
    if width == 0 || width >= fields.len() {
        return None;
    }
    let mut named = insert.clone();
    named.columns = fields[..width]
        .iter()
        .map(|f| ObjectName::from(vec![Ident::with_quote('"', f.name())]))
        .collect();
    Some(named)
}

/// `INSERT … VALUES (1, DEFAULT)`: each `DEFAULT` in a VALUES row replaced
/// by its column's default expression (NULL for a column without one), as
/// PostgreSQL fills it. `None` when no row says DEFAULT.
fn values_with_defaults(
    insert: &datafusion::sql::sqlparser::ast::Insert,
    target: &InsertTarget,
) -> Result<Option<datafusion::sql::sqlparser::ast::Insert>, EngineError> {
    use datafusion::sql::sqlparser::ast::{SetExpr, Value};
    let is_default = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
    let Some(SetExpr::Values(values)) = insert.source.as_deref().map(|q| q.body.as_ref()) else {
        return Ok(None);
    };
    if !values
        .rows
        .iter()
        .flat_map(|row| row.iter())
        .any(is_default)
    {
        return Ok(None);
    }
    let columns: Vec<String> = if insert.columns.is_empty() {
        target
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| crate::names::parts(c).pop().unwrap_or_default())
            .collect()
    };
    let mut filled = insert.clone();
    let Some(SetExpr::Values(values)) = filled.source.as_deref_mut().map(|q| q.body.as_mut())
    else {
        return Ok(None);
    };
    for row in &mut values.rows {
        for (i, value) in row.iter_mut().enumerate() {
            if !is_default(value) {
                continue;
            }
            let column = columns.get(i).ok_or_else(|| {
                EngineError::new("42601", "INSERT has more expressions than target columns")
            })?;
            *value = match target
                .relation
                .columns
                .get(column)
                .and_then(|c| c.default_sql.as_deref())
            {
                Some(sql) => crate::pg_compat::parse_expr(sql).ok_or_else(|| {
                    EngineError::new(
                        "XX000",
                        format!("the stored default of column \"{column}\" does not parse"),
                    )
                })?,
                None => SqlExpr::value(Value::Null),
            };
        }
    }
    Ok(Some(filled))
}

/// `INSERT … ON CONFLICT (key) DO UPDATE SET … [WHERE …]`.
struct Upsert<'a> {
    /// The arbiter unique index's position among the table's keys.
    index: usize,
    /// The name the target goes by in SET and WHERE.
    alias: &'a str,
    assignments: &'a [Assignment],
    selection: Option<&'a datafusion::sql::sqlparser::ast::Expr>,
}

impl Upsert<'_> {
    /// Inserts the proposed rows whose key is free and updates, as an
    /// UPDATE would, the rows holding the keys that are taken, with the
    /// proposed row as `excluded`. Returns the rows inserted and updated
    /// (their count and their new versions, for RETURNING). A key proposed
    /// twice is refused with 21000, as in PostgreSQL: the second proposal
    /// would change a row this statement already changed.
    async fn run(
        &self,
        session: &mut Session,
        target: &InsertTarget,
        proposed: Vec<RecordBatch>,
        params: Option<ParamValues>,
    ) -> Result<(u64, Vec<RecordBatch>), EngineError> {
        let arbiters = crate::indexes::arbiters(&target.relation);
        let key = arbiters
            .get(self.index)
            .ok_or_else(|| EngineError::new("XX000", "ON CONFLICT arbiter index not found"))?;
        let row_keys = crate::row_keys::RowKeys::new(&target.schema, key.columns)?;
        let mut proposed_keys = HashSet::new();
        for batch in &proposed {
            for key in row_keys.keys(batch)?.into_iter().flatten() {
                if !proposed_keys.insert(key) {
                    return Err(EngineError::new(
                        "21000",
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    ));
                }
            }
        }
        let (inserted_count, inserted) =
            write_batches_skipping_conflicts(session, target, &proposed, Some(self.index))?;
        let mut free = HashSet::new();
        for batch in &inserted {
            free.extend(row_keys.keys(batch)?.into_iter().flatten());
        }
        let mut taken = Vec::new();
        for batch in &proposed {
            let mask: datafusion::arrow::array::BooleanArray = row_keys
                .keys(batch)?
                .iter()
                .map(|k| Some(k.as_ref().is_some_and(|k| !free.contains(k))))
                .collect();
            let rows = datafusion::arrow::compute::filter_record_batch(batch, &mask)
                .map_err(|e| EngineError::new("XX000", e.to_string()))?;
            if rows.num_rows() > 0 {
                taken.push(rows);
            }
        }
        if taken.is_empty() {
            return Ok((inserted_count, inserted));
        }
        let excluded =
            MemTable::try_new(target.schema.clone(), vec![taken]).map_err(map_df_error)?;
        let on = key
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}.{c} = excluded.{c}",
                    quote_ident(self.alias),
                    c = quote_ident(c)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let change = RowChange {
            alias: self.alias,
            from: format!(" JOIN {DML_SCHEMA}.excluded AS excluded ON {on}"),
            selection: self.selection.map(|s| s.to_string()),
            assignments: Some(self.assignments),
            helper: Some(("excluded", Arc::new(excluded))),
            returning: true,
        };
        let (updated_count, updated) = modify_rows(session, target, change, params).await?;
        let mut rows = inserted;
        rows.extend(updated);
        Ok((inserted_count + updated_count, rows))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn update_or_delete(
    session: &mut Session,
    stmt: &Statement,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let (name, alias, extra_from, selection, returning, assignments) = match stmt {
        Statement::Update(update) => {
            let TableFactor::Table { name, alias, .. } = &update.table.relation else {
                return Err(EngineError::new("0A000", "UPDATE target must be a table"));
            };
            if !update.table.joins.is_empty() {
                return Err(EngineError::new(
                    "0A000",
                    "UPDATE with JOIN is not supported; use FROM",
                ));
            }
            let from = match &update.from {
                Some(UpdateTableFromKind::BeforeSet(t))
                | Some(UpdateTableFromKind::AfterSet(t)) => {
                    t.iter().map(|t| t.to_string()).collect::<Vec<_>>()
                }
                None => Vec::new(),
            };
            (
                name.clone(),
                alias.as_ref().map(|a| a.name.value.clone()),
                from,
                update.selection.as_ref(),
                update.returning.clone(),
                Some(update.assignments.clone()),
            )
        }
        Statement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let [table] = tables.as_slice() else {
                return Err(EngineError::new(
                    "0A000",
                    "DELETE from several tables is not supported",
                ));
            };
            let TableFactor::Table { name, alias, .. } = &table.relation else {
                return Err(EngineError::new("0A000", "DELETE target must be a table"));
            };
            let using = delete
                .using
                .as_ref()
                .map(|u| u.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                .unwrap_or_default();
            (
                name.clone(),
                alias.as_ref().map(|a| a.name.value.clone()),
                using,
                delete.selection.as_ref(),
                delete.returning.clone(),
                None,
            )
        }
        _ => return Err(EngineError::new("XX000", "not UPDATE or DELETE")),
    };
    let target = writable_target(session, &name, change_privilege(stmt))?;
    // As in PostgreSQL, SELECT is needed too when the statement reads the
    // rows: RETURNING, or a column named in WHERE or a SET value. (The rows
    // to change are found without the checked table scan.)
    let set_values = assignments.iter().flatten().map(|a| &a.value);
    if returning.is_some() || names_columns(selection.into_iter().chain(set_values)) {
        require_on(session, &target.relation, TablePrivilege::Select)?;
    }
    let alias = alias.unwrap_or_else(|| target.name.name.clone());
    let from = extra_from.iter().map(|t| format!(", {t}")).collect();
    let change = RowChange {
        alias: &alias,
        from,
        selection: selection.map(|s| s.to_string()),
        assignments: assignments.as_deref(),
        helper: None,
        returning: returning.is_some(),
    };
    let (count, new_rows) = modify_rows(session, &target, change, params.clone()).await?;
    let (tag, rows_command) = if assignments.is_some() {
        ("UPDATE", RowsCommand::Update)
    } else {
        ("DELETE", RowsCommand::Delete)
    };
    match returning {
        Some(items) => {
            returning_rows(
                session,
                &target,
                &alias,
                new_rows,
                &items,
                params,
                rows_command,
            )
            .await
        }
        None => Ok(command(tag, Some(count))),
    }
}

/// The rows an UPDATE, a DELETE or an `ON CONFLICT DO UPDATE` changes.
struct RowChange<'a> {
    /// The name the target table goes by in the statement.
    alias: &'a str,
    /// What follows the target in the FROM list: `, t2, t3` for
    /// `UPDATE … FROM` and `DELETE … USING`, a join for ON CONFLICT.
    from: String,
    /// The WHERE condition.
    selection: Option<String>,
    /// The SET list of an update; `None` deletes.
    assignments: Option<&'a [Assignment]>,
    /// A helper table registered beside the target for this statement.
    helper: Option<(&'static str, Arc<MemTable>)>,
    /// Whether the caller needs the changed rows (for RETURNING). A delete
    /// without RETURNING reads only the row ids and the columns its WHERE
    /// names.
    returning: bool,
}

/// Deletes the target rows `change` selects and, for an update, writes
/// their new versions: the statement runs as a SELECT over the target with
/// its row ids exposed. Returns the number of rows changed and the rows
/// written (the deleted rows, for a delete), for RETURNING.
async fn modify_rows(
    session: &mut Session,
    target: &InsertTarget,
    change: RowChange<'_>,
    params: Option<ParamValues>,
) -> Result<(u64, Vec<RecordBatch>), EngineError> {
    let RowChange {
        alias,
        from,
        selection,
        assignments,
        helper,
        returning,
    } = change;
    let keep_rows = assignments.is_some() || returning;
    // Expose the target with its row ids under a private name for this
    // statement. It is scanned like any table, so a WHERE on a key reads
    // only the rows it names, and other scans read the table lazily.
    let rowid_table = crate::provider::StoredTable::with_row_ids(
        &session.shared,
        &target.name.name,
        target.table_id,
        &target.schema,
    );
    let schema_provider = Arc::new(MemorySchemaProvider::new());
    schema_provider
        .register_table("target".into(), Arc::new(rowid_table))
        .map_err(map_df_error)?;
    if let Some((name, table)) = helper {
        schema_provider
            .register_table(name.into(), table)
            .map_err(map_df_error)?;
    }
    session
        .shared
        .virtual_schemas
        .write()
        .insert(DML_SCHEMA.into(), schema_provider.clone());

    let mut select_list = vec![quote_ident(ROW_ID_COLUMN)];
    let fields = if keep_rows {
        target.schema.fields().iter().collect()
    } else {
        Vec::new()
    };
    for (position, field) in fields.into_iter().enumerate() {
        let assigned = assignments.and_then(|a| {
            a.iter().find(|assignment| {
                assignment_column(&assignment.target)
                    .is_some_and(|c| c.eq_ignore_ascii_case(field.name()))
            })
        });
        match assigned {
            // Each new value under its own name: `SET a = 5, b = 5` would
            // otherwise be two select items DataFusion names alike.
            Some(a) => select_list.push(format!(
                "({}) AS {}",
                a.value,
                quote_ident(&format!("__freshet_set_{position}"))
            )),
            None => select_list.push(format!(
                "{}.{}",
                quote_ident(alias),
                quote_ident(field.name())
            )),
        }
    }
    for a in assignments.unwrap_or_default() {
        let column = assignment_column(&a.target).unwrap_or_default();
        if !target
            .schema
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(&column))
        {
            return Err(EngineError::new(
                "42703",
                format!(
                    "column \"{column}\" of relation \"{}\" does not exist",
                    target.name.name
                ),
            ));
        }
    }
    let mut sql = format!(
        "SELECT {} FROM {DML_SCHEMA}.target AS {}{from}",
        select_list.join(", "),
        quote_ident(alias)
    );
    if let Some(selection) = &selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| EngineError::new("42601", e.to_string()))?;
    let mut plan = plan_statement(&session.ctx.state(), statement).await?;
    if let Some(params) = params {
        plan = plan.with_param_values(params).map_err(map_df_error)?;
    }
    let batches = collect_plan(session, plan).await?;

    // A row matched several times through a FROM join is changed once, as in Postgres.
    let mut seen = HashSet::new();
    let mut row_ids = Vec::new();
    let mut new_rows = Vec::new();
    for batch in &batches {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| EngineError::new("XX000", "row id column has the wrong type"))?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let id = ids.value(i);
            let first = seen.insert(id);
            if first {
                row_ids.push(RowId(id));
            }
            keep.push(first);
        }
        if !keep_rows {
            continue;
        }
        let mask = datafusion::arrow::array::BooleanArray::from(keep);
        let filtered = datafusion::arrow::compute::filter_record_batch(batch, &mask)
            .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        let values = RecordBatch::try_new(
            Arc::new(Schema::new(filtered.schema().fields()[1..].to_vec())),
            filtered.columns()[1..].to_vec(),
        )
        .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        new_rows.push(conform(&values, target)?);
    }
    let count = row_ids.len() as u64;
    crate::ddl::txn_mut(session, |t| Ok(t.delete(target.table_id, &row_ids)?))?;
    if assignments.is_some() {
        write_batches(session, target, &new_rows)?;
    }
    Ok((count, new_rows))
}

fn assignment_column(target: &datafusion::sql::sqlparser::ast::AssignmentTarget) -> Option<String> {
    use datafusion::sql::sqlparser::ast::AssignmentTarget;
    match target {
        AssignmentTarget::ColumnName(name) => name.0.last().and_then(|p| p.as_ident()).map(|i| {
            if i.quote_style.is_some() {
                i.value.clone()
            } else {
                i.value.to_ascii_lowercase()
            }
        }),
        AssignmentTarget::Tuple(_) => None,
    }
}

async fn returning_rows(
    session: &mut Session,
    target: &InsertTarget,
    alias: &str,
    rows: Vec<RecordBatch>,
    items: &[SelectItem],
    params: Option<ParamValues>,
    command: RowsCommand,
) -> Result<QueryOutput, EngineError> {
    let table = MemTable::try_new(target.schema.clone(), vec![rows]).map_err(map_df_error)?;
    let schema_provider = Arc::new(MemorySchemaProvider::new());
    schema_provider
        .register_table("returning".into(), Arc::new(table))
        .map_err(map_df_error)?;
    session
        .shared
        .virtual_schemas
        .write()
        .insert(DML_SCHEMA.into(), schema_provider);
    let list = items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {list} FROM {DML_SCHEMA}.returning AS {}",
        quote_ident(alias)
    );
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| EngineError::new("42601", e.to_string()))?;
    // Materialize now: the helper table disappears when the statement ends.
    let output = run_query(session, statement, params).await?;
    let QueryOutput::Rows { schema, stream, .. } = output else {
        return Ok(output);
    };
    let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream)
        .await
        .map_err(map_df_error)?;
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        schema.clone(),
        futures::stream::iter(batches.into_iter().map(Ok)),
    );
    Ok(QueryOutput::Rows {
        schema,
        stream: Box::pin(stream),
        command,
    })
}

/// TRUNCATE t1, t2, …
pub(crate) async fn truncate(
    session: &mut Session,
    stmt: &Statement,
) -> Result<QueryOutput, EngineError> {
    let Statement::Truncate(truncate) = stmt else {
        return Err(EngineError::new("XX000", "not TRUNCATE"));
    };
    for table in &truncate.table_names {
        let target = writable_target(session, &table.name, TablePrivilege::Truncate)?;
        crate::ddl::txn_mut(session, |t| Ok(t.truncate(target.table_id)?))?;
    }
    Ok(command("TRUNCATE TABLE", None))
}

/// COPY … FROM STDIN / TO STDOUT.
pub(crate) async fn copy(
    session: &mut Session,
    stmt: &Statement,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(EngineError::new("XX000", "not COPY"));
    };
    let options = copy_options(options, legacy_options)?;
    match (to, target) {
        (false, CopyTarget::Stdin) => {
            let CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(EngineError::new("42601", "COPY FROM needs a table"));
            };
            let target = writable_target(session, table_name, TablePrivilege::Insert)?;
            let indices = if columns.is_empty() {
                (0..target.schema.fields().len()).collect::<Vec<_>>()
            } else {
                columns
                    .iter()
                    .map(|c| {
                        let wanted = if c.quote_style.is_some() {
                            c.value.clone()
                        } else {
                            c.value.to_ascii_lowercase()
                        };
                        target
                            .schema
                            .fields()
                            .iter()
                            .position(|f| *f.name() == wanted)
                            .ok_or_else(|| {
                                EngineError::new(
                                    "42703",
                                    format!(
                                        "column \"{wanted}\" of relation \"{}\" does not exist",
                                        target.name.name
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let input_schema = Arc::new(Schema::new(
                indices
                    .iter()
                    .map(|i| target.schema.field(*i).clone())
                    .collect::<Vec<_>>(),
            ));
            let autocommit = session.transaction_status() == crate::TransactionStatus::Idle;
            session.copy_in = Some(CopyInState {
                target,
                columns: indices,
                rows: 0,
                autocommit,
            });
            Ok(QueryOutput::CopyIn(CopyInTarget {
                schema: input_schema,
                options,
            }))
        }
        (true, CopyTarget::Stdout) => {
            let query = match source {
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let cols = if columns.is_empty() {
                        "*".to_string()
                    } else {
                        columns
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    format!("SELECT {cols} FROM {table_name}")
                }
                CopySource::Query(q) => q.to_string(),
            };
            let statement = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&query)
                .and_then(|mut p| p.parse_statement())
                .map_err(|e| EngineError::new("42601", e.to_string()))?;
            match run_query(session, statement, params).await? {
                QueryOutput::Rows { schema, stream, .. } => Ok(QueryOutput::CopyOut {
                    schema,
                    stream,
                    options,
                }),
                other => Ok(other),
            }
        }
        _ => Err(EngineError::new(
            "0A000",
            "only COPY … FROM STDIN and COPY … TO STDOUT are supported (no server-side files)",
        )),
    }
}

/// Validates COPY's options the way PostgreSQL's `ProcessCopyOptions` does
/// and fills in the format's defaults.
///
/// In binary mode DELIMITER, NULL, HEADER, QUOTE and ESCAPE mean nothing, so
/// PostgreSQL refuses them rather than ignoring them (a client that sets them
/// probably expects a text stream); the checks run in PostgreSQL's order so
/// that the first complaint is the same one PostgreSQL makes.
fn copy_options(
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyOptions, EngineError> {
    let mut format = None;
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    let mut quote = None;
    let mut escape = None;
    // A second FORMAT (or BINARY next to CSV) is ambiguous.
    let mut set_format = |new: CopyFormat| {
        if format.replace(new).is_some() {
            return Err(EngineError::new(
                "42601",
                "conflicting or redundant options",
            ));
        }
        Ok(())
    };
    for option in options {
        match option {
            CopyOption::Format(f) => set_format(match f.value.to_ascii_lowercase().as_str() {
                "text" => CopyFormat::Text,
                "csv" => CopyFormat::Csv,
                "binary" => CopyFormat::Binary,
                other => {
                    return Err(EngineError::new(
                        "0A000",
                        format!("COPY format \"{other}\" is not supported"),
                    ))
                }
            })?,
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(q) => quote = Some(*q),
            CopyOption::Escape(e) => escape = Some(*e),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            CopyOption::Freeze(_) => {}
            other => {
                return Err(EngineError::new(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ))
            }
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => set_format(CopyFormat::Binary)?,
            CopyLegacyOption::Csv(csv_options) => {
                set_format(CopyFormat::Csv)?;
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        _ => {}
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Header => header = true,
            other => {
                return Err(EngineError::new(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ))
            }
        }
    }
    let format = format.unwrap_or(CopyFormat::Text);
    if format == CopyFormat::Binary {
        let refused = if delimiter.is_some() {
            Some(("42601", "cannot specify DELIMITER in BINARY mode"))
        } else if null.is_some() {
            Some(("42601", "cannot specify NULL in BINARY mode"))
        } else if header {
            Some(("0A000", "cannot specify HEADER in BINARY mode"))
        } else if quote.is_some() {
            Some(("0A000", "COPY quote available only in CSV mode"))
        } else if escape.is_some() {
            Some(("0A000", "COPY escape available only in CSV mode"))
        } else {
            None
        };
        if let Some((sqlstate, message)) = refused {
            return Err(EngineError::new(sqlstate, message));
        }
    }
    if header && format == CopyFormat::Text {
        return Err(EngineError::new(
            "0A000",
            "COPY HEADER available only in CSV mode",
        ));
    }
    let quote = quote.unwrap_or('"');
    Ok(CopyOptions {
        format,
        // Binary mode has no delimiters or NULL marker; it keeps the text
        // defaults so that the options are always well-formed.
        delimiter: delimiter.unwrap_or(match format {
            CopyFormat::Text | CopyFormat::Binary => '\t',
            CopyFormat::Csv => ',',
        }),
        null: null.unwrap_or_else(|| match format {
            CopyFormat::Text | CopyFormat::Binary => "\\N".into(),
            CopyFormat::Csv => String::new(),
        }),
        header,
        quote,
        escape: escape.unwrap_or(quote),
    })
}

impl Session {
    /// Adds decoded rows to the running `COPY … FROM STDIN`.
    pub async fn copy_in_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        let Some(state) = self.copy_in.as_ref() else {
            return Err(EngineError::new("08P01", "no COPY is in progress"));
        };
        let target = state.target.clone();
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.schema.fields().len());
        for (i, field) in target.schema.fields().iter().enumerate() {
            match state.columns.iter().position(|c| *c == i) {
                Some(pos) => columns.push(batch.column(pos).clone()),
                None => columns.push(crate::ddl::default_column(self, &target, field, n).await?),
            }
        }
        let full = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(
                target
                    .schema
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Field::new(f.name(), columns[i].data_type().clone(), true))
                    .collect::<Vec<_>>(),
            )),
            columns,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| EngineError::new("22P02", e.to_string()))?;
        let rows = write_batches(self, &target, &[full]).map_err(|mut e| {
            self.name_error_object(&mut e);
            e
        })?;
        if let Some(state) = self.copy_in.as_mut() {
            state.rows += rows;
        }
        Ok(())
    }

    /// Completes the running COPY: its rows commit (or join the open transaction).
    pub async fn copy_in_finish(&mut self) -> Result<CommandTag, EngineError> {
        let Some(state) = self.copy_in.take() else {
            return Err(EngineError::new("08P01", "no COPY is in progress"));
        };
        if state.autocommit {
            if let Err(mut e) = self.commit_statement_txn().await {
                self.name_error_object(&mut e);
                return Err(e);
            }
        }
        Ok(CommandTag {
            tag: "COPY".into(),
            rows: Some(state.rows),
        })
    }

    /// Abandons the running COPY (client sent CopyFail or the data was bad).
    pub fn copy_in_abort(&mut self, reason: &str) {
        tracing::debug!(reason, "COPY aborted");
        if let Some(state) = self.copy_in.take() {
            if state.autocommit {
                self.rollback_statement_txn();
            } else {
                self.mark_failed();
            }
        }
    }
}

/// A column of `n` NULLs of the field's type.
pub(crate) fn null_column(field: &Field, n: usize) -> ArrayRef {
    new_null_array(field.data_type(), n)
}

/// The row description of `INSERT/UPDATE/DELETE … RETURNING`, for Describe:
/// the RETURNING list evaluated over zero rows of the target table, exactly
/// the way execution evaluates it over the written rows.
pub(crate) async fn describe_returning(
    session: &mut Session,
    stmt: &Statement,
) -> Result<Option<SchemaRef>, EngineError> {
    let (name, alias, items) = match stmt {
        Statement::Insert(insert) => match (&insert.table, &insert.returning) {
            (TableObject::TableName(name), Some(items)) => (name.clone(), None, items.clone()),
            _ => return Ok(None),
        },
        Statement::Update(update) => match (&update.table.relation, &update.returning) {
            (TableFactor::Table { name, alias, .. }, Some(items)) => (
                name.clone(),
                alias.as_ref().map(|a| a.name.value.clone()),
                items.clone(),
            ),
            _ => return Ok(None),
        },
        Statement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            match (tables.first().map(|t| &t.relation), &delete.returning) {
                (Some(TableFactor::Table { name, alias, .. }), Some(items)) => (
                    name.clone(),
                    alias.as_ref().map(|a| a.name.value.clone()),
                    items.clone(),
                ),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let target = writable_target(session, &name, change_privilege(stmt))?;
    let alias = alias.unwrap_or_else(|| target.name.name.clone());
    let output = returning_rows(
        session,
        &target,
        &alias,
        Vec::new(),
        &items,
        None,
        RowsCommand::Select,
    )
    .await;
    session.shared.virtual_schemas.write().remove(DML_SCHEMA);
    match output? {
        QueryOutput::Rows { schema, .. } => Ok(Some(schema)),
        _ => Ok(None),
    }
}
