//! Freshet's own statement tree.
//!
//! Everything DataFusion can already plan stays a sqlparser [`Statement`]
//! inside [`FreshetStatement::Standard`]; only the statements Postgres and
//! DataFusion do not know (dynamic tables, models, users, Snowflake-style
//! `USE`/`SHOW`) get dedicated variants, so the engine can dispatch on them
//! without re-inspecting tokens.

use std::fmt;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, Owner, Query, Statement};

use crate::error::SqlError;

/// One parsed statement.
///
/// `Standard` holds sqlparser's AST unchanged except for Freshet's token-level
/// rewrites (model calls become [`crate::MODEL_CALL_FUNCTION`] calls, `expr:field`
/// paths become [`crate::GET_FIELD_FUNCTION`] calls), so it can be handed
/// straight to DataFusion's SQL planner.
// `Standard` is much larger than the other variants, but boxing it would make
// every consumer write `*stmt` to reach the sqlparser AST, and statements are
// parsed once per query, so the size difference is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreshetStatement {
    /// Any statement sqlparser's Postgres dialect understands, after rewrites.
    Standard(Statement),
    /// `CREATE DATABASE [IF NOT EXISTS] name`. Intercepted (instead of using
    /// sqlparser's variant) so that Postgres-only options are rejected with
    /// `0A000` rather than silently ignored.
    CreateDatabase {
        /// Database name.
        name: Ident,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `DROP DATABASE [IF EXISTS] name [CASCADE | RESTRICT]`.
    DropDatabase {
        /// Database name.
        name: Ident,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// `CASCADE` was given (`RESTRICT`, the default, yields `false`).
        cascade: bool,
    },
    /// Snowflake's `USE db`, `USE db.schema`, `USE DATABASE d`,
    /// `USE SCHEMA s` / `USE SCHEMA db.s`. `None` parts are left unchanged in
    /// the session.
    Use {
        /// Database to switch to, if named.
        database: Option<Ident>,
        /// Schema to switch to, if named.
        schema: Option<Ident>,
    },
    /// `CREATE USER name [WITH] [PASSWORD 'pw' | PASSWORD NULL | SUPERUSER |
    /// NOSUPERUSER | LOGIN]...` (Postgres style; `PASSWORD = 'pw'` Snowflake
    /// style is accepted too).
    /// `CREATE ROLE` is the same, except that its role may not log in
    /// unless `LOGIN` is given: a group.
    CreateUser {
        /// User name.
        name: Ident,
        /// Cleartext password, `None` for no password (`PASSWORD NULL` or
        /// omitted).
        password: Option<String>,
        /// Whether the user is a superuser.
        superuser: bool,
        /// Whether the role may log in: `LOGIN` or `NOLOGIN` as written,
        /// else true for CREATE USER and false for CREATE ROLE.
        login: bool,
    },
    /// `ALTER USER name [WITH | SET] {PASSWORD 'pw' | SUPERUSER | NOSUPERUSER}...`.
    /// Fields are `None` when the statement does not change them.
    AlterUser {
        /// User name.
        name: Ident,
        /// New password, if one was given.
        password: Option<String>,
        /// New superuser flag, if `SUPERUSER`/`NOSUPERUSER` was given.
        superuser: Option<bool>,
        /// Whether the role may log in, if `LOGIN`/`NOLOGIN` was given.
        login: Option<bool>,
    },
    /// `GRANT role [, …] TO member [, …] [WITH ADMIN OPTION]`, or `REVOKE
    /// [ADMIN OPTION FOR] role [, …] FROM member [, …] [CASCADE |
    /// RESTRICT]`: role membership, PostgreSQL's GRANT or REVOKE without
    /// `ON`.
    RoleMembership {
        /// GRANT (true) or REVOKE (false).
        grant: bool,
        /// The roles granted or revoked.
        roles: Vec<Ident>,
        /// Who gains or loses them (`CURRENT_USER` and the like allowed).
        members: Vec<Owner>,
        /// GRANT: `WITH ADMIN OPTION`. REVOKE: `ADMIN OPTION FOR` (only the
        /// option is revoked, the membership stays).
        admin_option: bool,
    },
    /// `ALTER {USER | ROLE} name SET parameter {TO | =} value`, `… RESET
    /// parameter` and `… RESET ALL`: the role's own default for a setting,
    /// which its sessions start with.
    AlterUserSetting {
        /// User name.
        name: Ident,
        /// What changes.
        change: RoleSettingChange,
    },
    /// `DROP USER [IF EXISTS] name`.
    DropUser {
        /// User name.
        name: Ident,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
    /// `CHECKPOINT` (Postgres): write every table's recent changes to
    /// Parquet and truncate the write-ahead log now, rather than when the
    /// background threshold is reached.
    Checkpoint,
    /// `CREATE [OR REPLACE] DYNAMIC TABLE ...`.
    CreateDynamicTable(CreateDynamicTable),
    /// `ALTER DYNAMIC TABLE name <action>`.
    AlterDynamicTable {
        /// Dynamic table name as written (1-3 parts).
        name: ObjectName,
        /// What to change.
        action: AlterDynamicTableAction,
    },
    /// `ALTER {VIEW | DYNAMIC TABLE | MODEL} [IF EXISTS] name OWNER TO
    /// role`. (`ALTER TABLE … OWNER TO` is sqlparser's statement.)
    AlterOwner {
        /// What kind of object the name must name.
        object: OwnedObject,
        /// Its name as written (1-3 parts).
        name: ObjectName,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// The new owner.
        owner: Owner,
    },
    /// `DROP DYNAMIC TABLE [IF EXISTS] name [CASCADE | RESTRICT]`.
    DropDynamicTable {
        /// Dynamic table name as written.
        name: ObjectName,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// `CASCADE` was given.
        cascade: bool,
    },
    /// `SHOW [TERSE] DYNAMIC TABLES [LIKE 'pat'] [IN scope]`.
    ShowDynamicTables {
        /// `LIKE` pattern (SQL `LIKE` syntax, matched case-insensitively in
        /// Snowflake), if given.
        like: Option<String>,
        /// Where to look.
        scope: ShowScope,
    },
    /// `DESCRIBE | DESC DYNAMIC TABLE name`.
    DescribeDynamicTable {
        /// Dynamic table name as written.
        name: ObjectName,
    },
    /// `CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name [VERSION v] FROM source
    /// [COMMENT [=] 'text']`; clauses after the name in any order.
    CreateModel {
        /// `OR REPLACE` was given.
        or_replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
        /// Model name as written (1-3 parts).
        name: ObjectName,
        /// Name of the first version; the catalog picks one when `None`.
        version: Option<Ident>,
        /// Where the ONNX bytes come from.
        source: ModelSource,
        /// Model comment.
        comment: Option<String>,
    },
    /// `ALTER MODEL name <action>`.
    AlterModel {
        /// Model name as written.
        name: ObjectName,
        /// What to change.
        action: AlterModelAction,
    },
    /// `DROP MODEL [IF EXISTS] name`.
    DropModel {
        /// Model name as written.
        name: ObjectName,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
    /// `GRANT privilege [, …] ON MODEL name [, …] TO grantee [, …]`, or
    /// `REVOKE privilege [, …] ON MODEL name [, …] FROM grantee [, …]
    /// [CASCADE | RESTRICT]`. The privileges are kept as written (`ALL
    /// [PRIVILEGES]` as `ALL`): which ones a model has is the engine's to
    /// say.
    ModelPrivileges {
        /// GRANT (`true`) or REVOKE.
        grant: bool,
        /// The privilege names as written.
        privileges: Vec<Ident>,
        /// The models, as written.
        models: Vec<ObjectName>,
        /// Who gets or loses them.
        grantees: Vec<GranteeSpec>,
    },
    /// `SHOW GRANTS ON MODEL name`.
    ShowModelGrants {
        /// The model, as written.
        model: ObjectName,
    },
    /// `SHOW MODELS [LIKE 'pat'] [IN scope]`.
    ShowModels {
        /// `LIKE` pattern, if given.
        like: Option<String>,
        /// Where to look.
        scope: ShowScope,
    },
    /// `SHOW VERSIONS [LIKE 'pat'] IN MODEL name`.
    ShowVersions {
        /// `LIKE` pattern, if given.
        like: Option<String>,
        /// The model whose versions to list.
        model: ObjectName,
    },
    /// `DESCRIBE | DESC MODEL name [VERSION v]`.
    DescribeModel {
        /// Model name as written.
        name: ObjectName,
        /// Specific version (or alias) to describe, if given.
        version: Option<Ident>,
    },
    /// Snowflake's `SHOW [TERSE] TABLES [LIKE 'pat'] [IN | FROM scope]`.
    /// Intercepted because sqlparser's `ShowTables` options model MySQL's
    /// flavour and do not distinguish database from schema scope; this keeps
    /// all `SHOW` object listings on the same [`ShowScope`] semantics.
    ShowTables {
        /// `LIKE` pattern, if given.
        like: Option<String>,
        /// Where to look.
        scope: ShowScope,
    },
    /// `SHOW [TERSE] SCHEMAS [LIKE 'pat'] [IN [DATABASE] db]`.
    ShowSchemas {
        /// `LIKE` pattern, if given.
        like: Option<String>,
        /// Database to list; the session's current database when `None`.
        database: Option<Ident>,
    },
    /// `SHOW [TERSE] DATABASES [LIKE 'pat']`.
    ShowDatabases {
        /// `LIKE` pattern, if given.
        like: Option<String>,
    },
}

/// A change to a role's defaults for settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSettingChange {
    /// `SET parameter {TO | =} value`: `value` as `SET` would take it (a
    /// list's items joined with `, `).
    Set {
        /// The setting's name, lowercase.
        parameter: String,
        /// Its value.
        value: String,
    },
    /// `RESET parameter`, or `SET parameter TO DEFAULT`.
    Reset {
        /// The setting's name, lowercase.
        parameter: String,
    },
    /// `RESET ALL`.
    ResetAll,
}

/// Who a GRANT or REVOKE names: a role (`[ROLE] name`) or `PUBLIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GranteeSpec {
    /// Every role.
    Public,
    /// One role, as written.
    Role(Ident),
}

/// Where a `SHOW` statement looks for objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ShowScope {
    /// No `IN` clause: the session's current schema.
    #[default]
    Current,
    /// `IN SCHEMA s`, `IN SCHEMA db.s` or Snowflake's bare `IN s` / `IN db.s`.
    Schema(ObjectName),
    /// `IN DATABASE d`: every schema of that database.
    Database(Ident),
}

/// A parsed `CREATE DYNAMIC TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDynamicTable {
    /// `OR REPLACE` was given.
    pub or_replace: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Table name as written (1-3 parts).
    pub name: ObjectName,
    /// Optional column list `(col [COMMENT 'text'], ...)` renaming the
    /// query's output columns; empty when absent.
    pub columns: Vec<(Ident, Option<String>)>,
    /// Required `TARGET_LAG`.
    pub target_lag: TargetLag,
    /// `WAREHOUSE = name`; accepted for Snowflake compatibility and stored.
    pub warehouse: Option<Ident>,
    /// `REFRESH_MODE`, [`RefreshMode::Auto`] when absent.
    pub refresh_mode: RefreshMode,
    /// `INITIALIZE`, [`Initialize::OnCreate`] when absent.
    pub initialize: Initialize,
    /// `COMMENT = 'text'`.
    pub comment: Option<String>,
    /// The defining query, with model bindings stripped and model calls and
    /// `:` paths rewritten (see the crate docs).
    pub query: Box<Query>,
    /// The defining query exactly as written after `AS` (trimmed, without the
    /// trailing `;`), so the catalog can store and later re-parse it with
    /// [`crate::parse_query_text`].
    pub query_text: String,
    /// `WITH alias AS MODEL ...` bindings found in the query, in order.
    pub model_bindings: Vec<ModelBinding>,
}

/// How stale a dynamic table may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetLag {
    /// Refresh so that data is never older than this.
    Duration(Duration),
    /// Refresh only when a downstream dynamic table needs fresh data.
    Downstream,
}

impl TargetLag {
    /// Parses a `TARGET_LAG` string such as `'20 minutes'` or `'downstream'`.
    ///
    /// Accepts an integer count followed by a unit (whitespace optional),
    /// case-insensitively: `s`, `sec`, `secs`, `second`, `seconds`, `m`,
    /// `min`, `mins`, `minute`, `minutes`, `h`, `hr`, `hrs`, `hour`, `hours`,
    /// `d`, `day`, `days`. Public so the catalog can re-parse stored values.
    /// Errors are `22023` without a position (the caller locates them).
    pub fn parse(text: &str) -> Result<TargetLag, SqlError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("downstream") {
            return Ok(TargetLag::Downstream);
        }
        let bad = || {
            SqlError::invalid_parameter(
                format!(
                    "invalid TARGET_LAG '{text}': expected '<n> {{seconds | minutes | hours | days}}' or DOWNSTREAM"
                ),
                None,
            )
        };
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (count, unit) = trimmed.split_at(digits_end);
        if count.is_empty() {
            return Err(bad());
        }
        let count: u64 = count.parse().map_err(|_| bad())?;
        let seconds_per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        let seconds = count.checked_mul(seconds_per_unit).ok_or_else(bad)?;
        if seconds < 1 {
            return Err(SqlError::invalid_parameter(
                format!("invalid TARGET_LAG '{text}': must be at least 1 second"),
                None,
            ));
        }
        Ok(TargetLag::Duration(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for TargetLag {
    /// Renders the canonical form (`'20 minutes'` style without quotes, or
    /// `DOWNSTREAM`), using the largest unit that divides the duration evenly;
    /// the output always re-parses with [`TargetLag::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetLag::Downstream => f.write_str("DOWNSTREAM"),
            TargetLag::Duration(d) => {
                let secs = d.as_secs();
                let (n, unit) = if secs != 0 && secs % 86_400 == 0 {
                    (secs / 86_400, "day")
                } else if secs != 0 && secs % 3_600 == 0 {
                    (secs / 3_600, "hour")
                } else if secs != 0 && secs % 60 == 0 {
                    (secs / 60, "minute")
                } else {
                    (secs, "second")
                };
                let plural = if n == 1 { "" } else { "s" };
                write!(f, "{n} {unit}{plural}")
            }
        }
    }
}

/// `REFRESH_MODE` of a dynamic table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RefreshMode {
    /// Let the engine choose incremental when the query supports it.
    #[default]
    Auto,
    /// Always recompute the whole result.
    Full,
    /// Require incremental maintenance; creation fails if impossible.
    Incremental,
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefreshMode::Auto => "AUTO",
            RefreshMode::Full => "FULL",
            RefreshMode::Incremental => "INCREMENTAL",
        })
    }
}

/// `INITIALIZE` of a dynamic table: when the first refresh happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Initialize {
    /// Populate synchronously during `CREATE`.
    #[default]
    OnCreate,
    /// Populate at the first scheduled refresh.
    OnSchedule,
}

impl fmt::Display for Initialize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Initialize::OnCreate => "ON_CREATE",
            Initialize::OnSchedule => "ON_SCHEDULE",
        })
    }
}

/// What an [`FreshetStatement::AlterOwner`] gives to another role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedObject {
    /// `ALTER VIEW`.
    View,
    /// `ALTER DYNAMIC TABLE`.
    DynamicTable,
    /// `ALTER MODEL`.
    Model,
}

/// The action of an `ALTER DYNAMIC TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterDynamicTableAction {
    /// `SUSPEND`: stop scheduled refreshes.
    Suspend,
    /// `RESUME`: restart scheduled refreshes.
    Resume,
    /// `REFRESH`: refresh now, synchronously.
    Refresh,
    /// `SET TARGET_LAG = '...' | DOWNSTREAM`.
    SetTargetLag(TargetLag),
    /// `SET WAREHOUSE = name`.
    SetWarehouse(Ident),
    /// `SET COMMENT = 'text'`.
    SetComment(String),
    /// `RENAME TO name`.
    RenameTo(ObjectName),
}

/// Where the bytes of an ONNX model come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// `FROM $n`: a bound parameter of an extended-protocol query (1-based),
    /// which is how clients upload model files without escaping them.
    Parameter(usize),
    /// Inline bytes: `FROM '\x0a0b'::bytea`, `FROM E'\\x0a0b'` or `FROM X'0a0b'`.
    Bytes(Vec<u8>),
    /// `FROM '/path/to/model.onnx'`: a file readable by the server. A plain
    /// string is always a path, even if it starts with `\x`; inline bytes
    /// need the `::bytea` cast, an `E''` string or an `X''` literal.
    Path(String),
}

/// The action of an `ALTER MODEL` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterModelAction {
    /// `ADD VERSION v FROM source`.
    AddVersion {
        /// New version name.
        version: Ident,
        /// Where its bytes come from.
        source: ModelSource,
    },
    /// `SET DEFAULT_VERSION = 'v'` (string taken verbatim) or
    /// `= v` (identifier, normalized like [`crate::normalize_ident`]).
    SetDefaultVersion(String),
    /// `VERSION v SET ALIAS = a`.
    SetVersionAlias {
        /// Version to alias.
        version: Ident,
        /// The alias.
        alias: Ident,
    },
    /// `VERSION v UNSET ALIAS`.
    UnsetVersionAlias {
        /// Version whose alias is removed.
        version: Ident,
    },
    /// `DROP VERSION v`.
    DropVersion(Ident),
    /// `SET COMMENT = 'text'`.
    SetComment(String),
    /// `RENAME TO name`.
    RenameTo(ObjectName),
}

/// A `WITH alias AS MODEL name [VERSION v]` binding stripped from a query.
///
/// Calls `alias!method(...)` in the same statement were rewritten to name
/// `model`/`version` directly, so the engine only needs bindings for
/// dependency tracking and `DESCRIBE`-style introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBinding {
    /// The alias used before `!`.
    pub alias: Ident,
    /// The model as written (1-3 parts).
    pub model: ObjectName,
    /// Pinned version, if `VERSION v` was given.
    pub version: Option<ModelVersionRef>,
}

/// A reference to a model version written after `VERSION`.
///
/// Whether the name is a version name or a version alias (including
/// Snowflake's `DEFAULT`, `FIRST`, `LAST`) cannot be told syntactically, so
/// the catalog resolves it: first as a version name, then as an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersionRef {
    /// The version name or alias as written.
    pub name: Ident,
}

/// A statement together with where it came from.
///
/// Returned by [`crate::parse_sql_with_source`]; the server keeps `source`
/// because it must store the text of defining queries, and uses `offset` to
/// report errors found later (during planning) against the whole string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStatement {
    /// The parsed statement.
    pub statement: FreshetStatement,
    /// The statement's original text, trimmed, without the terminating `;`.
    pub source: String,
    /// 1-based character position of the statement's first character in the
    /// original multi-statement string.
    pub offset: usize,
    /// Model bindings stripped from this statement (for any statement kind,
    /// not only dynamic tables).
    pub model_bindings: Vec<ModelBinding>,
}

/// A stand-alone query parsed by [`crate::parse_query_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    /// The rewritten query.
    pub query: Box<Query>,
    /// Model bindings stripped from it.
    pub model_bindings: Vec<ModelBinding>,
}

/// One `freshet_model_call(...)` found in a parsed tree by
/// [`crate::collect_model_calls`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelCall {
    /// Model name literal: normalized parts joined by `.` (see
    /// [`crate::model_name_literal`]).
    pub model: String,
    /// Version or alias, `None` for the model's default version.
    pub version: Option<String>,
    /// Method name, normalized (e.g. `predict`).
    pub method: String,
}
