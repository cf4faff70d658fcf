//! The relations a session's `pg_class` reads named, by OID.
//!
//! The `pg_catalog` crate hands out relation OIDs when `pg_class` is read
//! and keeps them for the session. Functions that take a relation's OID
//! (the size functions, `obj_description`) need the relation back:
//! [`RelationOids`] records, at every `pg_class` read (`'t'::regclass` is
//! resolved through `pg_class` too), which relation or index each OID
//! named.

use std::collections::HashMap;

use datafusion::common::{DataFusionError, Result as DfResult};
use parking_lot::Mutex;

use freshet_catalog::{self as catalog, QualifiedName, RelationEntry};

use crate::provider::SessionShared;

/// What an OID of a `pg_class` read named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// A table, view or dynamic table (schema, name).
    Relation(String, String),
    /// An index.
    Index,
}

/// The relations the session's `pg_class` reads named, by OID.
#[derive(Debug, Default)]
pub(crate) struct RelationOids {
    named: Mutex<HashMap<i32, Named>>,
}

impl RelationOids {
    /// Records that `oid` is the relation `name` in schema `schema`.
    pub(crate) fn note_relation(&self, oid: i32, schema: &str, name: &str) {
        let mut named = self.named.lock();
        let fresh = match named.get(&oid) {
            Some(Named::Relation(s, n)) => s != schema || n != name,
            _ => true,
        };
        if fresh {
            named.insert(oid, Named::Relation(schema.to_string(), name.to_string()));
        }
    }

    /// Records that `oid` is an index.
    pub(crate) fn note_index(&self, oid: i32) {
        self.named.lock().insert(oid, Named::Index);
    }

    /// The catalog entry of the relation `oid` names in `database`, if the
    /// OID names a relation the catalog stores.
    pub(crate) fn entry(
        &self,
        shared: &SessionShared,
        database: &str,
        oid: i32,
    ) -> DfResult<Option<RelationEntry>> {
        let Some(Named::Relation(schema, name)) = self.named(oid) else {
            return Ok(None);
        };
        let key = catalog::relation_key(&QualifiedName {
            database: database.to_string(),
            schema,
            name,
        });
        shared.with_txn(|t| {
            catalog::get(t, &key).map_err(|e| DataFusionError::Execution(e.to_string()))
        })?
    }

    /// The OID the session's `pg_class` reads gave the relation `name` of
    /// `schema`, if one has listed it.
    pub(crate) fn oid_of(&self, schema: &str, name: &str) -> Option<i32> {
        self.named
            .lock()
            .iter()
            .find_map(|(oid, named)| match named {
                Named::Relation(s, n) if s == schema && n == name => Some(*oid),
                _ => None,
            })
    }

    /// What `oid` named when the session last read `pg_class`.
    pub(crate) fn named(&self, oid: i32) -> Option<Named> {
        self.named.lock().get(&oid).cloned()
    }
}
