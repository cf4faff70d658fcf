//! Keys and indexes in `pg_catalog`, where psql's `\d`, SQLAlchemy's
//! `inspect()` and JDBC's `DatabaseMetaData` look for them.
//!
//! datafusion-pg-catalog serves PostgreSQL's own system rows as `pg_index`
//! and `pg_constraint`, and lists no index in `pg_class`, so a tool asking
//! for a table's primary key found none. Freshet's keys live in its catalog
//! ([`RelationEntry::constraints`] and [`RelationEntry::unique_indexes`]);
//! this module serves them as PostgreSQL lays them out:
//!
//! * `pg_class` gains a row (relkind `i`, access method btree) per index,
//!   and `relhasindex` is true on the tables that have one;
//! * `pg_index` holds a row per index, `pg_constraint` one per PRIMARY KEY
//!   (contype `p`) or UNIQUE (contype `u`) constraint, whose `conindid` is
//!   the index of the same name that enforces it;
//! * `pg_indexes` is PostgreSQL's view over them;
//! * `pg_get_indexdef` and `pg_get_constraintdef` deparse both.
//!
//! Index and constraint OIDs are handed out per session and stay the same
//! for the session, as the crate does for relations ([`KeyOids`]): an OID
//! names a (kind, schema, name), so an index dropped and created again
//! under its name keeps its OID. The deparsing functions look the name up
//! in the catalog each time they run, so they always show the definition
//! that stands, never one remembered from an earlier statement.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::Mutex;

use freshet_catalog::{self as catalog, RelationEntry};

use crate::pg_ident::quote_ident;
use crate::pg_types::{column, read_all};
use crate::provider::SessionShared;
use crate::types::PgVector;

/// OID of the btree access method in `pg_am`.
const BTREE_AM: i32 = 403;
/// The first OID handed to an index or constraint: clear of the crate's
/// relation OIDs (counted up from 16384) and of `pg_attrdef`'s (from 2^30).
const FIRST_KEY_OID: i32 = 1 << 29;

/// The pg_catalog relations Freshet adds to the crate's list (which
/// qualifies only its own names when they are written unqualified):
/// `pg_indexes` (this module) and `pg_stat_activity` ([`crate::activity`]).
pub(crate) const ADDED_CATALOG_TABLES: &[&str] = &["pg_indexes", "pg_stat_activity"];

/// Which catalog table a [`KeyCatalogTable`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTable {
    /// `pg_class` with a row per index.
    Class,
    /// `pg_index`.
    Index,
    /// `pg_constraint`.
    Constraint,
    /// The `pg_indexes` view.
    Indexes,
}

impl KeyTable {
    /// The table `name` names, if this module serves it.
    pub(crate) fn of(name: &str) -> Option<KeyTable> {
        match name {
            "pg_class" => Some(KeyTable::Class),
            "pg_index" => Some(KeyTable::Index),
            "pg_constraint" => Some(KeyTable::Constraint),
            "pg_indexes" => Some(KeyTable::Indexes),
            _ => None,
        }
    }
}

/// What kind of object an OID in [`KeyOids`] was handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyObject {
    Index,
    Constraint,
}

/// The session's index and constraint OIDs, each kept for the (kind,
/// schema, name) it was handed to.
#[derive(Debug, Default)]
pub(crate) struct KeyOids {
    inner: Mutex<KeyOidsInner>,
}

#[derive(Debug, Default)]
struct KeyOidsInner {
    assigned: HashMap<(KeyObject, String, String), i32>,
    /// OID → the object it was handed to, for the deparsing functions.
    named: HashMap<i32, (KeyObject, String, String)>,
    next: i32,
}

impl KeyOids {
    /// The OID of the object named `name` in `schema`, handed out on first
    /// sight. Indexes and constraints share their schema's namespace in
    /// PostgreSQL, but a constraint and its index have the same name and
    /// different OIDs.
    fn oid(&self, object: KeyObject, schema: &str, name: &str) -> i32 {
        let mut inner = self.inner.lock();
        let key = (object, schema.to_string(), name.to_string());
        if let Some(&oid) = inner.assigned.get(&key) {
            return oid;
        }
        let oid = FIRST_KEY_OID + inner.next;
        inner.next += 1;
        inner.assigned.insert(key.clone(), oid);
        inner.named.insert(oid, key);
        oid
    }

    /// What `oid` was handed to in this session, if anything.
    fn named(&self, oid: i32) -> Option<(KeyObject, String, String)> {
        self.inner.lock().named.get(&oid).cloned()
    }
}

/// Which constraint an index enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enforces {
    PrimaryKey,
    Unique,
    /// None: a unique index created on its own.
    Nothing,
}

/// An index as Freshet's catalog defines it.
#[derive(Debug, Clone)]
struct KeyDefinition {
    name: String,
    schema: String,
    table: String,
    columns: Vec<String>,
    enforces: Enforces,
}

impl KeyDefinition {
    /// The indexes of a catalog entry: its constraints', then its own
    /// unique indexes.
    fn of_entry(entry: &RelationEntry) -> impl Iterator<Item = KeyDefinition> + '_ {
        let constraints = entry.constraints.iter().map(|c| {
            let enforces = if c.primary {
                Enforces::PrimaryKey
            } else {
                Enforces::Unique
            };
            (c.name.clone(), c.columns.clone(), enforces)
        });
        let indexes = entry
            .unique_indexes
            .iter()
            .map(|i| (i.name.clone(), i.columns.clone(), Enforces::Nothing));
        constraints
            .chain(indexes)
            .map(|(name, columns, enforces)| KeyDefinition {
                name,
                schema: entry.schema.clone(),
                table: entry.name.clone(),
                columns,
                enforces,
            })
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE UNIQUE INDEX name ON schema.table USING btree (cols)`.
    fn index_statement(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&self.name),
            quote_ident(&self.schema),
            quote_ident(&self.table),
            self.column_list()
        )
    }

    /// `PRIMARY KEY (cols)` or `UNIQUE (cols)`; `None` for an index that
    /// enforces no constraint.
    fn constraint_definition(&self) -> Option<String> {
        let kind = match self.enforces {
            Enforces::PrimaryKey => "PRIMARY KEY",
            Enforces::Unique => "UNIQUE",
            Enforces::Nothing => return None,
        };
        Some(format!("{kind} ({})", self.column_list()))
    }
}

/// One index of a table as the catalog tables show it.
#[derive(Debug, Clone)]
struct KeyIndex {
    oid: i32,
    definition: KeyDefinition,
    namespace_oid: i32,
    table_oid: i32,
    /// 1-based column numbers, as `pg_attribute.attnum`.
    attnums: Vec<i16>,
    /// The key columns' types.
    types: Vec<DataType>,
    /// The OID of the constraint the index enforces, if it enforces one.
    constraint_oid: Option<i32>,
}

impl KeyIndex {
    fn is_primary(&self) -> bool {
        self.definition.enforces == Enforces::PrimaryKey
    }
}

/// The session database's relations as its catalog holds them now (inside
/// the session's transaction, if one is open), restricted to `schema`.
fn catalog_entries(
    shared: &SessionShared,
    database: &str,
    schema: Option<&str>,
) -> DfResult<Vec<(RelationEntry, Option<SchemaRef>)>> {
    shared.with_txn(|t| -> DfResult<Vec<(RelationEntry, Option<SchemaRef>)>> {
        let entries: Vec<RelationEntry> =
            catalog::list(t, &catalog::relation_prefix(database, schema))
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.constraints.is_empty() || !e.unique_indexes.is_empty())
            .map(|e| {
                let schema = e.table_id.and_then(|id| t.table_schema(id).ok());
                (e, schema)
            })
            .collect())
    })?
}

/// A pg_catalog table this module serves, over the crate's `pg_class` and
/// `pg_namespace` (for the relations' OIDs) and Freshet's catalog.
#[derive(Debug)]
pub(crate) struct KeyCatalogTable {
    pub(crate) table: KeyTable,
    pub(crate) classes: Arc<dyn TableProvider>,
    pub(crate) namespaces: Arc<dyn TableProvider>,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) database: String,
    pub(crate) oids: Arc<KeyOids>,
    /// Where every read of `pg_class` records the OIDs it handed out, for
    /// the functions that take a relation OID ([`crate::relation_oids`]).
    pub(crate) relations: Arc<crate::relation_oids::RelationOids>,
}

/// A non-null `oid` column.
fn oid_field(name: &str) -> Field {
    datafusion_pg_catalog::pg_catalog::oid_field::oid_field(name, "oid", false)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

fn index_schema() -> SchemaRef {
    let mut fields = vec![oid_field("indexrelid"), oid_field("indrelid")];
    fields.extend([
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
    ]);
    for flag in [
        "indisunique",
        "indnullsnotdistinct",
        "indisprimary",
        "indisexclusion",
        "indimmediate",
        "indisclustered",
        "indisvalid",
        "indcheckxmin",
        "indisready",
        "indislive",
        "indisreplident",
    ] {
        fields.push(Field::new(flag, DataType::Boolean, false));
    }
    fields.extend([
        PgVector::Int2.field("indkey"),
        PgVector::Oid.field("indcollation"),
        PgVector::Oid.field("indclass"),
        PgVector::Int2.field("indoption"),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(fields))
}

fn constraint_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        oid_field("oid"),
        Field::new("conname", DataType::Utf8, false),
        oid_field("connamespace"),
        Field::new("contype", DataType::Utf8, false),
        Field::new("condeferrable", DataType::Boolean, false),
        Field::new("condeferred", DataType::Boolean, false),
        Field::new("convalidated", DataType::Boolean, false),
        oid_field("conrelid"),
        oid_field("contypid"),
        oid_field("conindid"),
        oid_field("conparentid"),
        oid_field("confrelid"),
        Field::new("confupdtype", DataType::Utf8, false),
        Field::new("confdeltype", DataType::Utf8, false),
        Field::new("confmatchtype", DataType::Utf8, false),
        Field::new("conislocal", DataType::Boolean, false),
        Field::new("coninhcount", DataType::Int16, false),
        Field::new("connoinherit", DataType::Boolean, false),
        Field::new("conkey", list_of(DataType::Int16), true),
        Field::new("confkey", list_of(DataType::Int16), true),
        Field::new("conpfeqop", list_of(DataType::Int32), true),
        Field::new("conppeqop", list_of(DataType::Int32), true),
        Field::new("conffeqop", list_of(DataType::Int32), true),
        Field::new("confdelsetcols", list_of(DataType::Int16), true),
        Field::new("conexclop", list_of(DataType::Int32), true),
        Field::new("conbin", DataType::Utf8, true),
    ]))
}

fn indexes_view_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, false),
        Field::new("tablename", DataType::Utf8, false),
        Field::new("indexname", DataType::Utf8, false),
        Field::new("tablespace", DataType::Utf8, true),
        Field::new("indexdef", DataType::Utf8, false),
    ]))
}

/// Columns psql's `\d+` reads from `pg_class` that the crate's lacks.
fn class_extra_fields() -> Vec<Field> {
    vec![
        Field::new("reloptions", list_of(DataType::Utf8), true),
        Field::new("relacl", list_of(DataType::Utf8), true),
    ]
}

/// A batch of `schema` with `rows` rows, each column's values from `value`
/// (by column name and row), or a column's zero (NULL where nullable)
/// where it gives none.
fn build_batch(
    schema: &SchemaRef,
    rows: usize,
    value: impl Fn(&str, usize) -> Option<ScalarValue>,
) -> DfResult<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let fallback = default_value(field)?;
        let values = (0..rows).map(|row| value(field.name(), row).unwrap_or(fallback.clone()));
        let array = if rows == 0 {
            datafusion::arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        };
        let array = if array.data_type() == field.data_type() {
            array
        } else {
            datafusion::arrow::compute::cast(&array, field.data_type())?
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn default_value(field: &Field) -> DfResult<ScalarValue> {
    if field.is_nullable() {
        return ScalarValue::try_from(field.data_type());
    }
    Ok(match field.data_type() {
        DataType::Utf8 => ScalarValue::Utf8(Some(String::new())),
        DataType::List(item) => {
            ScalarValue::List(ScalarValue::new_list_nullable(&[], item.data_type()))
        }
        other => ScalarValue::new_zero(other)?,
    })
}

fn int16_list(values: &[i16]) -> ScalarValue {
    let items: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int16(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int16))
}

fn int32_list(values: impl Iterator<Item = i32>) -> ScalarValue {
    let items: Vec<ScalarValue> = values.map(|v| ScalarValue::Int32(Some(v))).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int32))
}

fn text(value: &str) -> Option<ScalarValue> {
    Some(ScalarValue::Utf8(Some(value.to_string())))
}

fn int32(value: i32) -> Option<ScalarValue> {
    Some(ScalarValue::Int32(Some(value)))
}

fn int16(value: usize) -> Option<ScalarValue> {
    Some(ScalarValue::Int16(Some(
        i16::try_from(value).unwrap_or(i16::MAX),
    )))
}

fn boolean(value: bool) -> Option<ScalarValue> {
    Some(ScalarValue::Boolean(Some(value)))
}

/// The btree operator class PostgreSQL would pick for a key column's type
/// (`pg_opclass` OIDs); 0 where there is none to name.
fn default_opclass(data_type: &DataType) -> i32 {
    match data_type {
        DataType::Int16 => 1979,
        DataType::Int32 => 1978,
        DataType::Int64 => 3124,
        DataType::Float32 => 1970,
        DataType::Float64 => 3123,
        DataType::Boolean => 424,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 3126,
        DataType::Date32 => 3122,
        DataType::Timestamp(_, None) => 3128,
        DataType::Timestamp(_, Some(_)) => 3127,
        DataType::Decimal128(..) => 3125,
        DataType::Binary | DataType::LargeBinary => 428,
        _ => 0,
    }
}

impl KeyCatalogTable {
    fn table_schema(&self) -> SchemaRef {
        match self.table {
            KeyTable::Class => {
                let mut fields: Vec<Field> = self
                    .classes
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields.extend(class_extra_fields());
                Arc::new(Schema::new(fields))
            }
            KeyTable::Index => index_schema(),
            KeyTable::Constraint => constraint_schema(),
            KeyTable::Indexes => indexes_view_schema(),
        }
    }

    /// The OID of each schema, by name, as the crate's `pg_namespace` gives
    /// them.
    async fn namespace_oids(&self, state: &dyn DfSession) -> DfResult<HashMap<String, i32>> {
        let mut namespaces: HashMap<String, i32> = HashMap::new();
        for batch in read_all(&self.namespaces, state).await? {
            let oids = column(&batch, "oid")?.as_primitive::<Int32Type>();
            let names = column(&batch, "nspname")?.as_string::<i32>();
            for i in 0..batch.num_rows() {
                namespaces.insert(names.value(i).to_string(), oids.value(i));
            }
        }
        Ok(namespaces)
    }

    /// Records the OIDs of the relations and indexes `pg_class` lists.
    fn note_relations(
        &self,
        namespaces: &HashMap<String, i32>,
        class_batches: &[RecordBatch],
        keys: &[KeyIndex],
    ) -> DfResult<()> {
        let schemas: HashMap<i32, &str> = namespaces
            .iter()
            .map(|(name, oid)| (*oid, name.as_str()))
            .collect();
        for batch in class_batches {
            let oids = column(batch, "oid")?.as_primitive::<Int32Type>();
            let names = column(batch, "relname")?.as_string::<i32>();
            let spaces = column(batch, "relnamespace")?.as_primitive::<Int32Type>();
            for i in 0..batch.num_rows() {
                if let Some(schema) = schemas.get(&spaces.value(i)) {
                    self.relations
                        .note_relation(oids.value(i), schema, names.value(i));
                }
            }
        }
        for key in keys {
            self.relations.note_index(key.oid);
        }
        Ok(())
    }

    /// `pg_class.relowner` and `relacl` of the session database's
    /// relations, by (namespace OID, name).
    fn relation_acls(&self, namespaces: &HashMap<String, i32>) -> DfResult<RelationAcls> {
        let entries: Vec<RelationEntry> = self.shared.with_txn(|t| {
            catalog::list(t, &catalog::relation_prefix(&self.database, None))
                .map_err(|e| DataFusionError::Execution(e.to_string()))
        })??;
        let roles = crate::roles::role_oids(&self.shared)?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let namespace = *namespaces.get(&entry.schema)?;
                let owner = entry.acl.owner.as_ref().and_then(|o| roles.get(o)).copied();
                let acl = RelationAcl {
                    owner,
                    items: entry.acl.to_pg_items(),
                };
                Some(((namespace, entry.name), acl))
            })
            .collect())
    }

    /// The session database's indexes, with the OIDs of their tables as the
    /// crate's `pg_class` gives them; indexes of tables it does not list
    /// are left out.
    fn key_indexes(
        &self,
        namespaces: &HashMap<String, i32>,
        class_batches: &[RecordBatch],
    ) -> DfResult<Vec<KeyIndex>> {
        let mut relations: HashMap<(i32, String), i32> = HashMap::new();
        for batch in class_batches {
            let oids = column(batch, "oid")?.as_primitive::<Int32Type>();
            let names = column(batch, "relname")?.as_string::<i32>();
            let spaces = column(batch, "relnamespace")?.as_primitive::<Int32Type>();
            for i in 0..batch.num_rows() {
                relations.insert((spaces.value(i), names.value(i).to_string()), oids.value(i));
            }
        }
        let stored = catalog_entries(&self.shared, &self.database, None)?;
        let mut keys = Vec::new();
        for (entry, schema) in stored {
            let Some(schema) = schema else {
                continue;
            };
            let Some(&namespace_oid) = namespaces.get(&entry.schema) else {
                continue;
            };
            let Some(&table_oid) = relations.get(&(namespace_oid, entry.name.clone())) else {
                continue;
            };
            for definition in KeyDefinition::of_entry(&entry) {
                let positions: Option<Vec<usize>> = definition
                    .columns
                    .iter()
                    .map(|c| schema.index_of(c).ok())
                    .collect();
                let Some(positions) = positions else {
                    continue;
                };
                let attnums = positions
                    .iter()
                    .map(|&p| i16::try_from(p + 1).unwrap_or(i16::MAX))
                    .collect();
                let types = positions
                    .iter()
                    .map(|&p| schema.field(p).data_type().clone())
                    .collect();
                let oid = self
                    .oids
                    .oid(KeyObject::Index, &entry.schema, &definition.name);
                let constraint_oid = (definition.enforces != Enforces::Nothing).then(|| {
                    self.oids
                        .oid(KeyObject::Constraint, &entry.schema, &definition.name)
                });
                keys.push(KeyIndex {
                    oid,
                    definition,
                    namespace_oid,
                    table_oid,
                    attnums,
                    types,
                    constraint_oid,
                });
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl TableProvider for KeyCatalogTable {
    fn schema(&self) -> SchemaRef {
        self.table_schema()
    }

    fn table_type(&self) -> TableType {
        match self.table {
            KeyTable::Indexes => TableType::View,
            _ => self.classes.table_type(),
        }
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let class_batches = read_all(&self.classes, state).await?;
        let namespaces = self.namespace_oids(state).await?;
        let keys = self.key_indexes(&namespaces, &class_batches)?;
        self.note_relations(&namespaces, &class_batches, &keys)?;
        let schema = self.table_schema();
        let batches = match self.table {
            KeyTable::Class => {
                let acls = self.relation_acls(&namespaces)?;
                class_rows(&schema, class_batches, &keys, &acls)?
            }
            KeyTable::Index => vec![build_batch(&schema, keys.len(), |name, row| {
                let key = &keys[row];
                let n = key.definition.columns.len();
                match name {
                    "indexrelid" => int32(key.oid),
                    "indrelid" => int32(key.table_oid),
                    "indnatts" | "indnkeyatts" => int16(n),
                    "indisunique" | "indimmediate" | "indisvalid" | "indisready" | "indislive" => {
                        boolean(true)
                    }
                    "indisprimary" => boolean(key.is_primary()),
                    "indkey" => Some(int16_list(&key.attnums)),
                    "indcollation" => Some(int32_list(std::iter::repeat_n(0, n))),
                    "indoption" => Some(int16_list(&vec![0; n])),
                    "indclass" => Some(int32_list(key.types.iter().map(default_opclass))),
                    _ => None,
                }
            })?],
            KeyTable::Constraint => {
                let constrained: Vec<&KeyIndex> =
                    keys.iter().filter(|k| k.constraint_oid.is_some()).collect();
                vec![build_batch(&schema, constrained.len(), |name, row| {
                    let key = constrained[row];
                    match name {
                        "oid" => int32(key.constraint_oid?),
                        "conname" => text(&key.definition.name),
                        "connamespace" => int32(key.namespace_oid),
                        "contype" => text(if key.is_primary() { "p" } else { "u" }),
                        "convalidated" | "conislocal" | "connoinherit" => boolean(true),
                        "conrelid" => int32(key.table_oid),
                        "conindid" => int32(key.oid),
                        "confupdtype" | "confdeltype" | "confmatchtype" => text(" "),
                        "conkey" => Some(int16_list(&key.attnums)),
                        _ => None,
                    }
                })?]
            }
            KeyTable::Indexes => vec![build_batch(&schema, keys.len(), |name, row| {
                let key = &keys[row];
                match name {
                    "schemaname" => text(&key.definition.schema),
                    "tablename" => text(&key.definition.table),
                    "indexname" => text(&key.definition.name),
                    "indexdef" => text(&key.definition.index_statement()),
                    _ => None,
                }
            })?],
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            schema,
            projection.cloned(),
        )?)
    }
}

/// A relation's owner and privileges as `pg_class` shows them.
struct RelationAcl {
    /// The owner's role OID; `None` for a relation from before owners were
    /// recorded.
    owner: Option<i32>,
    /// `relacl`, if a GRANT or REVOKE changed the privileges.
    items: Option<Vec<String>>,
}

/// [`RelationAcl`]s by (namespace OID, relation name).
type RelationAcls = HashMap<(i32, String), RelationAcl>;

/// The owner `pg_class.relowner` shows for a relation: its owner's OID, or
/// the bootstrap superuser's for the system catalogs and for relations
/// from before owners were recorded (only superusers may use those).
fn owner_oid(acls: &RelationAcls, namespace: i32, name: &str) -> i32 {
    acls.get(&(namespace, name.to_string()))
        .and_then(|a| a.owner)
        .unwrap_or(freshet_catalog::BOOTSTRAP_SUPERUSER_OID as i32)
}

/// The crate's `pg_class` rows, `relhasindex` set on tables with keys and
/// `relowner` and `relacl` from `acls`, then a row per index (owned by its
/// table's owner); the other columns the crate lacks are NULL.
fn class_rows(
    schema: &SchemaRef,
    class_batches: Vec<RecordBatch>,
    keys: &[KeyIndex],
    acls: &RelationAcls,
) -> DfResult<Vec<RecordBatch>> {
    let indexed: HashSet<i32> = keys.iter().map(|k| k.table_oid).collect();
    let extra = class_extra_fields();
    let mut out = Vec::with_capacity(class_batches.len() + 1);
    for batch in class_batches {
        let mut columns = batch.columns().to_vec();
        let batch_schema = batch.schema();
        if let Ok(at) = batch_schema.index_of("relhasindex") {
            let oids = column(&batch, "oid")?.as_primitive::<Int32Type>();
            let previous = batch.column(at).as_boolean();
            let flags: BooleanArray = (0..batch.num_rows())
                .map(|i| Some(previous.value(i) || indexed.contains(&oids.value(i))))
                .collect();
            columns[at] = Arc::new(flags);
        }
        if let Ok(at) = batch_schema.index_of("relowner") {
            let names = column(&batch, "relname")?.as_string::<i32>();
            let spaces = column(&batch, "relnamespace")?.as_primitive::<Int32Type>();
            let owners: datafusion::arrow::array::Int32Array = (0..batch.num_rows())
                .map(|i| Some(owner_oid(acls, spaces.value(i), names.value(i))))
                .collect();
            columns[at] = Arc::new(owners);
        }
        for field in &extra {
            if field.name() == "relacl" {
                let names = column(&batch, "relname")?.as_string::<i32>();
                let spaces = column(&batch, "relnamespace")?.as_primitive::<Int32Type>();
                let mut list = datafusion::arrow::array::ListBuilder::new(
                    datafusion::arrow::array::StringBuilder::new(),
                );
                for i in 0..batch.num_rows() {
                    match acls
                        .get(&(spaces.value(i), names.value(i).to_string()))
                        .and_then(|a| a.items.as_ref())
                    {
                        Some(items) => {
                            for item in items {
                                list.values().append_value(item);
                            }
                            list.append(true);
                        }
                        None => list.append(false),
                    }
                }
                columns.push(Arc::new(list.finish()));
                continue;
            }
            columns.push(datafusion::arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            ));
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    out.push(build_batch(schema, keys.len(), |name, row| {
        let key = &keys[row];
        match name {
            "oid" | "relfilenode" => int32(key.oid),
            "relname" => text(&key.definition.name),
            "relnamespace" => int32(key.namespace_oid),
            "relowner" => int32(owner_oid(acls, key.namespace_oid, &key.definition.table)),
            "relam" => int32(BTREE_AM),
            "relpages" => int32(1),
            "relpersistence" => text("p"),
            "relkind" => text("i"),
            "relnatts" => int16(key.definition.columns.len()),
            "relispopulated" => boolean(true),
            "relreplident" => text("n"),
            _ => None,
        }
    })?);
    Ok(out)
}

/// Registers `pg_get_indexdef` and `pg_get_constraintdef`, which deparse
/// the index or constraint an OID of the session's [`KeyOids`] names, as
/// the session database's catalog defines it when the function runs.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    oids: Arc<KeyOids>,
    shared: Arc<SessionShared>,
    database: &str,
) {
    for kind in [DeparseKind::IndexDef, DeparseKind::ConstraintDef] {
        ctx.register_udf(ScalarUDF::new_from_impl(Deparse::new(
            kind,
            oids.clone(),
            shared.clone(),
            database.to_string(),
        )));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DeparseKind {
    /// `pg_get_indexdef(oid [, column, pretty])`.
    IndexDef,
    /// `pg_get_constraintdef(oid [, pretty])`.
    ConstraintDef,
}

#[derive(Debug)]
struct Deparse {
    kind: DeparseKind,
    oids: Arc<KeyOids>,
    shared: Arc<SessionShared>,
    database: String,
    signature: Signature,
}

impl PartialEq for Deparse {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.oids, &other.oids)
    }
}

impl Eq for Deparse {}

impl std::hash::Hash for Deparse {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

impl Deparse {
    fn new(
        kind: DeparseKind,
        oids: Arc<KeyOids>,
        shared: Arc<SessionShared>,
        database: String,
    ) -> Deparse {
        let ints = [DataType::Int32, DataType::Int64, DataType::UInt32];
        let mut accepted = Vec::new();
        for int in ints {
            accepted.push(TypeSignature::Exact(vec![int.clone()]));
            match kind {
                DeparseKind::IndexDef => {
                    for column in [DataType::Int32, DataType::Int64] {
                        accepted.push(TypeSignature::Exact(vec![
                            int.clone(),
                            column,
                            DataType::Boolean,
                        ]));
                    }
                }
                DeparseKind::ConstraintDef => {
                    accepted.push(TypeSignature::Exact(vec![int.clone(), DataType::Boolean]));
                }
            }
        }
        Deparse {
            kind,
            oids,
            shared,
            database,
            signature: Signature::one_of(accepted, Volatility::Stable),
        }
    }

    /// The current definition of the index or constraint `oid` names, or
    /// `None` (NULL, as PostgreSQL answers for an unknown OID) when the
    /// OID is not one of the session's or its object no longer exists.
    fn definition(&self, oid: i32) -> DfResult<Option<KeyDefinition>> {
        let Some((object, schema, name)) = self.oids.named(oid) else {
            return Ok(None);
        };
        let wanted = match (self.kind, object) {
            (DeparseKind::IndexDef, KeyObject::Index)
            | (DeparseKind::ConstraintDef, KeyObject::Constraint) => object,
            _ => return Ok(None),
        };
        let entries = catalog_entries(&self.shared, &self.database, Some(&schema))?;
        let found = entries
            .iter()
            .filter(|(entry, _)| entry.schema == schema)
            .flat_map(|(entry, _)| KeyDefinition::of_entry(entry))
            .find(|d| {
                d.name == name && (wanted == KeyObject::Index || d.enforces != Enforces::Nothing)
            });
        Ok(found)
    }
}

impl ScalarUDFImpl for Deparse {
    fn name(&self) -> &str {
        match self.kind {
            DeparseKind::IndexDef => "pg_get_indexdef",
            DeparseKind::ConstraintDef => "pg_get_constraintdef",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let cast = |i: usize| -> DfResult<Option<Arc<dyn Array>>> {
            arrays
                .get(i)
                .map(|a| datafusion::arrow::compute::cast(a, &DataType::Int64))
                .transpose()
                .map_err(DataFusionError::from)
        };
        let oids = arrays
            .first()
            .ok_or_else(|| DataFusionError::Plan(format!("{} needs an object OID", self.name())))?;
        let oids = crate::udf_args::oids(oids)?;
        let column_numbers = match self.kind {
            DeparseKind::IndexDef => cast(1)?,
            DeparseKind::ConstraintDef => None,
        };
        // One catalog read per distinct OID of the batch.
        let mut definitions: HashMap<i32, Option<KeyDefinition>> = HashMap::new();
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for (row, oid) in oids.into_iter().enumerate() {
            let Some(oid) = oid else {
                out.append_null();
                continue;
            };
            let definition = match definitions.entry(oid) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(new) => new.insert(self.definition(oid)?),
            };
            let Some(def) = definition else {
                out.append_null();
                continue;
            };
            let text = match self.kind {
                DeparseKind::ConstraintDef => def.constraint_definition(),
                DeparseKind::IndexDef => {
                    let column = column_numbers.as_ref().map_or(0, |c| {
                        let c = c.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                        if c.is_null(row) {
                            0
                        } else {
                            c.value(row)
                        }
                    });
                    Some(if column <= 0 {
                        def.index_statement()
                    } else {
                        // PostgreSQL answers '' past the last column.
                        usize::try_from(column - 1)
                            .ok()
                            .and_then(|c| def.columns.get(c))
                            .map_or_else(String::new, |c| quote_ident(c).into_owned())
                    })
                }
            };
            match text {
                Some(text) => out.append_value(text),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
