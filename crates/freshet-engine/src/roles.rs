//! Roles in `pg_catalog`: who the users are and who owns what.
//!
//! datafusion-pg-catalog's `pg_roles` lists no role (psql's `\du` showed
//! nobody), its `pg_class.relowner` is 0 and its `pg_get_userbyid`
//! answers "postgres" for any OID, so every relation seemed owned by a
//! user that does not exist. Freshet's users are in its catalog, each with
//! the OID it was given at creation ([`UserEntry::oid`]); this module
//! serves them as PostgreSQL does:
//!
//! * `pg_roles` lists every user, then PostgreSQL's predefined `pg_*`
//!   roles from the crate's static `pg_authid`;
//! * `pg_auth_members` lists their memberships, for psql's `\du`;
//! * `pg_get_userbyid(oid)` names the role, or answers
//!   `unknown (OID=n)` as PostgreSQL does;
//! * [`role_oids`] gives `pg_class.relowner` ([`crate::pg_keys`]) the
//!   owners' OIDs.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::physical_plan::ExecutionPlan;

use freshet_catalog::{self as catalog, UserEntry, BOOTSTRAP_SUPERUSER_OID};

use crate::pg_types::{column, read_all};
use crate::provider::SessionShared;

/// The users, as the session's transaction (or the latest commit) sees
/// them, in name order.
fn users(shared: &SessionShared) -> DfResult<Vec<UserEntry>> {
    shared.with_txn(|t| {
        catalog::list::<UserEntry>(t, "user/")
            .map_err(|e| DataFusionError::Execution(e.to_string()))
    })?
}

/// A user's OID. Every user is given one at creation or, for users from
/// before OIDs were recorded, at the next start; the bootstrap
/// superuser's is a fallback that is never needed.
fn oid_of(user: &UserEntry) -> i32 {
    user.oid
        .unwrap_or(BOOTSTRAP_SUPERUSER_OID)
        .try_into()
        .unwrap_or(i32::MAX)
}

/// Each user's OID by name, for `pg_class.relowner`.
pub(crate) fn role_oids(shared: &SessionShared) -> DfResult<HashMap<String, i32>> {
    Ok(users(shared)?
        .iter()
        .map(|u| (u.name.clone(), oid_of(u)))
        .collect())
}

/// A role as `pg_roles` lists it: (name, superuser, can log in, OID).
type Role = (String, bool, bool, i32);

/// `pg_roles`: the users, then the predefined roles of `builtin` (the
/// crate's static `pg_authid`).
#[derive(Debug)]
pub(crate) struct PgRoles {
    pub(crate) builtin: Option<Arc<dyn TableProvider>>,
    pub(crate) shared: Arc<SessionShared>,
}

impl PgRoles {
    fn table_schema() -> SchemaRef {
        let flag = |name: &str| Field::new(name, DataType::Boolean, true);
        Arc::new(Schema::new(vec![
            Field::new("rolname", DataType::Utf8, true),
            flag("rolsuper"),
            flag("rolinherit"),
            flag("rolcreaterole"),
            flag("rolcreatedb"),
            flag("rolcanlogin"),
            flag("rolreplication"),
            Field::new("rolconnlimit", DataType::Int32, true),
            Field::new("rolpassword", DataType::Utf8, true),
            Field::new(
                "rolvaliduntil",
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                true,
            ),
            flag("rolbypassrls"),
            Field::new(
                "rolconfig",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("oid", DataType::Int32, true),
        ]))
    }

    /// One row per role: (name, superuser, can log in, OID), and its
    /// defaults for settings as `name=value` (ALTER ROLE … SET).
    async fn roles(&self, state: &dyn DfSession) -> DfResult<Vec<(Role, Vec<String>)>> {
        let mut roles: Vec<(Role, Vec<String>)> = users(&self.shared)?
            .iter()
            .map(|u| {
                let config = u.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                ((u.name.clone(), u.superuser, u.login, oid_of(u)), config)
            })
            .collect();
        if let Some(builtin) = &self.builtin {
            for batch in read_all(builtin, state).await? {
                let names = column(&batch, "rolname")?.as_string::<i32>();
                let oids = column(&batch, "oid")?.as_primitive::<Int32Type>();
                for i in 0..batch.num_rows() {
                    // The static table also holds PostgreSQL's own
                    // bootstrap superuser, which is not Freshet's.
                    if names.is_valid(i) && names.value(i).starts_with("pg_") {
                        roles.push((
                            (names.value(i).to_string(), false, false, oids.value(i)),
                            Vec::new(),
                        ));
                    }
                }
            }
        }
        Ok(roles)
    }
}

#[async_trait]
impl TableProvider for PgRoles {
    fn schema(&self) -> SchemaRef {
        Self::table_schema()
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
        let (roles, configs): (Vec<Role>, Vec<Vec<String>>) =
            self.roles(state).await?.into_iter().unzip();
        let n = roles.len();
        let flags = |f: &dyn Fn(&Role) -> bool| -> ArrayRef {
            Arc::new(BooleanArray::from(
                roles.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
            ))
        };
        // NULL for a role without defaults, as in PostgreSQL.
        let mut config = ListBuilder::new(StringBuilder::new());
        for settings in &configs {
            for setting in settings {
                config.values().append_value(setting);
            }
            config.append(!settings.is_empty());
        }
        // Freshet's superusers may create databases and manage users; no
        // role replicates or has row-level security to bypass.
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                roles.iter().map(|r| r.0.as_str()),
            )),
            flags(&|r| r.1),
            flags(&|_| true),
            flags(&|r| r.1),
            flags(&|r| r.1),
            flags(&|r| r.2),
            flags(&|_| false),
            Arc::new(Int32Array::from(vec![-1; n])),
            // PostgreSQL shows every password as asterisks here.
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                "********", n,
            ))),
            Arc::new(TimestampMicrosecondArray::new_null(n).with_timezone("UTC")),
            flags(&|_| false),
            Arc::new(config.finish()),
            Arc::new(Int32Array::from_iter_values(roles.iter().map(|r| r.3))),
        ];
        let schema = Self::table_schema();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}

/// Where `pg_auth_members.oid` counts from for Freshet's memberships:
/// above the role OIDs any real server hands out in practice.
const MEMBERSHIP_OIDS: i32 = 1_000_000_000;

/// `pg_auth_members`: who is a member of which role (`GRANT role TO
/// member`), by OID, then the predefined roles' own memberships from
/// `builtin` (the crate's static table). Columns are the builtin table's,
/// which has PostgreSQL 16's `oid`, `inherit_option` and `set_option` too.
#[derive(Debug)]
pub(crate) struct PgAuthMembers {
    pub(crate) builtin: Arc<dyn TableProvider>,
    pub(crate) shared: Arc<SessionShared>,
}

#[async_trait]
impl TableProvider for PgAuthMembers {
    fn schema(&self) -> SchemaRef {
        self.builtin.schema()
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
        let users = users(&self.shared)?;
        let oids: HashMap<&str, i32> = users.iter().map(|u| (u.name.as_str(), oid_of(u))).collect();
        // (roleid, member, grantor, admin_option); a grantor since dropped
        // is 0.
        let rows: Vec<(i32, i32, i32, bool)> = users
            .iter()
            .flat_map(|u| {
                let oids = &oids;
                u.member_of.iter().filter_map(move |m| {
                    Some((
                        *oids.get(m.role.as_str())?,
                        oid_of(u),
                        oids.get(m.grantor.as_str()).copied().unwrap_or(0),
                        m.admin_option,
                    ))
                })
            })
            .collect();
        let schema = self.builtin.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let values: ArrayRef = match field.name().as_str() {
                    "roleid" => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
                    "member" => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
                    "grantor" => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.2))),
                    "admin_option" => Arc::new(BooleanArray::from(
                        rows.iter().map(|r| Some(r.3)).collect::<Vec<_>>(),
                    )),
                    // PostgreSQL 16's columns, in the crate's table: a
                    // row's own OID (counted from PostgreSQL's first
                    // normal OID here, by position), and membership that
                    // passes privileges on and allows SET ROLE, which is
                    // what Freshet's members have.
                    "oid" => Arc::new(Int32Array::from_iter_values(
                        (0..rows.len()).map(|i| MEMBERSHIP_OIDS + i32::try_from(i).unwrap_or(0)),
                    )),
                    "inherit_option" | "set_option" => {
                        Arc::new(BooleanArray::from(vec![Some(true); rows.len()]))
                    }
                    _ => datafusion::arrow::array::new_null_array(field.data_type(), rows.len()),
                };
                datafusion::arrow::compute::cast(&values, field.data_type())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut batches = vec![RecordBatch::try_new(schema.clone(), columns)?];
        batches.extend(read_all(&self.builtin, state).await?);
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            schema,
            projection.cloned(),
        )?)
    }
}

/// Registers `pg_get_userbyid` for the session `shared`, in place of the
/// crate's.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext, shared: &Arc<SessionShared>) {
    ctx.register_udf(ScalarUDF::new_from_impl(UserById {
        shared: shared.clone(),
        // An OID of any integer type: a literal is a bigint here.
        signature: Signature::one_of(
            vec![TypeSignature::Uniform(
                1,
                vec![DataType::Int32, DataType::Int64, DataType::UInt32],
            )],
            Volatility::Stable,
        ),
    }));
}

/// `pg_get_userbyid(oid)`.
#[derive(Debug)]
struct UserById {
    shared: Arc<SessionShared>,
    signature: Signature,
}

impl PartialEq for UserById {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for UserById {}
impl std::hash::Hash for UserById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "pg_get_userbyid".hash(state);
    }
}

impl ScalarUDFImpl for UserById {
    fn name(&self) -> &str {
        "pg_get_userbyid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let names: HashMap<i32, String> = users(&self.shared)?
            .into_iter()
            .map(|u| (oid_of(&u), u.name))
            .collect();
        let name = |oid: i32| {
            names
                .get(&oid)
                .cloned()
                .unwrap_or_else(|| format!("unknown (OID={oid})"))
        };
        let arrays = crate::udf_args::arrays(&args)?;
        let [oids] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "pg_get_userbyid takes one argument".into(),
            ));
        };
        let out: StringArray = crate::udf_args::oids(oids)?
            .into_iter()
            .map(|oid| oid.map(name))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
