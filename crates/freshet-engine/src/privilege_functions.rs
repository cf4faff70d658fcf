//! `has_table_privilege`, answered from Freshet's privileges.
//!
//! datafusion-pg-catalog's `has_table_privilege` answers true for any
//! role, any relation and any privilege, a role that does not exist
//! included: a tool asking whether a user may read a table was told yes
//! when the read would fail with 42501. [`register`] replaces it with
//! PostgreSQL's answer: `has_table_privilege([role,] table, privileges)`
//! is true when the role (the session's user if omitted) is a superuser,
//! or holds any of the comma-separated `privileges` (each optionally
//! `WITH GRANT OPTION`, which only owners and superusers have here) on the
//! table, itself or through a role it is a member of, as
//! [`crate::privileges`] checks them. The table is a name, read with the
//! session's search path; an unknown role is 42704, an unknown table
//! 42P01 and an unknown privilege 22023, as in PostgreSQL. A table may be
//! given by the OID the session's `pg_class` gave it (NULL for an OID that
//! names none, as in PostgreSQL); a role given by OID is refused (0A000)
//! rather than answered wrongly.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::Ident;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use freshet_catalog::{self as catalog, QualifiedName, RelationEntry, TablePrivilege};

use crate::provider::SessionShared;
use crate::relation_oids::{Named, RelationOids};
use crate::EngineError;

/// Registers `has_table_privilege` for the session `shared` in `database`,
/// in place of the crate's.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    oids: Arc<RelationOids>,
    shared: &Arc<SessionShared>,
    database: &str,
) {
    ctx.register_udf(ScalarUDF::new_from_impl(HasTablePrivilege {
        oids,
        shared: shared.clone(),
        database: database.to_string(),
        signature: Signature::variadic_any(Volatility::Stable),
    }));
}

#[derive(Debug)]
struct HasTablePrivilege {
    /// What the session's `pg_class` reads named, for a table given by OID.
    oids: Arc<RelationOids>,
    shared: Arc<SessionShared>,
    database: String,
    signature: Signature,
}

impl PartialEq for HasTablePrivilege {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for HasTablePrivilege {}
impl std::hash::Hash for HasTablePrivilege {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "has_table_privilege".hash(state);
    }
}

impl ScalarUDFImpl for HasTablePrivilege {
    fn name(&self) -> &str {
        "has_table_privilege"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let (role, table, privileges) = match arrays {
                [table, privileges] => (None, table, privileges),
                [role, table, privileges] => (Some(role), table, privileges),
                _ => {
                    return Err(EngineError::new(
                        "42883",
                        "function has_table_privilege takes ([role,] table, privilege)",
                    )
                    .into())
                }
            };
            if role.is_some_and(|r| r.data_type().is_integer()) {
                return Err(EngineError::new(
                    "0A000",
                    "has_table_privilege of a role given by OID is not supported; name the role",
                )
                .into());
            }
            let text = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Utf8);
            let roles = role.map(text).transpose()?;
            // A table given by OID: the name the session's pg_class gave
            // it, as quoted SQL; an OID that names no table is NULL.
            let tables = if table.data_type().is_integer() {
                let names: StringArray = crate::udf_args::oids(table)?
                    .into_iter()
                    .map(|oid| match self.oids.named(oid?)? {
                        Named::Relation(schema, name) => Some(format!(
                            "{}.{}",
                            Ident::with_quote('"', schema),
                            Ident::with_quote('"', name)
                        )),
                        Named::Index => None,
                    })
                    .collect();
                Arc::new(names) as ArrayRef
            } else {
                text(table)?
            };
            let privileges = text(privileges)?;
            let (tables, privileges) = (tables.as_string::<i32>(), privileges.as_string::<i32>());
            let mut out = Vec::with_capacity(tables.len());
            for row in 0..tables.len() {
                let role = match &roles {
                    Some(roles) => value(roles.as_string::<i32>(), row),
                    None => Some(self.shared.user.as_str()),
                };
                let (Some(role), Some(table), Some(wanted)) =
                    (role, value(tables, row), value(privileges, row))
                else {
                    out.push(None);
                    continue;
                };
                out.push(Some(self.has(role, table, wanted)?));
            }
            Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
        })
    }
}

/// Row `row` of `array`, `None` when NULL.
fn value(array: &StringArray, row: usize) -> Option<&str> {
    (!array.is_null(row)).then(|| array.value(row))
}

impl HasTablePrivilege {
    fn has(&self, role: &str, table: &str, wanted: &str) -> Result<bool, EngineError> {
        let wanted = privileges(wanted)?;
        let entry = self.relation(table)?;
        let exists = self
            .shared
            .with_txn(|t| t.get_meta(&catalog::user_key(role)).is_some())
            .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        if !exists {
            return Err(EngineError::new(
                "42704",
                format!("role \"{role}\" does not exist"),
            ));
        }
        if crate::privileges::is_superuser(&self.shared, role)? {
            return Ok(true);
        }
        crate::privileges::holds(&self.shared, role, |r| {
            wanted.iter().any(|(privilege, grant_option)| {
                if *grant_option {
                    entry.acl.is_owner(r)
                } else {
                    entry.acl.allows(r, *privilege)
                }
            })
        })
    }

    /// The relation `name` names, read with the session's search path.
    fn relation(&self, name: &str) -> Result<RelationEntry, EngineError> {
        let missing = || EngineError::new("42P01", format!("relation \"{name}\" does not exist"));
        let object = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(name)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|_| missing())?;
        let parts = crate::names::parts(&object);
        let search_path: Vec<String> = self
            .shared
            .settings
            .read()
            .get("search_path")
            .map(|path| {
                path.split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty() && s != "$user")
                    .collect()
            })
            .unwrap_or_default();
        let candidates: Vec<QualifiedName> = match parts.as_slice() {
            [table] => search_path
                .iter()
                .map(|schema| QualifiedName {
                    database: self.database.clone(),
                    schema: schema.clone(),
                    name: table.clone(),
                })
                .collect(),
            [schema, table] => vec![QualifiedName {
                database: self.database.clone(),
                schema: schema.clone(),
                name: table.clone(),
            }],
            [database, schema, table] => vec![QualifiedName {
                database: database.clone(),
                schema: schema.clone(),
                name: table.clone(),
            }],
            _ => return Err(missing()),
        };
        for candidate in candidates {
            let found = self
                .shared
                .with_txn(|t| catalog::get::<RelationEntry>(t, &catalog::relation_key(&candidate)))
                .map_err(|e| EngineError::new("XX000", e.to_string()))?
                .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
            if let Some(entry) = found {
                return Ok(entry);
            }
        }
        Err(missing())
    }
}

/// The privileges a `has_table_privilege` text names, each with whether
/// it asks for the grant option.
fn privileges(text: &str) -> Result<Vec<(TablePrivilege, bool)>, EngineError> {
    text.split(',')
        .map(|item| {
            let words: Vec<String> = item
                .split_whitespace()
                .map(|w| w.to_ascii_uppercase())
                .collect();
            let (name, grant_option) = match words.as_slice() {
                [name] => (name.as_str(), false),
                [name, with, grant, option]
                    if with == "WITH" && grant == "GRANT" && option == "OPTION" =>
                {
                    (name.as_str(), true)
                }
                _ => ("", false),
            };
            TablePrivilege::ALL
                .iter()
                .find(|p| p.keyword() == name)
                .map(|p| (*p, grant_option))
                .ok_or_else(|| {
                    EngineError::new(
                        "22023",
                        format!("unrecognized privilege type: \"{}\"", item.trim()),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_lists_read_as_postgresql_reads_them() {
        assert_eq!(
            privileges("select, INSERT with grant option").unwrap(),
            vec![
                (TablePrivilege::Select, false),
                (TablePrivilege::Insert, true)
            ]
        );
        assert_eq!(privileges("usage").unwrap_err().sqlstate(), "22023");
    }
}
