//! Declared column types and defaults in `pg_catalog`.
//!
//! datafusion-pg-catalog derives `atttypid` from a column's Arrow type and
//! leaves `atttypmod` at -1, so psql's `\d` would show `varchar(100)` as `text`
//! and `numeric(12,2)` as `numeric`. Freshet keeps the declared type in each
//! stored field's metadata; this module wraps the crate's `pg_attribute` and
//! corrects the two columns from it, so tools see what the user declared.
//! The same walk over the stored columns fills `atthasdef` and
//! `pg_attrdef`, which the crate leaves empty, so tools that join
//! `pg_attrdef` (JDBC's `getColumns`) see column DEFAULTs.
//! It also builds the crate's `pg_catalog` over the session's database only
//! ([`CurrentDatabaseCatalogs`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int16Type, Int32Type, SchemaRef};
use datafusion::catalog::{
    CatalogProviderList, SchemaProvider, Session as DfSession, TableProvider,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};

use freshet_catalog::{self as catalog, QualifiedName, RelationEntry};

use crate::provider::SessionShared;
use crate::types::declared_pg_type;

/// `pg_catalog` with a corrected `pg_attribute`, Freshet's keys and indexes
/// ([`crate::pg_keys`]) and a few tables the crate lacks or fills wrongly;
/// every other table is the crate's own.
#[derive(Debug)]
pub(crate) struct DeclaredTypesCatalog {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) database: String,
    /// The session's index and constraint OIDs ([`crate::pg_keys`]).
    pub(crate) key_oids: Arc<crate::pg_keys::KeyOids>,
    /// The session's relation OIDs as `pg_class` reads hand them out.
    pub(crate) relation_oids: Arc<crate::relation_oids::RelationOids>,
    /// The engine, for `pg_stat_activity` ([`crate::activity`]).
    pub(crate) engine: Arc<crate::Engine>,
}

#[async_trait]
impl SchemaProvider for DeclaredTypesCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(
            crate::pg_keys::ADDED_CATALOG_TABLES
                .iter()
                .map(|t| t.to_string()),
        );
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if name == "pg_policy" {
            return Ok(Some(empty_pg_policy()?));
        }
        if let Some(view) = crate::catalog_views::PgView::named(name) {
            return Ok(Some(view.provider()));
        }
        if name == "pg_stat_activity" {
            return crate::activity::pg_stat_activity(&self.engine, &self.shared).map(Some);
        }
        if name == "pg_roles" {
            return Ok(Some(Arc::new(crate::roles::PgRoles {
                builtin: self.inner.table("pg_authid").await?,
                shared: self.shared.clone(),
            })));
        }
        if name == "pg_auth_members" {
            return Ok(self.inner.table(name).await?.map(|builtin| {
                Arc::new(crate::roles::PgAuthMembers {
                    builtin,
                    shared: self.shared.clone(),
                }) as Arc<dyn TableProvider>
            }));
        }
        if name == "pg_statistic_ext" {
            return Ok(Some(empty_pg_statistic_ext()?));
        }
        if let Some(table) = crate::pg_keys::KeyTable::of(name) {
            // Keys and indexes, and pg_class with a row per index.
            let (Some(classes), Some(namespaces)) = (
                self.inner.table("pg_class").await?,
                self.inner.table("pg_namespace").await?,
            ) else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(crate::pg_keys::KeyCatalogTable {
                table,
                classes,
                namespaces,
                shared: self.shared.clone(),
                database: self.database.clone(),
                oids: self.key_oids.clone(),
                relations: self.relation_oids.clone(),
            })));
        }
        let table = self.inner.table(name).await?;
        if name == "pg_namespace" {
            return Ok(
                table.map(|inner| Arc::new(NamespacesWithAcl { inner }) as Arc<dyn TableProvider>)
            );
        }
        if name == "pg_database" {
            return Ok(table.map(|inner| {
                Arc::new(ExistingDatabases {
                    inner,
                    shared: self.shared.clone(),
                }) as Arc<dyn TableProvider>
            }));
        }
        let view = match name {
            "pg_attribute" => AttributeView::Attributes,
            "pg_attrdef" => AttributeView::Defaults,
            _ => return Ok(table),
        };
        let (Some(attributes), Some(classes), Some(namespaces)) = (
            self.inner.table("pg_attribute").await?,
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) else {
            return Ok(table);
        };
        Ok(Some(Arc::new(DeclaredTypesAttribute {
            attributes,
            classes,
            namespaces,
            shared: self.shared.clone(),
            database: self.database.clone(),
            view,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        crate::pg_keys::ADDED_CATALOG_TABLES.contains(&name) || self.inner.table_exist(name)
    }
}

/// The OID the session's `pg_class` gives the relation `name` of `schema`,
/// as RowDescription names a result column's table
/// ([`crate::column_origins`]). The crate hands OIDs out as it lists
/// relations, so a relation no `pg_class` read has listed yet is listed
/// now, once. `None` if the relation is not in `pg_class`.
pub(crate) async fn relation_oid(
    session: &crate::Session,
    schema: &str,
    name: &str,
) -> Option<i32> {
    let pg_catalog = session
        .ctx
        .catalog(session.database())?
        .schema("pg_catalog")?;
    let declared = pg_catalog.downcast_ref::<DeclaredTypesCatalog>()?;
    if let Some(oid) = declared.relation_oids.oid_of(schema, name) {
        return Some(oid);
    }
    let classes = declared.table("pg_class").await.ok()??;
    // Planning the scan reads pg_class, which records every OID it lists.
    classes
        .scan(&session.ctx.state(), None, &[], None)
        .await
        .ok()?;
    declared.relation_oids.oid_of(schema, name)
}

/// `pg_attribute` with the declared types and `atthasdef` of stored
/// columns, or (the same walk over the columns) `pg_attrdef` with their
/// DEFAULT expressions.
#[derive(Debug)]
struct DeclaredTypesAttribute {
    attributes: Arc<dyn TableProvider>,
    classes: Arc<dyn TableProvider>,
    namespaces: Arc<dyn TableProvider>,
    shared: Arc<SessionShared>,
    database: String,
    view: AttributeView,
}

/// Which of the two catalog tables a [`DeclaredTypesAttribute`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttributeView {
    Attributes,
    Defaults,
}

/// `pg_attrdef`: one row per column with a DEFAULT. `adbin` holds the
/// expression as SQL text (Postgres keeps a node tree there), which is what
/// [`PgGetExpr`] hands back.
fn attrdef_schema() -> SchemaRef {
    Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("adrelid", DataType::Int32, false),
        Field::new("adnum", DataType::Int16, false),
        Field::new("adbin", DataType::Utf8, false),
    ]))
}

/// The first pg_attrdef OID; any value clear of the relations' OIDs serves,
/// as nothing joins on it.
const FIRST_ATTRDEF_OID: i32 = 1 << 30;

/// `schema` with the privileges column `acl` (`attacl`, `nspacl`) as
/// PostgreSQL types it, an array (`aclitem[]`, here text items), where the
/// crate has a string: psql's `\dp` and `\dn+` hand it to `array_to_string`.
fn with_acl_list(schema: &SchemaRef, acl: &str) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            if field.name() == acl {
                Field::new(
                    acl,
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    true,
                )
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// `columns` of a batch of `rows` rows, read with the crate's schema, under
/// `schema` (from [`with_acl_list`]): the `acl` column NULL, as when no
/// privileges were granted.
fn with_null_acl(
    schema: &SchemaRef,
    acl: &str,
    mut columns: Vec<datafusion::arrow::array::ArrayRef>,
    rows: usize,
) -> DfResult<RecordBatch> {
    if let Ok(at) = schema.index_of(acl) {
        columns[at] = datafusion::arrow::array::new_null_array(schema.field(at).data_type(), rows);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Reads a whole catalog table; catalog tables are small.
pub(crate) async fn read_all(
    table: &Arc<dyn TableProvider>,
    state: &dyn DfSession,
) -> DfResult<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

/// A catalog table's column by name.
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> DfResult<&'a Arc<dyn Array>> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog column {name} is missing")))
}

#[async_trait]
impl TableProvider for DeclaredTypesAttribute {
    fn schema(&self) -> SchemaRef {
        match self.view {
            AttributeView::Attributes => with_acl_list(&self.attributes.schema(), "attacl"),
            AttributeView::Defaults => attrdef_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        self.attributes.table_type()
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut relation_names: HashMap<i32, (String, i32)> = HashMap::new();
        for batch in read_all(&self.classes, state).await? {
            let oids = column(&batch, "oid")?.as_primitive::<Int32Type>();
            let names = column(&batch, "relname")?.as_string::<i32>();
            let spaces = column(&batch, "relnamespace")?.as_primitive::<Int32Type>();
            for i in 0..batch.num_rows() {
                relation_names.insert(oids.value(i), (names.value(i).to_string(), spaces.value(i)));
            }
        }
        let mut namespace_names: HashMap<i32, String> = HashMap::new();
        for batch in read_all(&self.namespaces, state).await? {
            let oids = column(&batch, "oid")?.as_primitive::<Int32Type>();
            let names = column(&batch, "nspname")?.as_string::<i32>();
            for i in 0..batch.num_rows() {
                namespace_names.insert(oids.value(i), names.value(i).to_string());
            }
        }
        let mut declared: HashMap<i32, Option<StoredRelation>> = HashMap::new();
        let mut batches = Vec::new();
        let (mut def_relids, mut def_nums, mut def_exprs) = (Vec::new(), Vec::new(), Vec::new());
        for batch in read_all(&self.attributes, state).await? {
            let relids = column(&batch, "attrelid")?
                .as_primitive::<Int32Type>()
                .clone();
            let names = column(&batch, "attname")?.as_string::<i32>().clone();
            let nums = column(&batch, "attnum")?
                .as_primitive::<Int16Type>()
                .clone();
            let mut has_default = vec![false; batch.num_rows()];
            let mut typids: Vec<i32> = column(&batch, "atttypid")?
                .as_primitive::<Int32Type>()
                .values()
                .to_vec();
            let mut typmods: Vec<i32> = column(&batch, "atttypmod")?
                .as_primitive::<Int32Type>()
                .values()
                .to_vec();
            for row in 0..batch.num_rows() {
                let relid = relids.value(row);
                let stored = declared.entry(relid).or_insert_with(|| {
                    let (name, space) = relation_names.get(&relid)?;
                    let schema_name = namespace_names.get(space)?;
                    self.stored_relation(schema_name, name)
                });
                let Some(stored) = stored.as_ref() else {
                    continue;
                };
                let name = names.value(row);
                if let Some(default) = stored
                    .columns
                    .get(name)
                    .and_then(|c| c.default_sql.as_ref())
                {
                    has_default[row] = true;
                    def_relids.push(relid);
                    def_nums.push(nums.value(row));
                    def_exprs.push(match stored.schema.field_with_name(name) {
                        Ok(field) => deparsed_default(default, field),
                        Err(_) => default.clone(),
                    });
                }
                let Ok(field) = stored.schema.field_with_name(name) else {
                    continue;
                };
                if let Some((typid, typmod)) = declared_pg_type(field) {
                    typids[row] = typid;
                    typmods[row] = typmod;
                }
            }
            let mut columns = batch.columns().to_vec();
            let schema = with_acl_list(&batch.schema(), "attacl");
            if let (Ok(typid_at), Ok(typmod_at), Ok(hasdef_at)) = (
                schema.index_of("atttypid"),
                schema.index_of("atttypmod"),
                schema.index_of("atthasdef"),
            ) {
                columns[typid_at] = Arc::new(Int32Array::from(typids));
                columns[typmod_at] = Arc::new(Int32Array::from(typmods));
                columns[hasdef_at] = Arc::new(BooleanArray::from(has_default));
            }
            // No column privileges: NULL, as in PostgreSQL.
            batches.push(with_null_acl(&schema, "attacl", columns, batch.num_rows())?);
        }
        if self.view == AttributeView::Defaults {
            let oids = (FIRST_ATTRDEF_OID..)
                .take(def_relids.len())
                .collect::<Vec<_>>();
            let defaults = RecordBatch::try_new(
                attrdef_schema(),
                vec![
                    Arc::new(Int32Array::from(oids)),
                    Arc::new(Int32Array::from(def_relids)),
                    Arc::new(Int16Array::from(def_nums)),
                    Arc::new(StringArray::from(def_exprs)),
                ],
            )?;
            batches = vec![defaults];
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// Row-level security policies: Freshet has none, but psql's `\d` asks, and
/// compares `polroles` as an array of role OIDs.
fn empty_pg_policy() -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("polname", DataType::Utf8, false),
        Field::new("polrelid", DataType::Int32, false),
        Field::new("polcmd", DataType::Utf8, false),
        Field::new("polpermissive", DataType::Boolean, false),
        Field::new(
            "polroles",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
        Field::new("polqual", DataType::Utf8, true),
        Field::new("polwithcheck", DataType::Utf8, true),
    ]));
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![]],
    )?))
}

/// Extended statistics: none in Freshet; psql's `\d` tests `stxkind` as a
/// `char[]`.
fn empty_pg_statistic_ext() -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("stxrelid", DataType::Int32, false),
        Field::new("stxname", DataType::Utf8, false),
        Field::new("stxnamespace", DataType::Int32, false),
        Field::new("stxowner", DataType::Int32, false),
        Field::new("stxstattarget", DataType::Int32, false),
        Field::new("stxkeys", DataType::Utf8, true),
        Field::new(
            "stxkind",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ),
        Field::new("stxexprs", DataType::Utf8, true),
    ]));
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![]],
    )?))
}

/// pg_database without the `postgres` row datafusion-pg-catalog always adds:
/// clients would offer a database that does not exist.
#[derive(Debug)]
struct ExistingDatabases {
    inner: Arc<dyn TableProvider>,
    shared: Arc<SessionShared>,
}

#[async_trait]
impl TableProvider for ExistingDatabases {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut batches = Vec::new();
        for batch in read_all(&self.inner, state).await? {
            let names = column(&batch, "datname")?.as_string::<i32>().clone();
            let keep: datafusion::arrow::array::BooleanArray = names
                .iter()
                .map(|name| {
                    let name = name.unwrap_or_default();
                    Some(
                        self.shared
                            .with_txn(|t| t.get_meta(&catalog::database_key(name)).is_some())
                            .unwrap_or(true),
                    )
                })
                .collect();
            batches.push(datafusion::arrow::compute::filter_record_batch(
                &batch, &keep,
            )?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// `pg_namespace` with `nspacl` as a `text[]` (NULL: schemas carry no
/// grants in Freshet), as psql's `\dn+` passes it to `array_to_string`; the
/// crate's column is text.
#[derive(Debug)]
struct NamespacesWithAcl {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for NamespacesWithAcl {
    fn schema(&self) -> SchemaRef {
        with_acl_list(&self.inner.schema(), "nspacl")
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let batches = read_all(&self.inner, state)
            .await?
            .into_iter()
            .map(|b| with_null_acl(&schema, "nspacl", b.columns().to_vec(), b.num_rows()))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            schema,
            projection.cloned(),
        )?)
    }
}

impl DeclaredTypesAttribute {
    /// The stored schema and column extras of `schema.name`, in the session's database
    /// (pg_namespace does not say which database a schema belongs to).
    fn stored_relation(&self, schema: &str, name: &str) -> Option<StoredRelation> {
        self.shared
            .with_txn(|t| {
                let key = catalog::relation_key(&QualifiedName {
                    database: self.database.clone(),
                    schema: schema.to_string(),
                    name: name.to_string(),
                });
                let entry: RelationEntry = catalog::get(t, &key).ok().flatten()?;
                let schema = t.table_schema(entry.table_id?).ok()?;
                Some(StoredRelation {
                    schema,
                    columns: entry.columns,
                })
            })
            .ok()
            .flatten()
    }
}

/// What the catalog stores of a relation that `pg_attribute` lacks.
struct StoredRelation {
    /// Fields carry the declared SQL type in their metadata.
    schema: SchemaRef,
    /// Per-column extras, DEFAULT expressions among them.
    columns: std::collections::BTreeMap<String, catalog::ColumnInfo>,
}

/// A DEFAULT's text as PostgreSQL's deparser shows it: a string literal is
/// an untyped constant coerced to the column's type, so it is written with
/// that cast (`'eu'::text`, `'2024-01-01'::date`); other expressions keep the
/// text they were declared with.
fn deparsed_default(default: &str, field: &Field) -> String {
    let text = default.trim();
    let is_string_literal = text.len() >= 2
        && text.starts_with('\'')
        && text.ends_with('\'')
        && !text[1..text.len() - 1].replace("''", "").contains('\'');
    if is_string_literal {
        format!("{text}::{}", crate::info_schema::standard_type_name(field))
    } else {
        default.to_string()
    }
}

/// What pg_catalog's tables are built from: every database (for
/// `pg_database`), but the schemas and tables of the session's database only.
/// In Postgres each database has its own catalog, so psql's `\dn` and `\dt`
/// list only the current database's objects; without this filter they would
/// list every database's `public` schema and tables.
#[derive(Debug, Clone)]
pub(crate) struct CurrentDatabaseCatalogs {
    pub(crate) list: Arc<dyn CatalogProviderList>,
    pub(crate) database: String,
}

#[async_trait]
impl CatalogInfo for CurrentDatabaseCatalogs {
    async fn catalog_names(&self) -> DfResult<Vec<String>> {
        CatalogInfo::catalog_names(&self.list).await
    }

    async fn schema_names(&self, catalog_name: &str) -> DfResult<Option<Vec<String>>> {
        if catalog_name != self.database {
            return Ok(None);
        }
        CatalogInfo::schema_names(&self.list, catalog_name).await
    }

    async fn table_names(
        &self,
        catalog_name: &str,
        schema_name: &str,
    ) -> DfResult<Option<Vec<String>>> {
        if catalog_name != self.database {
            return Ok(None);
        }
        CatalogInfo::table_names(&self.list, catalog_name, schema_name).await
    }

    async fn table_schema(
        &self,
        catalog_name: &str,
        schema_name: &str,
        table_name: &str,
    ) -> DfResult<Option<SchemaRef>> {
        CatalogInfo::table_schema(&self.list, catalog_name, schema_name, table_name).await
    }

    async fn table_type(
        &self,
        catalog_name: &str,
        schema_name: &str,
        table_name: &str,
    ) -> DfResult<Option<TableType>> {
        CatalogInfo::table_type(&self.list, catalog_name, schema_name, table_name).await
    }
}

/// `pg_catalog` as datafusion-pg-catalog builds it, over
/// [`CurrentDatabaseCatalogs`]. The crate's static tables (pg_type, pg_proc,
/// …) are decoded once per process rather than once per session.
pub(crate) fn current_database_pg_catalog(
    list: Arc<dyn CatalogProviderList>,
    database: &str,
) -> DfResult<Arc<dyn SchemaProvider>> {
    let provider = PgCatalogSchemaProvider::try_new(
        CurrentDatabaseCatalogs {
            list,
            database: database.to_string(),
        },
        static_tables()?,
        datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )?;
    Ok(Arc::new(provider))
}

/// The crate's static pg_catalog tables, decoded on first use. Decoding them
/// (lz4-compressed Arrow IPC) costs about a millisecond, which every new
/// session and every dynamic-table refresh would otherwise pay.
fn static_tables() -> DfResult<Arc<PgCatalogStaticTables>> {
    static STATIC_TABLES: std::sync::OnceLock<Arc<PgCatalogStaticTables>> =
        std::sync::OnceLock::new();
    Ok(match STATIC_TABLES.get() {
        Some(tables) => tables.clone(),
        None => {
            let tables = Arc::new(PgCatalogStaticTables::try_new()?);
            STATIC_TABLES.get_or_init(|| tables).clone()
        }
    })
}

/// Registers the functions psql, drivers and GUI tools call in catalog
/// queries (`format_type`, `pg_table_is_visible`, `has_*_privilege`, …), as
/// `datafusion_pg_catalog::setup_pg_catalog` does, but over the static tables
/// decoded once per process; the pg_catalog schema itself comes from
/// [`current_database_pg_catalog`].
pub(crate) fn register_pg_catalog_functions(
    ctx: &datafusion::prelude::SessionContext,
    database: &str,
) -> DfResult<()> {
    use datafusion_pg_catalog::pg_catalog::{self as pg, array_bounds_udf, has_privilege_udf};
    let static_tables = static_tables()?;
    for udf in [
        pg::create_current_database_udf(database),
        pg::create_current_schema_udf(),
        pg::create_current_schemas_udf(),
        has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        pg::create_pg_table_is_visible(),
        pg::format_type::create_format_type_udf(),
        ScalarUDF::new_from_impl(PgGetExpr::new()),
        pg::create_pg_get_partkeydef_udf(),
        pg::create_pg_relation_is_publishable_udf(),
        pg::create_pg_get_statisticsobjdef_columns_udf(),
        pg::create_pg_encoding_to_char_udf(),
        pg::create_pg_backend_pid_udf(),
        pg::create_pg_stat_get_numscans(),
        pg::create_pg_get_partition_ancestors_udf(),
        pg::quote_ident_udf::create_quote_ident_udf(),
        pg::quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ] {
        ctx.register_udf(udf);
    }
    ctx.register_udtf("pg_get_keywords", static_tables.pg_get_keywords.clone());
    // `regclass`, `regtype`, … parse as casts (to int4), as in the crate.
    {
        let state = ctx.state_ref();
        let existing = state.read().clone();
        let with_oid_types =
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(existing)
                .with_type_planner(Arc::new(pg::oid_type_planner::PgOidTypePlanner))
                .build();
        *state.write() = with_oid_types;
    }
    pg::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
    Ok(())
}

/// `pg_get_expr(expr, relation [, pretty])`: the SQL text of a catalog
/// expression. Freshet's catalog tables hold expressions as SQL text already
/// (`pg_attrdef.adbin`), so this returns its first argument; the crate's
/// version answers an empty string for every expression.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgGetExpr {
    signature: Signature,
}

impl PgGetExpr {
    fn new() -> PgGetExpr {
        let ints = [
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt32,
            DataType::UInt64,
        ];
        let mut accepted = Vec::new();
        for int in ints {
            accepted.push(TypeSignature::Exact(vec![DataType::Utf8, int.clone()]));
            accepted.push(TypeSignature::Exact(vec![
                DataType::Utf8,
                int,
                DataType::Boolean,
            ]));
        }
        PgGetExpr {
            signature: Signature::one_of(accepted, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for PgGetExpr {
    fn name(&self) -> &str {
        "pg_get_expr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("pg_get_expr called without arguments".into()))
    }
}
