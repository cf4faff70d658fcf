//! `information_schema` with Postgres' type names.
//!
//! DataFusion's information_schema reports Arrow types (`Int64`, `Utf8`) and
//! 0-based ordinal positions. Drivers, ORMs and BI tools read
//! `information_schema.columns` expecting the SQL standard's names
//! (`bigint`, `character varying`) and positions starting at 1. This wraps
//! DataFusion's provider and rewrites those columns of `columns` from the
//! declared types Freshet keeps in field metadata, with its sizes and
//! positions typed as PostgreSQL's `cardinal_number` (an integer domain, so
//! drivers read numbers, not the strings a bigint becomes in JavaScript).
//! It adds the views DataFusion lacks from the catalog: `table_privileges`
//! (owners and grants), `table_constraints` and `key_column_usage`
//! (PRIMARY KEY and UNIQUE constraints).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, AsArray, Int32Array, Int32Builder, RecordBatch, StringArray,
    StringBuilder, UInt64Array,
};
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

/// The views Freshet adds to DataFusion's, computed from the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatalogView {
    TablePrivileges,
    TableConstraints,
    KeyColumnUsage,
}

impl CatalogView {
    const ALL: [CatalogView; 3] = [
        CatalogView::TablePrivileges,
        CatalogView::TableConstraints,
        CatalogView::KeyColumnUsage,
    ];

    fn name(self) -> &'static str {
        match self {
            CatalogView::TablePrivileges => "table_privileges",
            CatalogView::TableConstraints => "table_constraints",
            CatalogView::KeyColumnUsage => "key_column_usage",
        }
    }

    fn named(name: &str) -> Option<CatalogView> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

#[async_trait]
impl SchemaProvider for PostgresInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(CatalogView::ALL.iter().map(|v| v.name().to_string()));
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = CatalogView::named(name) {
            return Ok(Some(Arc::new(CatalogViewTable {
                view,
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
        CatalogView::named(name).is_some() || self.inner.table_exist(name)
    }
}

/// One of the [`CatalogView`]s, read from the catalog in the session's
/// transaction when scanned.
#[derive(Debug)]
struct CatalogViewTable {
    view: CatalogView,
    shared: Arc<SessionShared>,
    /// The session's database: the views list its relations.
    database: String,
}

/// What the session's user may see of a relation in these views.
struct Visibility {
    /// The user and the roles whose privileges it has (PostgreSQL's
    /// `pg_has_role(…, 'USAGE')`).
    roles: Vec<String>,
    superuser: bool,
}

impl Visibility {
    /// Whether the user is `role` or has its privileges.
    fn acts_as(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user owns the relation or holds one of `privileges` on
    /// it (a superuser sees everything), PostgreSQL's test for listing a
    /// relation's constraints.
    fn any_of(
        &self,
        relation: &freshet_catalog::RelationEntry,
        privileges: &[freshet_catalog::TablePrivilege],
    ) -> bool {
        self.superuser
            || self.roles.iter().any(|role| {
                relation.acl.is_owner(role)
                    || privileges.iter().any(|p| relation.acl.allows(role, *p))
            })
    }
}

impl CatalogViewTable {
    fn table_schema(view: CatalogView) -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let nullable_text = |name: &str| Field::new(name, DataType::Utf8, true);
        let cardinal = |name: &str, nullable: bool| Field::new(name, DataType::Int32, nullable);
        let fields = match view {
            CatalogView::TablePrivileges => vec![
                text("grantor"),
                text("grantee"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("privilege_type"),
                text("is_grantable"),
                text("with_hierarchy"),
            ],
            CatalogView::TableConstraints => vec![
                text("constraint_catalog"),
                text("constraint_schema"),
                text("constraint_name"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("constraint_type"),
                text("is_deferrable"),
                text("initially_deferred"),
                text("enforced"),
                nullable_text("nulls_distinct"),
            ],
            CatalogView::KeyColumnUsage => vec![
                text("constraint_catalog"),
                text("constraint_schema"),
                text("constraint_name"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("column_name"),
                cardinal("ordinal_position", false),
                cardinal("position_in_unique_constraint", true),
            ],
        };
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
    }

    fn rows(&self) -> DfResult<RecordBatch> {
        use freshet_catalog::{self as catalog, RelationEntry};
        let user = self.shared.user.as_str();
        let superuser = crate::privileges::is_superuser(&self.shared, user)
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        let relations: Vec<RelationEntry> = self.shared.with_txn(|t| {
            catalog::list(t, &catalog::relation_prefix(&self.database, None))
                .map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))
        })??;
        let roles = crate::privileges::roles_of(&self.shared, user)
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        let visibility = Visibility { roles, superuser };
        let schema = Self::table_schema(self.view);
        let columns = match self.view {
            CatalogView::TablePrivileges => self.table_privileges(&relations, &visibility),
            CatalogView::TableConstraints => self.table_constraints(&relations, &visibility),
            CatalogView::KeyColumnUsage => self.key_column_usage(&relations, &visibility),
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// `table_privileges`: one row per privilege on a relation, as
    /// PostgreSQL lists them. The owner holds every privilege, grantable (a
    /// REVOKE from the owner changes nothing here, see docs/security.md);
    /// the rows shown are those granted to or by the current user, or to
    /// PUBLIC (all of them, for a superuser).
    fn table_privileges(
        &self,
        relations: &[freshet_catalog::RelationEntry],
        visibility: &Visibility,
    ) -> Vec<ArrayRef> {
        use freshet_catalog::{Grantee, RelationEntry, TablePrivilege};
        let mut columns: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
        let mut push = |relation: &RelationEntry,
                        grantor: &str,
                        grantee: &str,
                        privilege: TablePrivilege,
                        grantable: bool| {
            if !(visibility.superuser
                || visibility.acts_as(grantor)
                || visibility.acts_as(grantee)
                || grantee == "PUBLIC")
            {
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
        for relation in relations {
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
        columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect()
    }

    /// `table_constraints`: the PRIMARY KEY and UNIQUE constraints of the
    /// tables whose owner the user is, or on which they hold a privilege
    /// other than SELECT (PostgreSQL's rule). PostgreSQL also lists each
    /// NOT NULL column as a CHECK constraint named after OIDs; Freshet does
    /// not (README, known limits).
    fn table_constraints(
        &self,
        relations: &[freshet_catalog::RelationEntry],
        visibility: &Visibility,
    ) -> Vec<ArrayRef> {
        use freshet_catalog::TablePrivilege as P;
        let writes = [
            P::Insert,
            P::Update,
            P::Delete,
            P::Truncate,
            P::References,
            P::Trigger,
        ];
        let mut columns: Vec<StringBuilder> = (0..11).map(|_| StringBuilder::new()).collect();
        for relation in relations {
            if !visibility.any_of(relation, &writes) {
                continue;
            }
            for constraint in &relation.constraints {
                let values = [
                    Some(self.database.as_str()),
                    Some(relation.schema.as_str()),
                    Some(constraint.name.as_str()),
                    Some(self.database.as_str()),
                    Some(relation.schema.as_str()),
                    Some(relation.name.as_str()),
                    Some(if constraint.primary {
                        "PRIMARY KEY"
                    } else {
                        "UNIQUE"
                    }),
                    Some("NO"),
                    Some("NO"),
                    Some("YES"),
                    // PostgreSQL 15 answers only for UNIQUE: NULLs are
                    // distinct (Freshet has no NULLS NOT DISTINCT).
                    (!constraint.primary).then_some("YES"),
                ];
                for (column, value) in columns.iter_mut().zip(values) {
                    column.append_option(value);
                }
            }
        }
        columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect()
    }

    /// `key_column_usage`: each column of a PRIMARY KEY or UNIQUE
    /// constraint with its position in the key, for the tables whose owner
    /// the user is or on which they hold SELECT, INSERT, UPDATE or
    /// REFERENCES (PostgreSQL's rule).
    fn key_column_usage(
        &self,
        relations: &[freshet_catalog::RelationEntry],
        visibility: &Visibility,
    ) -> Vec<ArrayRef> {
        use freshet_catalog::TablePrivilege as P;
        let uses = [P::Select, P::Insert, P::Update, P::References];
        let mut text: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
        let mut positions = Int32Builder::new();
        for relation in relations {
            if !visibility.any_of(relation, &uses) {
                continue;
            }
            for constraint in &relation.constraints {
                for (position, column) in constraint.columns.iter().enumerate() {
                    let values = [
                        self.database.as_str(),
                        relation.schema.as_str(),
                        constraint.name.as_str(),
                        self.database.as_str(),
                        relation.schema.as_str(),
                        relation.name.as_str(),
                        column.as_str(),
                    ];
                    for (builder, value) in text.iter_mut().zip(values) {
                        builder.append_value(value);
                    }
                    positions.append_value(i32::try_from(position + 1).unwrap_or(i32::MAX));
                }
            }
        }
        let rows = positions.len();
        let mut columns: Vec<ArrayRef> = text
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(positions.finish()));
        // Only foreign keys have a position in the referenced constraint.
        columns.push(Arc::new(Int32Array::new_null(rows)));
        columns
    }
}

#[async_trait]
impl TableProvider for CatalogViewTable {
    fn schema(&self) -> SchemaRef {
        Self::table_schema(self.view)
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
        cardinal_numbers(&self.inner.schema())
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
        // Sizes and positions are cardinal_number (an integer) in
        // PostgreSQL; every one of them fits.
        let schema = cardinal_numbers(&schema);
        for (column, field) in columns.iter_mut().zip(schema.fields()) {
            if column.data_type() != field.data_type() {
                *column = datafusion::arrow::compute::cast(column, field.data_type())?;
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

/// DataFusion's `columns` schema with its unsigned sizes and positions
/// typed `integer`, as PostgreSQL's `cardinal_number` domain reaches
/// clients.
fn cardinal_numbers(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::UInt64 | DataType::UInt32 => {
                f.as_ref().clone().with_data_type(DataType::Int32)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
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
