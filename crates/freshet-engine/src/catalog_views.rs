//! `pg_tables` and `pg_views` as PostgreSQL defines them: views over
//! `pg_class`.
//!
//! datafusion-pg-catalog fills both from DataFusion's catalog list, and
//! what it gave was wrong without an error: `pg_tables` listed views as
//! tables, named every owner `postgres`, said no table had an index, and
//! called its index column `hasindex` (PostgreSQL's is `hasindexes`, so a
//! query naming it failed); `pg_views` was empty. Scripts and tools list a
//! database's tables from `pg_tables` more than from anywhere else.
//!
//! [`PgView`] holds PostgreSQL's own definition of each view (the parts
//! Freshet has: no tablespaces, rules or triggers), run over Freshet's
//! `pg_class`, whose kinds, owners and `relhasindex` come from its catalog.
//! The view is planned and read in the scanning session when scanned.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// A `pg_catalog` view Freshet defines over its `pg_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgView {
    Tables,
    Views,
}

impl PgView {
    /// The view of this name, if Freshet defines it.
    pub(crate) fn named(name: &str) -> Option<PgView> {
        match name {
            "pg_tables" => Some(PgView::Tables),
            "pg_views" => Some(PgView::Views),
            _ => None,
        }
    }

    /// PostgreSQL 15's definition, less what Freshet does not have.
    fn sql(self) -> &'static str {
        match self {
            PgView::Tables => {
                "SELECT n.nspname AS schemaname, c.relname AS tablename, \
                 pg_get_userbyid(c.relowner) AS tableowner, CAST(NULL AS text) AS tablespace, \
                 c.relhasindex AS hasindexes, false AS hasrules, false AS hastriggers, \
                 c.relrowsecurity AS rowsecurity \
                 FROM pg_catalog.pg_class c \
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p')"
            }
            PgView::Views => {
                "SELECT n.nspname AS schemaname, c.relname AS viewname, \
                 pg_get_userbyid(c.relowner) AS viewowner, pg_get_viewdef(c.oid) AS definition \
                 FROM pg_catalog.pg_class c \
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'v'"
            }
        }
    }

    fn schema(self) -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let flag = |name: &str| Field::new(name, DataType::Boolean, true);
        Arc::new(Schema::new(match self {
            PgView::Tables => vec![
                text("schemaname"),
                text("tablename"),
                text("tableowner"),
                text("tablespace"),
                flag("hasindexes"),
                flag("hasrules"),
                flag("hastriggers"),
                flag("rowsecurity"),
            ],
            PgView::Views => vec![
                text("schemaname"),
                text("viewname"),
                text("viewowner"),
                text("definition"),
            ],
        }))
    }

    pub(crate) fn provider(self) -> Arc<dyn TableProvider> {
        Arc::new(CatalogView { view: self })
    }
}

#[derive(Debug)]
struct CatalogView {
    view: PgView,
}

#[async_trait]
impl TableProvider for CatalogView {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "pg_catalog views are read in a DataFusion session".into(),
            ));
        };
        let plan = state.create_logical_plan(self.view.sql()).await?;
        let plan = state.create_physical_plan(&plan).await?;
        let schema = self.schema();
        let mut batches = Vec::new();
        for batch in datafusion::physical_plan::collect(plan, state.task_ctx()).await? {
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| cast(column, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            schema,
            projection.cloned(),
        )?)
    }
}
