//! `information_schema` with Postgres' type names.
//!
//! DataFusion's information_schema reports Arrow types (`Int64`, `Utf8`) and
//! 0-based ordinal positions. Drivers, ORMs and BI tools read
//! `information_schema.columns` expecting the SQL standard's names
//! (`bigint`, `character varying`) and positions starting at 1. This wraps
//! DataFusion's provider and rewrites those columns of `columns` from the
//! declared types Freshet keeps in field metadata, and adds
//! `table_privileges` from the catalog's owners and grants.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit, UInt64Type};
use datafusion::catalog::{SchemaProvider, Session as DfSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::pg_types::{column, read_all};
use crate::provider::SessionShared;
use crate::types::{declared_char_length, SQL_TYPE_METADATA};

/// DataFusion's information_schema with a corrected `columns` table.
#[derive(Debug)]
pub(crate) struct PostgresInformationSchema {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) catalogs: Arc<dyn datafusion::catalog::CatalogProviderList>,
    /// The session's catalog access, for `table_privileges`.
    pub(crate) shared: Arc<SessionShared>,
    /// The session's database: `table_privileges` lists its relations.
    pub(crate) database: String,
}

/// The views Freshet adds to DataFusion's.
const TABLE_PRIVILEGES: &str = "table_privileges";

#[async_trait]
impl SchemaProvider for PostgresInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push(TABLE_PRIVILEGES.to_string());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if name == TABLE_PRIVILEGES {
            return Ok(Some(Arc::new(TablePrivileges {
                shared: self.shared.clone(),
                database: self.database.clone(),
            })));
        }
        let table = self.inner.table(name).await?;
        match table {
            Some(inner) if name.eq_ignore_ascii_case("columns") => Ok(Some(Arc::new(Columns {
                inner,
                catalogs: self.catalogs.clone(),
            }))),
            other => Ok(other),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name == TABLE_PRIVILEGES || self.inner.table_exist(name)
    }
}

/// `information_schema.table_privileges`: one row per privilege on a
/// relation of the session's database, as PostgreSQL lists them. The owner
/// holds every privilege, grantable (a REVOKE from the owner changes
/// nothing here, see docs/security.md); the rows shown are those granted to or by the current user, or to PUBLIC
/// (all of them, for a superuser).
#[derive(Debug)]
struct TablePrivileges {
    shared: Arc<SessionShared>,
    database: String,
}

impl TablePrivileges {
    fn table_schema() -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            text("grantor"),
            text("grantee"),
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("privilege_type"),
            text("is_grantable"),
            text("with_hierarchy"),
        ]))
    }

    fn rows(&self) -> DfResult<RecordBatch> {
        use freshet_catalog::{self as catalog, Grantee, RelationEntry, TablePrivilege};
        let user = self.shared.user.as_str();
        let superuser = crate::privileges::is_superuser(&self.shared, user)
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        let relations: Vec<RelationEntry> = self.shared.with_txn(|t| {
            catalog::list(t, &catalog::relation_prefix(&self.database, None))
                .map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))
        })??;
        let mut columns: Vec<datafusion::arrow::array::StringBuilder> = (0..8)
            .map(|_| datafusion::arrow::array::StringBuilder::new())
            .collect();
        let mut push = |relation: &RelationEntry,
                        grantor: &str,
                        grantee: &str,
                        privilege: TablePrivilege,
                        grantable: bool| {
            if !(superuser || grantor == user || grantee == user || grantee == "PUBLIC") {
                return;
            }
            let values = [
                grantor,
                grantee,
                &self.database,
                &relation.schema,
                &relation.name,
                privilege.keyword(),
                if grantable { "YES" } else { "NO" },
                if privilege == TablePrivilege::Select {
                    "YES"
                } else {
                    "NO"
                },
            ];
            for (column, value) in columns.iter_mut().zip(values) {
                column.append_value(value);
            }
        };
        for relation in &relations {
            let Some(owner) = relation.acl.owner.as_deref() else {
                continue;
            };
            for privilege in TablePrivilege::ALL {
                push(relation, owner, owner, privilege, true);
            }
            for grant in &relation.acl.grants {
                let grantee = match &grant.grantee {
                    Grantee::Public => "PUBLIC",
                    Grantee::Role(role) => role.as_str(),
                };
                for privilege in &grant.privileges {
                    push(relation, &grant.grantor, grantee, *privilege, false);
                }
            }
        }
        let arrays: Vec<datafusion::arrow::array::ArrayRef> = columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as datafusion::arrow::array::ArrayRef)
            .collect();
        Ok(RecordBatch::try_new(Self::table_schema(), arrays)?)
    }
}

#[async_trait]
impl TableProvider for TablePrivileges {
    fn schema(&self) -> SchemaRef {
        Self::table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![self.rows()?]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

#[derive(Debug)]
struct Columns {
    inner: Arc<dyn TableProvider>,
    catalogs: Arc<dyn datafusion::catalog::CatalogProviderList>,
}

#[async_trait]
impl TableProvider for Columns {
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
            batches.push(self.correct(batch).await?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

impl Columns {
    async fn correct(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let catalogs = column(&batch, "table_catalog")?.as_string::<i32>().clone();
        let schemas = column(&batch, "table_schema")?.as_string::<i32>().clone();
        let tables = column(&batch, "table_name")?.as_string::<i32>().clone();
        let names = column(&batch, "column_name")?.as_string::<i32>().clone();
        let positions = column(&batch, "ordinal_position")?
            .as_primitive::<UInt64Type>()
            .clone();
        let mut data_types = Vec::with_capacity(batch.num_rows());
        let mut max_lengths = Vec::with_capacity(batch.num_rows());
        let mut numeric: Vec<[Option<u64>; 3]> = Vec::with_capacity(batch.num_rows());
        let mut current: Option<((String, String, String), Option<SchemaRef>)> = None;
        for row in 0..batch.num_rows() {
            let key = (
                catalogs.value(row).to_string(),
                schemas.value(row).to_string(),
                tables.value(row).to_string(),
            );
            if current.as_ref().map(|(k, _)| k) != Some(&key) {
                let schema = self.table_schema(&key.0, &key.1, &key.2).await;
                current = Some((key, schema));
            }
            let field = current
                .as_ref()
                .and_then(|(_, s)| s.as_ref())
                .and_then(|s| s.field_with_name(names.value(row)).ok().cloned());
            match field {
                Some(field) => {
                    data_types.push(standard_type_name(&field));
                    max_lengths.push(declared_char_length(&field).map(|n| n as u64));
                    numeric.push(numeric_sizes(&field));
                }
                None => {
                    data_types.push("text".to_string());
                    max_lengths.push(None);
                    numeric.push([None; 3]);
                }
            }
        }
        let mut columns = batch.columns().to_vec();
        let schema = batch.schema();
        if let Ok(i) = schema.index_of("ordinal_position") {
            columns[i] = Arc::new(UInt64Array::from_iter_values(
                positions.values().iter().map(|p| p + 1),
            ));
        }
        if let Ok(i) = schema.index_of("data_type") {
            columns[i] = Arc::new(StringArray::from(data_types));
        }
        if let Ok(i) = schema.index_of("character_maximum_length") {
            columns[i] = Arc::new(UInt64Array::from(max_lengths));
        }
        for (k, name) in [
            "numeric_precision",
            "numeric_precision_radix",
            "numeric_scale",
        ]
        .into_iter()
        .enumerate()
        {
            if let Ok(i) = schema.index_of(name) {
                columns[i] = Arc::new(UInt64Array::from(
                    numeric.iter().map(|sizes| sizes[k]).collect::<Vec<_>>(),
                ));
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    async fn table_schema(&self, catalog: &str, schema: &str, table: &str) -> Option<SchemaRef> {
        let provider = self
            .catalogs
            .catalog(catalog)?
            .schema(schema)?
            .table(table)
            .await
            .ok()??;
        Some(provider.schema())
    }
}

/// `numeric_precision`, `numeric_precision_radix` and `numeric_scale` of a
/// column, as PostgreSQL's information_schema gives them: bits for integers
/// (scale 0) and floats, digits for a `numeric(p,s)`, only the radix for a
/// `numeric` declared without a precision, nothing for other types.
fn numeric_sizes(field: &Field) -> [Option<u64>; 3] {
    let declared_bare_numeric = field
        .metadata()
        .get(SQL_TYPE_METADATA)
        .is_some_and(|t| matches!(t.as_str(), "numeric" | "decimal" | "dec"));
    match field.data_type() {
        DataType::Int8 | DataType::Int16 => [Some(16), Some(2), Some(0)],
        DataType::Int32 => [Some(32), Some(2), Some(0)],
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => [Some(64), Some(2), Some(0)],
        DataType::Float32 => [Some(24), Some(2), None],
        DataType::Float64 => [Some(53), Some(2), None],
        DataType::Decimal128(..) if declared_bare_numeric => [None, Some(10), None],
        DataType::Decimal128(p, s) => [Some(u64::from(*p)), Some(10), u64::try_from(*s).ok()],
        _ => [None; 3],
    }
}

/// The information_schema spelling of a column's type (also what
/// PostgreSQL's deparser writes after `::`).
pub(crate) fn standard_type_name(field: &Field) -> String {
    let declared = field
        .metadata()
        .get(SQL_TYPE_METADATA)
        .map(|d| d.split('(').next().unwrap_or(d).trim().to_string());
    match declared.as_deref() {
        Some("varchar" | "character varying") => return "character varying".into(),
        Some("char" | "character") => return "character".into(),
        Some("jsonb") => return "jsonb".into(),
        _ => {}
    }
    if crate::types::is_json(field) {
        return "json".into();
    }
    match field.data_type() {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "numeric",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Timestamp(
            TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond,
            None,
        ) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Interval(_) => "interval",
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => "ARRAY",
        DataType::Struct(_) | DataType::Map(_, _) => "json",
        _ => "USER-DEFINED",
    }
    .to_string()
}
