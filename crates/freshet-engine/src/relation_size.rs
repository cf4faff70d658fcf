//! PostgreSQL's size functions with the bytes Freshet really keeps on disk:
//! `pg_relation_size`, `pg_table_size`, `pg_indexes_size`,
//! `pg_total_relation_size` and `pg_database_size`, and `pg_size_pretty`
//! to print them. psql's `\dt+` and `\l+`, and GUI tools, show these.
//!
//! A relation's size is its storage table's ([`freshet_storage::TableStats::disk_bytes`]):
//! the Parquet files of its checkpointed segments plus the data the WAL
//! holds until the next checkpoint (counted at its in-memory Arrow size, an
//! approximation of its WAL bytes), dead row versions included, as in
//! PostgreSQL. A dynamic table's maintenance state (per-group aggregates,
//! join arrangements) counts towards its total size, as TOAST and indexes
//! do in PostgreSQL. Unique indexes live in memory and are rebuilt at
//! recovery, so they take no bytes on disk; views take none either.
//!
//! The functions take a relation's OID, resolved through
//! [`RelationOids`]: an OID the session's `pg_class` reads have not named
//! answers NULL, as PostgreSQL answers for an OID that names nothing. A
//! relation's name as text (`pg_table_size('t')`, which PostgreSQL reads as
//! a `regclass`) is looked up along the `search_path`; an unknown name is
//! 42P01.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use freshet_catalog::{self as catalog, QualifiedName, RelationEntry};
use freshet_storage::Transaction;

use crate::provider::SessionShared;
use crate::relation_oids::{Named, RelationOids};
use crate::EngineError;

/// Which size function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SizeKind {
    /// `pg_relation_size(oid)`: the main data of a table or dynamic table.
    Relation,
    /// `pg_table_size(oid)`: the same plus a dynamic table's state.
    Table,
    /// `pg_indexes_size(oid)`: indexes, which have nothing on disk.
    Indexes,
    /// `pg_total_relation_size(oid)`: table size plus indexes size.
    Total,
    /// `pg_database_size(name)`: every relation of a database.
    Database,
}

impl SizeKind {
    const ALL: [SizeKind; 5] = [
        SizeKind::Relation,
        SizeKind::Table,
        SizeKind::Indexes,
        SizeKind::Total,
        SizeKind::Database,
    ];

    fn name(self) -> &'static str {
        match self {
            SizeKind::Relation => "pg_relation_size",
            SizeKind::Table => "pg_table_size",
            SizeKind::Indexes => "pg_indexes_size",
            SizeKind::Total => "pg_total_relation_size",
            SizeKind::Database => "pg_database_size",
        }
    }
}

/// `pg_size_pretty(bytes)` as PostgreSQL prints it: bytes below 10 kB,
/// otherwise the first unit (kB, MB, GB, TB, PB, powers of 1024) in which
/// the size is below about 10240, rounded half away from zero.
pub(crate) fn size_pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    // Twice the size in the current unit (truncated), so that the final
    // halving can round.
    let mut doubled = bytes / (1 << 9);
    for unit in &UNITS[..UNITS.len() - 1] {
        if doubled.unsigned_abs() < 20 * 1024 - 1 {
            return format!("{} {unit}", (doubled + doubled.signum()) / 2);
        }
        doubled /= 1 << 10;
    }
    format!("{} PB", (doubled + doubled.signum()) / 2)
}

/// Registers the size functions of a session.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    oids: Arc<RelationOids>,
    shared: Arc<SessionShared>,
    database: &str,
) {
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sizes = arrays[0].as_primitive::<Int64Type>();
            let out: datafusion::arrow::array::StringArray =
                sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    for kind in SizeKind::ALL {
        let accepted = match kind {
            SizeKind::Database => vec![TypeSignature::Exact(vec![DataType::Utf8])],
            _ => [
                DataType::Int32,
                DataType::Int64,
                DataType::UInt32,
                DataType::Utf8,
            ]
            .into_iter()
            .map(|t| TypeSignature::Exact(vec![t]))
            .collect(),
        };
        ctx.register_udf(ScalarUDF::new_from_impl(RelationSize {
            kind,
            oids: oids.clone(),
            shared: shared.clone(),
            database: database.to_string(),
            signature: Signature::one_of(accepted, Volatility::Volatile),
        }));
    }
}

#[derive(Debug)]
struct RelationSize {
    kind: SizeKind,
    oids: Arc<RelationOids>,
    shared: Arc<SessionShared>,
    database: String,
    signature: Signature,
}

impl PartialEq for RelationSize {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.oids, &other.oids)
    }
}

impl Eq for RelationSize {}

impl std::hash::Hash for RelationSize {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

/// Bytes on disk of the storage tables `ids`.
fn tables_bytes(t: &Transaction, ids: impl IntoIterator<Item = u64>) -> i64 {
    ids.into_iter()
        .filter_map(|id| t.table_stats(id).ok())
        .map(|s| i64::try_from(s.disk_bytes).unwrap_or(i64::MAX))
        .fold(0i64, i64::saturating_add)
}

/// A relation's size as the function `kind` counts it.
fn entry_bytes(t: &Transaction, entry: &RelationEntry, kind: SizeKind) -> i64 {
    let main = entry.table_id;
    match kind {
        SizeKind::Indexes => 0,
        SizeKind::Relation => tables_bytes(t, main),
        SizeKind::Table | SizeKind::Total | SizeKind::Database => {
            tables_bytes(t, main.into_iter().chain(entry.hidden_table_ids()))
        }
    }
}

impl RelationSize {
    /// Size of the relation `oid` names, `None` if the session has not seen
    /// the OID in `pg_class`. A relation `pg_class` lists but the catalog
    /// does not store (the code-provided catalogs) has no bytes on disk.
    fn of_oid(&self, oid: i32) -> DfResult<Option<i64>> {
        match self.oids.named(oid) {
            None => Ok(None),
            Some(Named::Index) => Ok(Some(0)),
            Some(Named::Relation(..)) => {
                let entry = self.oids.entry(&self.shared, &self.database, oid)?;
                self.shared
                    .with_txn(|t| Some(entry.map_or(0, |e| entry_bytes(t, &e, self.kind))))
            }
        }
    }

    /// Size of the relation named by `text` (`name` or `schema.name`, as
    /// SQL spells it), looked up along the session's `search_path`.
    fn of_name(&self, text: &str) -> DfResult<i64> {
        let unknown = || {
            DataFusionError::External(Box::new(EngineError::new(
                "42P01",
                format!("relation \"{text}\" does not exist"),
            )))
        };
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let parts = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(text)
            .and_then(|mut p| p.parse_object_name(false))
            .map(|name| crate::names::parts(&name))
            .map_err(|_| unknown())?;
        let schemas: Vec<String> = match parts.as_slice() {
            [_] => {
                let path = self.shared.settings.read().get("search_path").cloned();
                path.unwrap_or_else(|| "public".into())
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty() && s != "$user")
                    .collect()
            }
            [schema, _] => vec![schema.clone()],
            _ => return Err(unknown()),
        };
        let Some(name) = parts.last() else {
            return Err(unknown());
        };
        self.shared.with_txn(|t| {
            for schema in &schemas {
                let key = catalog::relation_key(&QualifiedName {
                    database: self.database.clone(),
                    schema: schema.clone(),
                    name: name.clone(),
                });
                let entry: Option<RelationEntry> =
                    catalog::get(t, &key).map_err(|e| DataFusionError::Execution(e.to_string()))?;
                if let Some(entry) = entry {
                    return Ok(entry_bytes(t, &entry, self.kind));
                }
            }
            Err(unknown())
        })?
    }

    /// Size of every relation of the database `name`; an error if there is
    /// no such database, as in PostgreSQL.
    fn of_database(&self, name: &str) -> DfResult<i64> {
        self.shared.with_txn(|t| {
            if t.get_meta(&catalog::database_key(name)).is_none() {
                return Err(DataFusionError::External(Box::new(EngineError::new(
                    "3D000",
                    format!("database \"{name}\" does not exist"),
                ))));
            }
            let entries: Vec<RelationEntry> =
                catalog::list(t, &catalog::relation_prefix(name, None))
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            Ok(entries
                .iter()
                .map(|e| entry_bytes(t, e, SizeKind::Database))
                .fold(0i64, i64::saturating_add))
        })?
    }
}

impl ScalarUDFImpl for RelationSize {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let arg = arrays
            .first()
            .ok_or_else(|| DataFusionError::Plan(format!("{} needs one argument", self.name())))?;
        let mut out = Int64Builder::with_capacity(arg.len());
        if self.kind != SizeKind::Database && arg.data_type() == &DataType::Utf8 {
            let names = arg.as_string::<i32>();
            for row in 0..names.len() {
                if names.is_null(row) {
                    out.append_null();
                } else {
                    out.append_value(self.of_name(names.value(row))?);
                }
            }
        } else if self.kind == SizeKind::Database {
            let names = datafusion::arrow::compute::cast(arg, &DataType::Utf8)?;
            let names = names.as_string::<i32>();
            let mut known: HashMap<&str, i64> = HashMap::new();
            for row in 0..names.len() {
                if names.is_null(row) {
                    out.append_null();
                    continue;
                }
                let name = names.value(row);
                let bytes = match known.get(name) {
                    Some(b) => *b,
                    None => *known.entry(name).or_insert(self.of_database(name)?),
                };
                out.append_value(bytes);
            }
        } else {
            let mut known: HashMap<i32, Option<i64>> = HashMap::new();
            for oid in crate::udf_args::oids(arg)? {
                let bytes = match oid {
                    None => None,
                    Some(oid) => match known.get(&oid) {
                        Some(b) => *b,
                        None => *known.entry(oid).or_insert(self.of_oid(oid)?),
                    },
                };
                out.append_option(bytes);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
