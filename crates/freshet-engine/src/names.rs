//! Name resolution: turning `[db.][schema.]name` into a catalog key.
//!
//! Unquoted identifiers are folded to lower case (Postgres' rule), which is
//! what makes `LOGINS_RAW` and `logins_raw` the same table; quoted ones keep
//! their spelling.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use freshet_catalog::{self as catalog, QualifiedName, RelationEntry};

use crate::planning::map_df_error;
use crate::session::Session;
use crate::EngineError;

/// Normalizes one identifier.
pub(crate) fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// The parts of an object name, normalized.
pub(crate) fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => ident(i),
            None => p.to_string(),
        })
        .collect()
}

/// Resolves a 1–3 part name against the session's database and search path.
pub(crate) fn resolve_name(
    session: &Session,
    name: &ObjectName,
) -> Result<QualifiedName, EngineError> {
    resolve_parts(session, &parts(name))
}

/// Resolves already-normalized name parts.
pub(crate) fn resolve_parts(
    session: &Session,
    parts: &[String],
) -> Result<QualifiedName, EngineError> {
    let default_schema = session
        .search_path
        .first()
        .cloned()
        .unwrap_or_else(|| "public".into());
    match parts {
        [name] => Ok(QualifiedName {
            database: session.database.clone(),
            schema: default_schema,
            name: name.clone(),
        }),
        [schema, name] => Ok(QualifiedName {
            database: session.database.clone(),
            schema: schema.clone(),
            name: name.clone(),
        }),
        [db, schema, name] => Ok(QualifiedName {
            database: db.clone(),
            schema: schema.clone(),
            name: name.clone(),
        }),
        _ => Err(EngineError::new(
            "42601",
            format!(
                "improper qualified name (too many dotted names): {}",
                parts.join(".")
            ),
        )),
    }
}

/// Looks a relation up in the session's transaction.
pub(crate) fn find_relation(
    session: &Session,
    name: &QualifiedName,
) -> Result<Option<RelationEntry>, EngineError> {
    session
        .shared
        .with_txn(|t| catalog::get::<RelationEntry>(t, &catalog::relation_key(name)))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))
}

/// Looks a relation up, failing with 42P01 when it does not exist.
pub(crate) fn lookup_relation(
    session: &Session,
    name: &QualifiedName,
) -> Result<RelationEntry, EngineError> {
    find_relation(session, name)?.ok_or_else(|| {
        EngineError::new(
            "42P01",
            format!("relation \"{}\" does not exist", name.name),
        )
    })
}

/// Fails with 3F000 unless the schema exists.
pub(crate) fn require_schema(session: &Session, name: &QualifiedName) -> Result<(), EngineError> {
    let exists = session
        .shared
        .with_txn(|t| {
            t.get_meta(&catalog::schema_key(&name.database, &name.schema))
                .is_some()
        })
        .map_err(map_df_error)?;
    if exists {
        Ok(())
    } else {
        let db_exists = session
            .shared
            .with_txn(|t| t.get_meta(&catalog::database_key(&name.database)).is_some())
            .map_err(map_df_error)?;
        if db_exists {
            Err(EngineError::new(
                "3F000",
                format!("schema \"{}\" does not exist", name.schema),
            ))
        } else {
            Err(EngineError::new(
                "3D000",
                format!("database \"{}\" does not exist", name.database),
            ))
        }
    }
}
