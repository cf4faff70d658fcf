//! PRIMARY KEY and UNIQUE constraints: reading them from CREATE TABLE,
//! naming them as PostgreSQL does, and declaring them to the storage layer,
//! whose unique indexes enforce them on every write path (INSERT, COPY,
//! UPDATE, INSERT … SELECT) and at commit against concurrent transactions.

use datafusion::sql::sqlparser::ast::{
    Assignment, ColumnDef, ColumnOption, ConflictTarget, Expr, IndexColumn, NullsDistinctOption,
    OnConflictAction, OnInsert, TableConstraint,
};

use freshet_catalog::{self as catalog, KeyConstraint};
use freshet_storage::UniqueIndexDef;

use crate::ddl::txn_mut;
use crate::dml::InsertTarget;
use crate::names::ident;
use crate::session::Session;
use crate::EngineError;

/// PostgreSQL's limit on identifier length (NAMEDATALEN - 1).
pub(crate) const MAX_NAME_BYTES: usize = 63;

/// The key constraints of a CREATE TABLE, column-level and table-level, in
/// declaration order, with PostgreSQL's generated names. A UNIQUE constraint
/// over exactly the columns of an earlier key is dropped, as PostgreSQL does.
pub(crate) fn table_keys(
    table: &str,
    columns: &[ColumnDef],
    constraints: &[TableConstraint],
) -> Result<Vec<KeyConstraint>, EngineError> {
    // (explicit name, primary, columns)
    let mut declared: Vec<(Option<String>, bool, Vec<String>)> = Vec::new();
    for column in columns {
        let column_name = ident(&column.name);
        for option in &column.options {
            match &option.option {
                ColumnOption::PrimaryKey(pk) => {
                    let name = option.name.as_ref().or(pk.name.as_ref()).map(ident);
                    declared.push((name, true, vec![column_name.clone()]));
                }
                ColumnOption::Unique(u) => {
                    refuse_nulls_not_distinct(&u.nulls_distinct)?;
                    let name = option.name.as_ref().or(u.name.as_ref()).map(ident);
                    declared.push((name, false, vec![column_name.clone()]));
                }
                _ => {}
            }
        }
    }
    for constraint in constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                declared.push((pk.name.as_ref().map(ident), true, key_columns(&pk.columns)?));
            }
            TableConstraint::Unique(u) => {
                refuse_nulls_not_distinct(&u.nulls_distinct)?;
                declared.push((u.name.as_ref().map(ident), false, key_columns(&u.columns)?));
            }
            TableConstraint::ForeignKey(_) | TableConstraint::Check(_) => {
                return Err(EngineError::new(
                    "0A000",
                    "FOREIGN KEY and CHECK constraints are not supported yet",
                ))
            }
            other => {
                return Err(EngineError::new(
                    "0A000",
                    format!("table constraint {other} is not supported"),
                ))
            }
        }
    }
    if declared.iter().filter(|(_, primary, _)| *primary).count() > 1 {
        return Err(EngineError::new(
            "42P16",
            format!("multiple primary keys for table \"{table}\" are not allowed"),
        ));
    }
    // The primary key comes first, as PostgreSQL builds its index first.
    declared.sort_by_key(|(_, primary, _)| !*primary);
    let mut keys: Vec<KeyConstraint> = Vec::new();
    for (name, primary, cols) in declared {
        if let Some(dup) = cols
            .iter()
            .enumerate()
            .find(|(i, c)| cols[..*i].contains(c))
        {
            return Err(EngineError::new(
                "42701",
                format!(
                    "column \"{}\" appears twice in {} constraint",
                    dup.1,
                    if primary { "primary key" } else { "unique" }
                ),
            ));
        }
        if keys.iter().any(|k| k.columns == cols) {
            continue;
        }
        let name = match name {
            Some(n) => n,
            None => {
                let base = if primary {
                    format!("{}_pkey", truncate(table, MAX_NAME_BYTES - 5))
                } else {
                    let joined = cols.join("_");
                    format!(
                        "{}_{}_key",
                        truncate(table, 29),
                        truncate(&joined, MAX_NAME_BYTES - 5 - table.len().min(29))
                    )
                };
                let mut candidate = base.clone();
                let mut n = 1;
                while keys.iter().any(|k| k.name == candidate) {
                    candidate = format!("{base}{n}");
                    n += 1;
                }
                candidate
            }
        };
        if keys.iter().any(|k| k.name == name) {
            return Err(EngineError::new(
                "42P07",
                format!("relation \"{name}\" already exists"),
            ));
        }
        keys.push(KeyConstraint {
            name,
            primary,
            columns: cols,
        });
    }
    Ok(keys)
}

/// `s` shortened to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn refuse_nulls_not_distinct(option: &NullsDistinctOption) -> Result<(), EngineError> {
    match option {
        NullsDistinctOption::NotDistinct => Err(EngineError::new(
            "0A000",
            "UNIQUE NULLS NOT DISTINCT is not supported yet",
        )),
        _ => Ok(()),
    }
}

fn key_columns(columns: &[IndexColumn]) -> Result<Vec<String>, EngineError> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => Ok(ident(i)),
            other => Err(EngineError::new(
                "0A000",
                format!("expression {other} in a key is not supported"),
            )),
        })
        .collect()
}

/// Declares `keys` on a table just created in the session's transaction:
/// records them in its catalog entry and creates the storage unique indexes
/// that enforce them.
pub(crate) fn declare_keys(
    session: &Session,
    target: &InsertTarget,
    keys: Vec<KeyConstraint>,
) -> Result<(), EngineError> {
    let mut defs = Vec::with_capacity(keys.len());
    for key in &keys {
        let columns = key
            .columns
            .iter()
            .map(|c| {
                target
                    .schema
                    .fields()
                    .iter()
                    .position(|f| f.name() == c)
                    .ok_or_else(|| {
                        EngineError::new(
                            "42703",
                            format!("column \"{c}\" named in key does not exist"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        defs.push(UniqueIndexDef {
            name: key.name.clone(),
            columns,
        });
    }
    let mut entry = target.relation.clone();
    entry.constraints = keys;
    txn_mut(session, |t| {
        t.add_unique_indexes(target.table_id, defs)
            .map_err(EngineError::from)?;
        catalog::put(t, &catalog::relation_key(&target.name), &entry);
        Ok(())
    })
}

/// What an INSERT's `ON CONFLICT` clause asks for.
#[derive(Debug, Clone)]
pub(crate) enum OnConflict {
    /// `DO NOTHING`: rows whose key is taken are skipped. The position of
    /// the arbiter unique index among the table's (`None`: any of them).
    Nothing(Option<usize>),
    /// `DO UPDATE SET … [WHERE …]`: the row holding a taken key of the
    /// arbiter index at `index` is updated instead.
    Update {
        index: usize,
        assignments: Vec<Assignment>,
        selection: Option<Box<Expr>>,
    },
}

/// Resolves an INSERT's `ON CONFLICT` clause (`None` without one).
pub(crate) fn on_conflict(
    target: &InsertTarget,
    on: Option<&OnInsert>,
) -> Result<Option<OnConflict>, EngineError> {
    let conflict = match on {
        None => return Ok(None),
        Some(OnInsert::OnConflict(c)) => c,
        Some(_) => {
            return Err(EngineError::new(
                "0A000",
                "ON DUPLICATE KEY UPDATE is not supported; use ON CONFLICT",
            ))
        }
    };
    if matches!(conflict.action, OnConflictAction::DoUpdate(_))
        && conflict.conflict_target.is_none()
    {
        return Err(EngineError::new(
            "42601",
            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
        ));
    }
    let keys = crate::indexes::arbiters(&target.relation);
    let index = match &conflict.conflict_target {
        None => None,
        Some(ConflictTarget::Columns(columns)) => {
            let mut wanted: Vec<String> = columns.iter().map(ident).collect();
            wanted.sort();
            let found = keys.iter().position(|k| {
                let mut have = k.columns.to_vec();
                have.sort();
                have == wanted
            });
            match found {
                Some(i) => Some(i),
                None => {
                    return Err(EngineError::new(
                        "42P10",
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    ))
                }
            }
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let name = crate::names::parts(name).pop().unwrap_or_default();
            match keys.iter().position(|k| k.constraint && k.name == name) {
                Some(i) => Some(i),
                None => {
                    return Err(EngineError::new(
                        "42704",
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            target.name.name
                        ),
                    ))
                }
            }
        }
    };
    Ok(Some(match &conflict.action {
        OnConflictAction::DoNothing => OnConflict::Nothing(index),
        OnConflictAction::DoUpdate(update) => OnConflict::Update {
            // A conflict target was required above, so an index was found.
            index: index.unwrap_or_default(),
            assignments: update.assignments.clone(),
            selection: update.selection.clone().map(Box::new),
        },
    }))
}
