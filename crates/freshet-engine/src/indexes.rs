//! CREATE UNIQUE INDEX and DROP INDEX.
//!
//! Migrations and ORMs declare unique keys with `CREATE UNIQUE INDEX` as
//! often as with constraints. Such an index is a storage unique index like
//! a PRIMARY KEY's or UNIQUE constraint's
//! ([`freshet_storage::Transaction::create_unique_index`]): built over the
//! table's rows when the statement's transaction commits (23505 `could not
//! create unique index` if two rows share a key), enforced on every write
//! path from then on, used by key lookups, an `ON CONFLICT (columns)`
//! arbiter, and dropped by `DROP INDEX`.
//!
//! Freshet has no non-unique indexes: `CREATE INDEX` without `UNIQUE` is
//! refused with 0A000 rather than accepted and silently not built, and so
//! are index forms whose meaning a unique key over columns cannot give
//! (expressions, partial indexes, INCLUDE, NULLS NOT DISTINCT, methods
//! other than btree).

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr, ObjectName};

use freshet_catalog::{
    self as catalog, QualifiedName, RelationEntry, RelationKind, UniqueIndexEntry,
};
use freshet_storage::UniqueIndexDef;

use crate::commands::command;
use crate::ddl::txn_mut;
use crate::keys::{truncate, MAX_NAME_BYTES};
use crate::names::{ident, lookup_relation, parts, resolve_name, resolve_parts};
use crate::planning::map_df_error;
use crate::session::Session;
use crate::{EngineError, QueryOutput};

/// A unique key ON CONFLICT can name, in storage order: the table's key
/// constraints, then its unique indexes.
pub(crate) struct Arbiter<'a> {
    pub(crate) name: &'a str,
    pub(crate) columns: &'a [String],
    /// A PRIMARY KEY or UNIQUE constraint (which ON CONSTRAINT can name).
    pub(crate) constraint: bool,
}

/// The table's unique keys in the order of its storage unique indexes.
pub(crate) fn arbiters(entry: &RelationEntry) -> Vec<Arbiter<'_>> {
    let constraints = entry.constraints.iter().map(|k| Arbiter {
        name: &k.name,
        columns: &k.columns,
        constraint: true,
    });
    let indexes = entry.unique_indexes.iter().map(|ix| Arbiter {
        name: &ix.name,
        columns: &ix.columns,
        constraint: false,
    });
    constraints.chain(indexes).collect()
}

/// CREATE UNIQUE INDEX [IF NOT EXISTS] [name] ON table [USING btree] (columns).
pub(crate) fn create_index(
    session: &Session,
    create: &CreateIndex,
) -> Result<QueryOutput, EngineError> {
    refuse_unsupported(create)?;
    let table_name = resolve_name(session, &create.table_name)?;
    let mut entry = lookup_relation(session, &table_name)?;
    crate::privileges::require_owner(session, &entry)?;
    let table_id = match (&entry.kind, entry.table_id) {
        (RelationKind::Table, Some(id)) => id,
        _ => {
            return Err(EngineError::new(
                "42809",
                format!("cannot create index on relation \"{}\"", entry.name),
            ))
        }
    };
    let columns: Vec<String> = create
        .columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) if c.operator_class.is_none() => Ok(ident(i)),
            other => Err(EngineError::new(
                "0A000",
                format!("index key {other} is not supported: a unique index is over columns"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let fields = session
        .shared
        .with_txn(|t| t.table_schema(table_id))
        .map_err(map_df_error)?
        .map_err(EngineError::from)?;
    let positions = columns
        .iter()
        .map(|c| {
            fields
                .fields()
                .iter()
                .position(|f| f.name() == c)
                .ok_or_else(|| EngineError::new("42703", format!("column \"{c}\" does not exist")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let taken = names_in_schema(session, &table_name)?;
    let name = match &create.name {
        Some(name) => {
            let name = parts(name).pop().unwrap_or_default();
            if taken.contains(&name) {
                if create.if_not_exists {
                    return Ok(command("CREATE INDEX", None));
                }
                return Err(EngineError::new(
                    "42P07",
                    format!("relation \"{name}\" already exists"),
                ));
            }
            name
        }
        None => generated_name(&entry.name, &columns, &taken),
    };
    entry.unique_indexes.push(UniqueIndexEntry {
        name: name.clone(),
        columns,
    });
    txn_mut(session, |t| {
        t.create_unique_index(
            table_id,
            UniqueIndexDef {
                name,
                columns: positions,
            },
        )
        .map_err(|e| match e {
            freshet_storage::StorageError::InvalidArgument(_) => EngineError::new(
                "0A000",
                "CREATE UNIQUE INDEX on a table this transaction has already written to is \
                 not supported; create the index before writing, or in its own transaction",
            ),
            other => EngineError::from(other),
        })?;
        catalog::put(t, &catalog::relation_key(&table_name), &entry);
        Ok(())
    })?;
    Ok(command("CREATE INDEX", None))
}

/// DROP INDEX [IF EXISTS] name [, …].
pub(crate) fn drop_indexes(
    session: &Session,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<QueryOutput, EngineError> {
    for name in names {
        let qualified = resolve_parts(session, &parts(name))?;
        let relations = relations_in_schema(session, &qualified)?;
        let owner = relations.into_iter().find_map(|r| {
            if r.constraints.iter().any(|k| k.name == qualified.name) {
                return Some((r, true));
            }
            r.unique_indexes
                .iter()
                .any(|ix| ix.name == qualified.name)
                .then_some((r, false))
        });
        let Some((mut entry, constraint)) = owner else {
            if find_relation_named(session, &qualified)? {
                return Err(EngineError::new(
                    "42809",
                    format!("\"{}\" is not an index", qualified.name),
                ));
            }
            if if_exists {
                continue;
            }
            return Err(EngineError::new(
                "42704",
                format!("index \"{}\" does not exist", qualified.name),
            ));
        };
        if constraint {
            return Err(EngineError::new(
                "2BP01",
                format!(
                    "cannot drop index {0} because constraint {0} on table {1} requires it",
                    qualified.name, entry.name
                ),
            ));
        }
        crate::privileges::require_owner_of(session, &entry.acl, "index", &qualified.name)?;
        let Some(table_id) = entry.table_id else {
            return Err(EngineError::new(
                "XX000",
                format!("table \"{}\" has no storage", entry.name),
            ));
        };
        entry.unique_indexes.retain(|ix| ix.name != qualified.name);
        txn_mut(session, |t| {
            t.drop_unique_index(table_id, &qualified.name)
                .map_err(EngineError::from)?;
            catalog::put(t, &catalog::relation_key(&entry.qualified()), &entry);
            Ok(())
        })?;
    }
    Ok(command("DROP INDEX", None))
}

fn refuse_unsupported(create: &CreateIndex) -> Result<(), EngineError> {
    let refuse = |what: &str| {
        Err(EngineError::new(
            "0A000",
            format!("{what} is not supported"),
        ))
    };
    if !create.unique {
        return Err(EngineError::new(
            "0A000",
            "CREATE INDEX is supported only for unique indexes (CREATE UNIQUE INDEX): \
             Freshet has no non-unique indexes yet",
        ));
    }
    if create.concurrently {
        return refuse("CREATE INDEX CONCURRENTLY");
    }
    if let Some(using) = &create.using {
        if !using.to_string().eq_ignore_ascii_case("btree") {
            return refuse(&format!("index method {using}"));
        }
    }
    if !create.include.is_empty() {
        return refuse("INCLUDE in an index");
    }
    if create.nulls_distinct == Some(false) {
        return refuse("NULLS NOT DISTINCT");
    }
    if create.predicate.is_some() {
        return refuse("a partial index (CREATE INDEX … WHERE)");
    }
    if !create.with.is_empty() || !create.index_options.is_empty() {
        return refuse("index storage parameters");
    }
    if !create.alter_options.is_empty() {
        return refuse("index options");
    }
    Ok(())
}

/// The relations of `name`'s schema.
fn relations_in_schema(
    session: &Session,
    name: &QualifiedName,
) -> Result<Vec<RelationEntry>, EngineError> {
    session
        .shared
        .with_txn(|t| {
            catalog::list::<RelationEntry>(
                t,
                &catalog::relation_prefix(&name.database, Some(&name.schema)),
            )
        })
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))
}

fn find_relation_named(session: &Session, name: &QualifiedName) -> Result<bool, EngineError> {
    Ok(crate::names::find_relation(session, name)?.is_some())
}

/// Names taken in the schema of `name`: relations and their indexes (a key
/// constraint's index has the constraint's name), as PostgreSQL's relation
/// namespace holds both.
fn names_in_schema(session: &Session, name: &QualifiedName) -> Result<Vec<String>, EngineError> {
    let mut taken = Vec::new();
    for r in relations_in_schema(session, name)? {
        taken.extend(r.constraints.iter().map(|k| k.name.clone()));
        taken.extend(r.unique_indexes.iter().map(|ix| ix.name.clone()));
        taken.push(r.name);
    }
    Ok(taken)
}

/// PostgreSQL's name for an unnamed index: `table_col1_col2_idx`, shortened
/// to the identifier limit, with a number appended until it is free.
fn generated_name(table: &str, columns: &[String], taken: &[String]) -> String {
    let joined = columns.join("_");
    let base = format!(
        "{}_{}_idx",
        truncate(table, 29),
        truncate(&joined, MAX_NAME_BYTES - 5 - table.len().min(29))
    );
    let mut candidate = base.clone();
    let mut n = 1;
    while taken.contains(&candidate) {
        candidate = format!("{base}{n}");
        n += 1;
    }
    candidate
}
