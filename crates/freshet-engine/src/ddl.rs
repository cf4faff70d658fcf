//! DDL on databases, schemas, tables and views, plus USE and SHOW TABLES.
//!
//! Catalog changes are written in the session's storage transaction, so DDL is
//! transactional: a CREATE TABLE inside a rolled-back block never existed.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, ColumnOption, Ident, ObjectName, ObjectType, SchemaName, Statement, Use,
};

use freshet_catalog::{
    self as catalog, ColumnInfo, DatabaseEntry, QualifiedName, RelationEntry, RelationKind,
    SchemaEntry,
};
use freshet_sql::{FreshetStatement, OwnedObject};

use crate::commands::{command, run_query, text_rows};
use crate::dml::InsertTarget;
use crate::names::{find_relation, ident, lookup_relation, parts, require_schema, resolve_name};
use crate::planning::map_df_error;
use crate::session::Session;
use crate::types::{normalize_result_field, sql_type_to_field};
use crate::{EngineError, QueryOutput};

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs `f` with mutable access to the session's transaction.
pub(crate) fn txn_mut<T>(
    session: &Session,
    f: impl FnOnce(&mut freshet_storage::Transaction) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let mut guard = session.shared.txn.lock();
    match guard.as_mut() {
        Some(txn) => f(txn),
        None => Err(EngineError::new("XX000", "no transaction is active")),
    }
}

/// Executes a standard DDL statement.
pub(crate) async fn run_standard(
    session: &mut Session,
    stmt: &Statement,
    _source: &str,
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    match stmt {
        Statement::CreateTable(create) => {
            let name = resolve_name(session, &create.name)?;
            require_schema(session, &name)?;
            if let Some(existing) = find_relation(session, &name)? {
                if create.if_not_exists {
                    return Ok(command("CREATE TABLE", None));
                }
                if !create.or_replace {
                    return Err(already_exists(&existing.name));
                }
                crate::privileges::require_owner(session, &existing)?;
                drop_relation(session, &existing, false)?;
            }
            if let Some(query) = &create.query {
                let output = run_query(session, Statement::Query(query.clone()), params).await?;
                let QueryOutput::Rows { schema, stream, .. } = output else {
                    return Err(EngineError::new(
                        "XX000",
                        "CREATE TABLE AS did not return rows",
                    ));
                };
                let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream)
                    .await
                    .map_err(map_df_error)?;
                let fields: Vec<Field> = schema
                    .fields()
                    .iter()
                    .map(|f| normalize_result_field(f))
                    .collect();
                // A query may repeat an output name; a table may not.
                for (i, field) in fields.iter().enumerate() {
                    if fields[..i].iter().any(|f| f.name() == field.name()) {
                        return Err(EngineError::new(
                            "42701",
                            format!("column \"{}\" specified more than once", field.name()),
                        ));
                    }
                }
                let target = create_stored_table(session, &name, fields, BTreeMap::new())?;
                let rows = crate::dml::write_batches(session, &target, &batches)?;
                return Ok(command("SELECT", Some(rows)));
            }
            let mut fields = Vec::new();
            let mut infos = BTreeMap::new();
            let keys = crate::keys::table_keys(&name.name, &create.columns, &create.constraints)?;
            let primary_key_columns: Vec<String> = keys
                .iter()
                .filter(|k| k.primary)
                .flat_map(|k| k.columns.iter().cloned())
                .collect();
            for column in &create.columns {
                let column_name = ident(&column.name);
                if fields.iter().any(|f: &Field| *f.name() == column_name) {
                    return Err(EngineError::new(
                        "42701",
                        format!("column \"{column_name}\" specified more than once"),
                    ));
                }
                let mut nullable = !primary_key_columns.contains(&column_name);
                let mut info = ColumnInfo::default();
                for option in &column.options {
                    match &option.option {
                        ColumnOption::NotNull => nullable = false,
                        ColumnOption::Null => nullable = true,
                        ColumnOption::Default(expr) => info.default_sql = Some(expr.to_string()),
                        ColumnOption::PrimaryKey(_) => nullable = false,
                        ColumnOption::Comment(c) => info.comment = Some(c.clone()),
                        // Keys were collected by `table_keys`; foreign keys
                        // and CHECK are not enforced, and accepting them
                        // silently would lie.
                        ColumnOption::Unique(_) => {}
                        ColumnOption::ForeignKey(_) | ColumnOption::Check(_) => {
                            return Err(EngineError::new(
                                "0A000",
                                "FOREIGN KEY and CHECK constraints are not supported yet",
                            ))
                        }
                        other => return Err(unsupported_column_option(other)),
                    }
                }
                fields.push(sql_type_to_field(
                    &column_name,
                    &column.data_type,
                    nullable,
                )?);
                infos.insert(column_name, info);
            }
            if fields.is_empty() {
                return Err(EngineError::new(
                    "42601",
                    "a table needs at least one column",
                ));
            }
            if let Some(missing) = keys
                .iter()
                .flat_map(|k| k.columns.iter())
                .find(|c| !fields.iter().any(|f| f.name() == *c))
            {
                return Err(EngineError::new(
                    "42703",
                    format!("column \"{missing}\" named in key does not exist"),
                ));
            }
            let target = create_stored_table(session, &name, fields, infos)?;
            if !keys.is_empty() {
                crate::keys::declare_keys(session, &target, keys)?;
            }
            Ok(command("CREATE TABLE", None))
        }
        Statement::CreateView(view) => {
            let name = resolve_name(session, &view.name)?;
            require_schema(session, &name)?;
            if let Some(existing) = find_relation(session, &name)? {
                if !view.or_replace {
                    return Err(already_exists(&existing.name));
                }
                crate::privileges::require_owner(session, &existing)?;
                drop_relation(session, &existing, false)?;
            }
            let query_text = view.query.to_string();
            // Plan once now so a broken view is refused at CREATE time.
            crate::planning::plan_view_query(&session.ctx.state(), &query_text)
                .await
                .map_err(map_df_error)?;
            let reads = relations_named(session, &view.query)?
                .into_iter()
                .filter(|read| *read != name)
                .collect();
            let entry = RelationEntry {
                database: name.database.clone(),
                schema: name.schema.clone(),
                name: name.name.clone(),
                table_id: None,
                columns: BTreeMap::new(),
                kind: RelationKind::View { query_text, reads },
                comment: None,
                created_micros: now_micros(),
                constraints: Vec::new(),
                unique_indexes: Vec::new(),
                acl: catalog::Acl::owned_by(session.user()),
            };
            txn_mut(session, |t| {
                catalog::put(t, &catalog::relation_key(&name), &entry);
                Ok(())
            })?;
            Ok(command("CREATE VIEW", None))
        }
        Statement::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            // AUTHORIZATION must name a role (42704), and names the schema
            // when it has no name of its own, as in PostgreSQL. Schemas
            // have no owners here (docs/security.md).
            let authorization = match schema_name {
                SchemaName::Simple(_) => None,
                SchemaName::NamedAuthorization(_, role)
                | SchemaName::UnnamedAuthorization(role) => Some(crate::privileges::named_owner(
                    session,
                    &datafusion::sql::sqlparser::ast::Owner::Ident(role.clone()),
                )?),
            };
            let object = match (schema_name, authorization) {
                (SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _), _) => n.clone(),
                (SchemaName::UnnamedAuthorization(_), Some(role)) => {
                    ObjectName::from(vec![Ident::with_quote('"', role)])
                }
                (SchemaName::UnnamedAuthorization(_), None) => {
                    return Err(EngineError::new("42601", "CREATE SCHEMA needs a name"))
                }
            };
            let p = parts(&object);
            let (database, schema) = match p.as_slice() {
                [s] => (session.database.clone(), s.clone()),
                [d, s] => (d.clone(), s.clone()),
                _ => return Err(EngineError::new("42601", "invalid schema name")),
            };
            create_schema(session, &database, &schema, *if_not_exists)
        }
        Statement::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => create_database(session, &parts(db_name).join("."), *if_not_exists),
        Statement::CreateIndex(create) => crate::indexes::create_index(session, create),
        Statement::Drop {
            object_type: ObjectType::Index,
            if_exists,
            names,
            ..
        } => crate::indexes::drop_indexes(session, names, *if_exists),
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => drop_objects(session, *object_type, names, *if_exists, *cascade),
        Statement::AlterTable(alter) => match alter.operations.as_slice() {
            [AlterTableOperation::OwnerTo { new_owner }] => {
                crate::privileges::alter_relation_owner(
                    session,
                    &alter.name,
                    alter.if_exists,
                    new_owner,
                    None,
                )
            }
            _ => alter_table(session, &alter.name, &alter.operations).await,
        },
        _ => Err(EngineError::new("0A000", "unsupported DDL statement")),
    }
}

fn already_exists(name: &str) -> EngineError {
    EngineError::new("42P07", format!("relation \"{name}\" already exists"))
}

/// Creates a storage table and its catalog entry.
pub(crate) fn create_stored_table(
    session: &Session,
    name: &QualifiedName,
    fields: Vec<Field>,
    columns: BTreeMap<String, ColumnInfo>,
) -> Result<InsertTarget, EngineError> {
    create_relation(session, name, fields, columns, RelationKind::Table, None)
}

/// Creates a stored relation (table or dynamic table).
pub(crate) fn create_relation(
    session: &Session,
    name: &QualifiedName,
    fields: Vec<Field>,
    columns: BTreeMap<String, ColumnInfo>,
    kind: RelationKind,
    comment: Option<String>,
) -> Result<InsertTarget, EngineError> {
    let schema = Arc::new(Schema::new(fields));
    let entry_schema = schema.clone();
    txn_mut(session, |t| {
        let table_id = t
            .create_table(entry_schema.clone())
            .map_err(EngineError::from)?;
        let entry = RelationEntry {
            database: name.database.clone(),
            schema: name.schema.clone(),
            name: name.name.clone(),
            table_id: Some(table_id),
            columns,
            kind,
            comment,
            created_micros: now_micros(),
            constraints: Vec::new(),
            unique_indexes: Vec::new(),
            acl: catalog::Acl::owned_by(session.user()),
        };
        catalog::put(t, &catalog::relation_key(name), &entry);
        Ok(InsertTarget {
            name: name.clone(),
            table_id,
            schema: entry_schema,
            relation: entry,
        })
    })
}

/// Removes a relation and its storage (dependents are checked by the caller).
pub(crate) fn drop_relation(
    session: &Session,
    entry: &RelationEntry,
    _cascade: bool,
) -> Result<(), EngineError> {
    txn_mut(session, |t| {
        for id in entry.table_id.into_iter().chain(entry.hidden_table_ids()) {
            t.drop_table(id).map_err(EngineError::from)?;
        }
        t.delete_meta(&catalog::relation_key(&entry.qualified()));
        Ok(())
    })
}

/// The existing relations a query names (CTE names that are not relations
/// are skipped), as the session resolves them now.
fn relations_named(
    session: &Session,
    query: &datafusion::sql::sqlparser::ast::Query,
) -> Result<Vec<QualifiedName>, EngineError> {
    let mut names = Vec::new();
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        names.push(name.clone());
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut found: Vec<QualifiedName> = Vec::new();
    for name in &names {
        let Ok(qualified) = resolve_name(session, name) else {
            continue;
        };
        if let Some(entry) = find_relation(session, &qualified)? {
            let qualified = entry.qualified();
            if !found.contains(&qualified) {
                found.push(qualified);
            }
        }
    }
    Ok(found)
}

/// Views and dynamic tables that read `name`.
pub(crate) fn dependents(
    session: &Session,
    name: &QualifiedName,
) -> Result<Vec<RelationEntry>, EngineError> {
    let all: Vec<RelationEntry> = session
        .shared
        .with_txn(|t| catalog::list::<RelationEntry>(t, "rel/"))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    Ok(all
        .into_iter()
        .filter(|r| match &r.kind {
            RelationKind::DynamicTable(def) => def.sources.contains(name),
            RelationKind::View { reads, .. } => reads.contains(name),
            RelationKind::Table => false,
        })
        .collect())
}

/// Drops a relation that CREATE OR REPLACE is about to replace under the
/// same name. Views read whatever has the name when they run, so they follow
/// the replacement; dynamic tables keep change feeds of the old table, so
/// they refuse it (2BP01), as DROP does.
pub(crate) fn drop_for_replace(
    session: &Session,
    entry: &RelationEntry,
) -> Result<(), EngineError> {
    let deps: Vec<RelationEntry> = dependents(session, &entry.qualified())?
        .into_iter()
        .filter(|d| d.dynamic().is_some())
        .collect();
    if !deps.is_empty() {
        return Err(EngineError::new(
            "2BP01",
            format!(
                "cannot replace {} because other objects depend on it: {}; drop them first",
                entry.name,
                describe_dependents(&deps)
            ),
        ));
    }
    drop_relation(session, entry, false)
}

/// What a relation is, as messages name it.
fn kind_name(kind: &RelationKind) -> &'static str {
    match kind {
        RelationKind::Table => "table",
        RelationKind::View { .. } => "view",
        RelationKind::DynamicTable(_) => "dynamic table",
    }
}

/// `view v, dynamic table d`: the dependents named in an error.
fn describe_dependents(deps: &[RelationEntry]) -> String {
    deps.iter()
        .map(|d| format!("{} {}", kind_name(&d.kind), d.qualified()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Drops a relation, refusing (2BP01) when views or dynamic tables depend
/// on it unless CASCADE, in which case the dependents go too.
pub(crate) fn drop_with_dependents(
    session: &Session,
    entry: &RelationEntry,
    cascade: bool,
) -> Result<(), EngineError> {
    let deps = dependents(session, &entry.qualified())?;
    if !deps.is_empty() && !cascade {
        return Err(EngineError::new(
            "2BP01",
            format!(
                "cannot drop {} {} because other objects depend on it: {}; use DROP … CASCADE to drop them too",
                kind_name(&entry.kind),
                entry.name,
                describe_dependents(&deps)
            ),
        ));
    }
    for dep in &deps {
        // A dependent may already be gone as a dependent of another one.
        if find_relation(session, &dep.qualified())?.is_some() {
            drop_with_dependents(session, dep, true)?;
        }
    }
    drop_relation(session, entry, cascade)
}

fn drop_objects(
    session: &mut Session,
    object_type: ObjectType,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<QueryOutput, EngineError> {
    let tag = match object_type {
        ObjectType::Table => "DROP TABLE",
        ObjectType::View => "DROP VIEW",
        ObjectType::Schema => "DROP SCHEMA",
        ObjectType::Database => "DROP DATABASE",
        other => {
            return Err(EngineError::new(
                "0A000",
                format!("DROP {other} is not supported"),
            ))
        }
    };
    for name in names {
        match object_type {
            ObjectType::Table | ObjectType::View => {
                let qualified = resolve_name(session, name)?;
                let Some(entry) = find_relation(session, &qualified)? else {
                    if if_exists {
                        continue;
                    }
                    return Err(EngineError::new(
                        "42P01",
                        format!(
                            "{} \"{}\" does not exist",
                            if object_type == ObjectType::View {
                                "view"
                            } else {
                                "table"
                            },
                            qualified.name
                        ),
                    ));
                };
                let kind_ok = matches!(
                    (&entry.kind, object_type),
                    (RelationKind::Table, ObjectType::Table)
                        | (RelationKind::View { .. }, ObjectType::View)
                );
                if !kind_ok {
                    let what = match entry.kind {
                        RelationKind::Table => "a table",
                        RelationKind::View { .. } => "a view",
                        RelationKind::DynamicTable(_) => "a dynamic table (use DROP DYNAMIC TABLE)",
                    };
                    return Err(EngineError::new(
                        "42809",
                        format!("\"{}\" is {what}", entry.name),
                    ));
                }
                crate::privileges::require_owner(session, &entry)?;
                drop_with_dependents(session, &entry, cascade)?;
            }
            ObjectType::Schema => {
                let p = parts(name);
                let (database, schema) = match p.as_slice() {
                    [s] => (session.database.clone(), s.clone()),
                    [d, s] => (d.clone(), s.clone()),
                    _ => return Err(EngineError::new("42601", "invalid schema name")),
                };
                drop_schema(session, &database, &schema, if_exists, cascade)?;
            }
            ObjectType::Database => {
                drop_database(session, &parts(name).join("."), if_exists, cascade)?;
            }
            _ => {}
        }
    }
    Ok(command(tag, None))
}

fn create_schema(
    session: &Session,
    database: &str,
    schema: &str,
    if_not_exists: bool,
) -> Result<QueryOutput, EngineError> {
    // Schemas and databases have no owners yet: only superusers manage them.
    crate::privileges::require_superuser(
        session,
        &format!("permission denied for database {database}"),
    )?;
    txn_mut(session, |t| {
        if t.get_meta(&catalog::database_key(database)).is_none() {
            return Err(EngineError::new(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ));
        }
        if t.get_meta(&catalog::schema_key(database, schema)).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(EngineError::new(
                "42P06",
                format!("schema \"{schema}\" already exists"),
            ));
        }
        catalog::put(
            t,
            &catalog::schema_key(database, schema),
            &SchemaEntry {
                database: database.to_string(),
                name: schema.to_string(),
                created_micros: now_micros(),
            },
        );
        Ok(())
    })?;
    Ok(command("CREATE SCHEMA", None))
}

/// CREATE DATABASE: the database and its `public` schema.
pub(crate) fn create_database(
    session: &Session,
    database: &str,
    if_not_exists: bool,
) -> Result<QueryOutput, EngineError> {
    crate::privileges::require_superuser(session, "permission denied to create database")?;
    txn_mut(session, |t| {
        if t.get_meta(&catalog::database_key(database)).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(EngineError::new(
                "42P04",
                format!("database \"{database}\" already exists"),
            ));
        }
        catalog::put(
            t,
            &catalog::database_key(database),
            &DatabaseEntry {
                name: database.to_string(),
                created_micros: now_micros(),
            },
        );
        catalog::put(
            t,
            &catalog::schema_key(database, "public"),
            &SchemaEntry {
                database: database.to_string(),
                name: "public".into(),
                created_micros: now_micros(),
            },
        );
        Ok(())
    })?;
    Ok(command("CREATE DATABASE", None))
}

fn drop_schema(
    session: &Session,
    database: &str,
    schema: &str,
    if_exists: bool,
    cascade: bool,
) -> Result<(), EngineError> {
    let exists = session
        .shared
        .with_txn(|t| t.get_meta(&catalog::schema_key(database, schema)).is_some())
        .map_err(map_df_error)?;
    if !exists {
        if if_exists {
            return Ok(());
        }
        return Err(EngineError::new(
            "3F000",
            format!("schema \"{schema}\" does not exist"),
        ));
    }
    crate::privileges::require_superuser(session, &format!("must be owner of schema {schema}"))?;
    let relations: Vec<RelationEntry> = session
        .shared
        .with_txn(|t| catalog::list(t, &catalog::relation_prefix(database, Some(schema))))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    let models = session
        .shared
        .with_txn(|t| t.scan_meta(&catalog::model_prefix(database, Some(schema))))
        .map_err(map_df_error)?;
    if (!relations.is_empty() || !models.is_empty()) && !cascade {
        return Err(EngineError::new(
            "2BP01",
            format!("cannot drop schema {schema} because other objects depend on it; use CASCADE"),
        ));
    }
    for r in &relations {
        // A relation may already be gone as a dependent of an earlier one.
        if find_relation(session, &r.qualified())?.is_some() {
            drop_with_dependents(session, r, true)?;
        }
    }
    txn_mut(session, |t| {
        for (key, _) in &models {
            t.delete_meta(key);
        }
        t.delete_meta(&catalog::schema_key(database, schema));
        Ok(())
    })
}

/// DROP DATABASE.
pub(crate) fn drop_database(
    session: &Session,
    database: &str,
    if_exists: bool,
    cascade: bool,
) -> Result<(), EngineError> {
    if database == session.database {
        return Err(EngineError::new(
            "55006",
            "cannot drop the currently open database",
        ));
    }
    let exists = session
        .shared
        .with_txn(|t| t.get_meta(&catalog::database_key(database)).is_some())
        .map_err(map_df_error)?;
    if !exists {
        if if_exists {
            return Ok(());
        }
        return Err(EngineError::new(
            "3D000",
            format!("database \"{database}\" does not exist"),
        ));
    }
    crate::privileges::require_superuser(
        session,
        &format!("must be owner of database {database}"),
    )?;
    let schemas: Vec<SchemaEntry> = session
        .shared
        .with_txn(|t| catalog::list(t, &catalog::schema_prefix(database)))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    for schema in schemas {
        // Postgres drops a database with everything in it.
        let _ = cascade;
        drop_schema(session, database, &schema.name, true, true)?;
    }
    txn_mut(session, |t| {
        t.delete_meta(&catalog::database_key(database));
        Ok(())
    })
}

async fn alter_table(
    session: &mut Session,
    name: &ObjectName,
    operations: &[AlterTableOperation],
) -> Result<QueryOutput, EngineError> {
    let qualified = resolve_name(session, name)?;
    let mut entry = lookup_relation(session, &qualified)?;
    crate::privileges::require_owner(session, &entry)?;
    for operation in operations {
        match operation {
            AlterTableOperation::AddColumn {
                column_def,
                if_not_exists,
                ..
            } => {
                let Some(table_id) = entry.table_id else {
                    return Err(EngineError::new("42809", "cannot add a column to a view"));
                };
                if !matches!(entry.kind, RelationKind::Table) {
                    return Err(EngineError::new(
                        "42809",
                        "cannot add a column to a dynamic table; redefine it with CREATE OR REPLACE",
                    ));
                }
                let column_name = ident(&column_def.name);
                let schema = session
                    .shared
                    .with_txn(|t| t.table_schema(table_id))
                    .map_err(map_df_error)?
                    .map_err(EngineError::from)?;
                if schema.fields().iter().any(|f| *f.name() == column_name) {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(EngineError::new(
                        "42701",
                        format!(
                            "column \"{column_name}\" of relation \"{}\" already exists",
                            entry.name
                        ),
                    ));
                }
                let mut nullable = true;
                let mut info = ColumnInfo::default();
                for option in &column_def.options {
                    match &option.option {
                        ColumnOption::NotNull => nullable = false,
                        ColumnOption::Default(expr) => info.default_sql = Some(expr.to_string()),
                        ColumnOption::PrimaryKey(_)
                        | ColumnOption::Unique(_)
                        | ColumnOption::ForeignKey(_)
                        | ColumnOption::Check(_) => return Err(EngineError::new(
                            "0A000",
                            "constraints on a column added by ALTER TABLE are not supported yet",
                        )),
                        ColumnOption::Null | ColumnOption::Comment(_) => {}
                        other => return Err(unsupported_column_option(other)),
                    }
                }
                let field = sql_type_to_field(&column_name, &column_def.data_type, true)?;
                let default = match &info.default_sql {
                    Some(sql) => evaluate_default(session, sql, &field, 1).await?,
                    None => crate::dml::null_column(&field, 1),
                };
                if !nullable && default.null_count() > 0 {
                    return Err(EngineError::new(
                        "23502",
                        format!("column \"{column_name}\" contains null values"),
                    ));
                }
                let field = field.with_nullable(nullable);
                entry.columns.insert(column_name, info);
                let stored_entry = entry.clone();
                txn_mut(session, |t| {
                    t.add_column(table_id, field, default)
                        .map_err(EngineError::from)?;
                    catalog::put(t, &catalog::relation_key(&qualified), &stored_entry);
                    Ok(())
                })?;
            }
            AlterTableOperation::RenameTable { table_name } => {
                let new_name = match table_name {
                    datafusion::sql::sqlparser::ast::RenameTableNameKind::As(n)
                    | datafusion::sql::sqlparser::ast::RenameTableNameKind::To(n) => n,
                };
                let p = parts(new_name);
                let target = QualifiedName {
                    database: qualified.database.clone(),
                    schema: if p.len() >= 2 {
                        p[p.len() - 2].clone()
                    } else {
                        qualified.schema.clone()
                    },
                    name: p.last().cloned().unwrap_or_default(),
                };
                rename_relation(session, &entry, &target)?;
                entry = lookup_relation(session, &target)?;
            }
            other => {
                return Err(EngineError::new(
                    "0A000",
                    format!("ALTER TABLE {other} is not supported"),
                ))
            }
        }
    }
    Ok(command("ALTER TABLE", None))
}

/// Renames a relation, keeping dynamic tables that read it pointed at it.
pub(crate) fn rename_relation(
    session: &Session,
    entry: &RelationEntry,
    target: &QualifiedName,
) -> Result<(), EngineError> {
    if find_relation(session, target)?.is_some() {
        return Err(already_exists(&target.name));
    }
    let deps = dependents(session, &entry.qualified())?;
    if !deps.is_empty() {
        return Err(EngineError::new(
            "2BP01",
            format!(
                "cannot rename {} because other objects depend on it: {}",
                entry.name,
                describe_dependents(&deps)
            ),
        ));
    }
    let mut renamed = entry.clone();
    renamed.database = target.database.clone();
    renamed.schema = target.schema.clone();
    renamed.name = target.name.clone();
    txn_mut(session, |t| {
        t.delete_meta(&catalog::relation_key(&entry.qualified()));
        catalog::put(t, &catalog::relation_key(target), &renamed);
        Ok(())
    })
}

/// Evaluates a column DEFAULT expression into `n` rows.
///
/// The expression runs as a one-row query so DataFusion's simplifier handles
/// functions such as `now()` that are only valid after simplification.
pub(crate) async fn evaluate_default(
    session: &Session,
    sql: &str,
    field: &Field,
    n: usize,
) -> Result<ArrayRef, EngineError> {
    let batches = session
        .ctx
        .sql(&format!("SELECT {sql}"))
        .await
        .map_err(map_df_error)?
        .collect()
        .await
        .map_err(map_df_error)?;
    let value = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| datafusion::common::ScalarValue::try_from_array(b.column(0), 0))
        .transpose()
        .map_err(map_df_error)?
        .unwrap_or(datafusion::common::ScalarValue::Null);
    let array = value.to_array_of_size(n).map_err(map_df_error)?;
    datafusion::arrow::compute::cast(&array, field.data_type()).map_err(|e| {
        EngineError::new(
            "42804",
            format!(
                "DEFAULT for column \"{}\" has the wrong type: {e}",
                field.name()
            ),
        )
    })
}

/// The DEFAULT (or NULL) column for rows that do not supply it.
pub(crate) async fn default_column(
    session: &Session,
    target: &InsertTarget,
    field: &Field,
    n: usize,
) -> Result<ArrayRef, EngineError> {
    match target
        .relation
        .columns
        .get(field.name())
        .and_then(|c| c.default_sql.clone())
    {
        Some(sql) => evaluate_default(session, &sql, field, n).await,
        None => Ok(crate::dml::null_column(field, n)),
    }
}

/// USE db | USE db.schema | USE SCHEMA s | USE DATABASE d.
pub(crate) fn run_use(session: &mut Session, stmt: &Statement) -> Result<QueryOutput, EngineError> {
    let Statement::Use(u) = stmt else {
        return Err(EngineError::new("XX000", "not USE"));
    };
    match u {
        Use::Object(name) | Use::Database(name) => {
            let p = parts(name);
            match p.as_slice() {
                [db] => use_database(session, Some(db), None),
                [db, schema] => use_database(session, Some(db), Some(schema)),
                _ => Err(EngineError::new("42601", "invalid USE target")),
            }
        }
        Use::Schema(name) => {
            let p = parts(name);
            match p.as_slice() {
                [schema] => use_database(session, None, Some(schema)),
                [db, schema] => use_database(session, Some(db), Some(schema)),
                _ => Err(EngineError::new("42601", "invalid USE target")),
            }
        }
        _ => Err(EngineError::new("0A000", "unsupported USE form")),
    }
}

/// Switches the session's database and/or schema after checking they exist.
pub(crate) fn use_database(
    session: &mut Session,
    database: Option<&String>,
    schema: Option<&String>,
) -> Result<QueryOutput, EngineError> {
    let database = database
        .cloned()
        .unwrap_or_else(|| session.database.clone());
    let check = QualifiedName {
        database: database.clone(),
        schema: schema.cloned().unwrap_or_else(|| "public".into()),
        name: String::new(),
    };
    if schema.is_some() {
        require_schema(session, &check)?;
    } else {
        let exists = session
            .shared
            .with_txn(|t| t.get_meta(&catalog::database_key(&database)).is_some())
            .map_err(map_df_error)?;
        if !exists {
            return Err(EngineError::new(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ));
        }
    }
    if let Some(schema) = schema {
        session.search_path = vec![schema.clone()];
    }
    let schema_now = session.search_path.first().cloned();
    session.switch_database(&database, schema_now.as_deref())?;
    Ok(command("USE", None))
}

/// SHOW TABLES: relations in the current database.
pub(crate) fn show_tables(
    session: &mut Session,
    like: Option<&str>,
    scope: &freshet_sql::ShowScope,
) -> Result<QueryOutput, EngineError> {
    // Without IN, Snowflake lists the current database, every schema.
    let (database, schema) = match scope {
        freshet_sql::ShowScope::Current => (session.database.clone(), None),
        freshet_sql::ShowScope::Database(d) => (ident(d), None),
        freshet_sql::ShowScope::Schema(s) => {
            let parts: Vec<String> = s.0.iter().filter_map(|p| p.as_ident().map(ident)).collect();
            match parts.as_slice() {
                [schema] => (session.database.clone(), Some(schema.clone())),
                [db, schema] => (db.clone(), Some(schema.clone())),
                _ => {
                    return Err(EngineError::new(
                        "42601",
                        format!("invalid schema name {s}"),
                    ))
                }
            }
        }
    };
    let relations: Vec<RelationEntry> = session
        .shared
        .with_txn(|t| catalog::list(t, &catalog::relation_prefix(&database, schema.as_deref())))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    let rows = relations
        .into_iter()
        .filter(|r| matches_like(like, &r.name))
        .map(|r| {
            let kind = match r.kind {
                RelationKind::Table => "table",
                RelationKind::View { .. } => "view",
                RelationKind::DynamicTable(_) => "dynamic table",
            };
            vec![Some(r.schema), Some(r.name), Some(kind.to_string())]
        })
        .collect();
    Ok(text_rows(&["schema_name", "name", "kind"], rows))
}

/// SQL `LIKE`, case-insensitive as in Snowflake's SHOW commands.
fn matches_like(pattern: Option<&str>, name: &str) -> bool {
    pattern
        .is_none_or(|p| crate::registry::like(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()))
}

/// `CHECKPOINT`: superusers only, as in Postgres. The Parquet writing runs on
/// a blocking thread so the compute runtime keeps serving other sessions.
async fn checkpoint(session: &Session) -> Result<QueryOutput, EngineError> {
    crate::users::require_superuser(session, "can run CHECKPOINT")?;
    let store = session.engine.store.clone();
    tokio::task::spawn_blocking(move || store.checkpoint())
        .await
        .map_err(|e| EngineError::new("XX000", format!("checkpoint task failed: {e}")))??;
    Ok(command("CHECKPOINT", None))
}

/// Freshet-specific namespace and user statements.
pub(crate) async fn run_freshet(
    session: &mut Session,
    statement: &FreshetStatement,
) -> Option<Result<QueryOutput, EngineError>> {
    let result = match statement {
        FreshetStatement::CreateDatabase {
            name,
            if_not_exists,
        } => create_database(session, &ident(name), *if_not_exists),
        FreshetStatement::DropDatabase {
            name,
            if_exists,
            cascade,
        } => drop_database(session, &ident(name), *if_exists, *cascade)
            .map(|_| command("DROP DATABASE", None)),
        FreshetStatement::Use { database, schema } => {
            let db = database.as_ref().map(ident);
            let schema = schema.as_ref().map(ident);
            use_database(session, db.as_ref(), schema.as_ref())
        }
        FreshetStatement::ShowDatabases { like } => {
            let dbs: Vec<DatabaseEntry> = match session
                .shared
                .with_txn(|t| catalog::list(t, "db/"))
                .map_err(map_df_error)
            {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => return Some(Err(EngineError::new(e.sqlstate(), e.to_string()))),
                Err(e) => return Some(Err(e)),
            };
            Ok(text_rows(
                &["name"],
                dbs.into_iter()
                    .filter(|d| matches_like(like.as_deref(), &d.name))
                    .map(|d| vec![Some(d.name)])
                    .collect(),
            ))
        }
        FreshetStatement::ShowSchemas { like, database } => {
            let database = database
                .as_ref()
                .map_or_else(|| session.database.clone(), ident);
            let schemas: Vec<SchemaEntry> = match session
                .shared
                .with_txn(|t| catalog::list(t, &catalog::schema_prefix(&database)))
                .map_err(map_df_error)
            {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => return Some(Err(EngineError::new(e.sqlstate(), e.to_string()))),
                Err(e) => return Some(Err(e)),
            };
            Ok(text_rows(
                &["database_name", "name"],
                schemas
                    .into_iter()
                    .filter(|s| matches_like(like.as_deref(), &s.name))
                    .map(|s| vec![Some(s.database), Some(s.name)])
                    .collect(),
            ))
        }
        FreshetStatement::CreateUser {
            name,
            password,
            superuser,
            login,
        } => crate::users::create_user(
            session,
            &ident(name),
            password.as_deref(),
            *superuser,
            *login,
        ),
        FreshetStatement::AlterUser {
            name,
            password,
            superuser,
            login,
        } => crate::users::alter_user(
            session,
            &ident(name),
            password.as_deref(),
            *superuser,
            *login,
        ),
        FreshetStatement::RoleMembership {
            grant,
            roles,
            members,
            admin_option,
        } => crate::users::role_membership(
            session,
            *grant,
            &roles.iter().map(ident).collect::<Vec<_>>(),
            members,
            *admin_option,
        ),
        FreshetStatement::AlterUserSetting { name, change } => {
            crate::users::alter_user_setting(session, &ident(name), change)
        }
        FreshetStatement::ShowTables { like, scope } => {
            show_tables(session, like.as_deref(), scope)
        }
        FreshetStatement::DropUser { name, if_exists } => {
            crate::users::drop_user(session, &ident(name), *if_exists)
        }
        FreshetStatement::AlterOwner {
            object: object @ (OwnedObject::View | OwnedObject::DynamicTable),
            name,
            if_exists,
            owner,
        } => {
            crate::privileges::alter_relation_owner(session, name, *if_exists, owner, Some(*object))
        }
        FreshetStatement::Checkpoint => checkpoint(session).await,
        _ => return None,
    };
    Some(result)
}

/// A column option Freshet does not carry out. Accepting it would make a
/// table behave otherwise than declared: an identity or generated column
/// would stay NULL, a collation would not order the column.
fn unsupported_column_option(option: &ColumnOption) -> EngineError {
    let what = match option {
        ColumnOption::Generated { .. } | ColumnOption::Identity(_) => {
            "identity and generated columns are not supported yet".to_owned()
        }
        other => format!("column option {other} is not supported"),
    };
    EngineError::new("0A000", what)
}
