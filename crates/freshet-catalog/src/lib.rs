//! The catalog: databases, schemas, relations (tables, views, dynamic tables),
//! models and users.
//!
//! Catalog entries are JSON documents kept in the storage layer's transactional
//! key/value space, so a DDL statement, the rows it writes and — for dynamic
//! tables — the refresh progress marker all commit in one atomic WAL record.
//! This crate owns the key layout and the typed entries; it never talks to the
//! disk itself.
//!
//! Names are stored normalized (unquoted identifiers lower-cased by the parser),
//! which is what makes `LOGINS_RAW` and `logins_raw` the same table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use freshet_storage::{Snapshot, TableId, Transaction};

/// Errors raised by catalog lookups and updates.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The named database does not exist.
    #[error("database \"{0}\" does not exist")]
    UnknownDatabase(String),
    /// The named schema does not exist.
    #[error("schema \"{0}\" does not exist")]
    UnknownSchema(String),
    /// The named relation does not exist.
    #[error("relation \"{0}\" does not exist")]
    UnknownRelation(String),
    /// The named model does not exist.
    #[error("model \"{0}\" does not exist")]
    UnknownModel(String),
    /// An object of that name already exists.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// What kind of object ("relation", "schema", …).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A stored entry could not be decoded (corruption or a format bug).
    #[error("catalog entry {key} is corrupt: {reason}")]
    Corrupt {
        /// The entry's key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

impl CatalogError {
    /// The SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CatalogError::UnknownDatabase(_) => "3D000",
            CatalogError::UnknownSchema(_) => "3F000",
            CatalogError::UnknownRelation(_) => "42P01",
            CatalogError::UnknownModel(_) => "42704",
            CatalogError::AlreadyExists { kind, .. } => match *kind {
                "database" => "42P04",
                "schema" => "42P06",
                _ => "42P07",
            },
            CatalogError::Corrupt { .. } => "XX001",
        }
    }
}

/// Read access to catalog entries, from a snapshot or a transaction (which also
/// sees its own uncommitted DDL).
pub trait MetaRead {
    /// Reads one entry.
    fn meta(&self, key: &str) -> Option<Vec<u8>>;
    /// Reads all entries under a key prefix, sorted by key.
    fn meta_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)>;
}

impl MetaRead for Snapshot {
    fn meta(&self, key: &str) -> Option<Vec<u8>> {
        self.get_meta(key)
    }
    fn meta_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.scan_meta(prefix)
    }
}

impl MetaRead for Transaction {
    fn meta(&self, key: &str) -> Option<Vec<u8>> {
        self.get_meta(key)
    }
    fn meta_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.scan_meta(prefix)
    }
}

/// A fully qualified relation or model name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QualifiedName {
    /// Database.
    pub database: String,
    /// Schema.
    pub schema: String,
    /// Object name.
    pub name: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.database, self.schema, self.name)
    }
}

/// A database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Its name.
    pub name: String,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
}

/// A schema inside a database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaEntry {
    /// Database name.
    pub database: String,
    /// Schema name.
    pub name: String,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
}

/// Per-column information the Arrow schema cannot carry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// The column's DEFAULT expression as SQL text.
    pub default_sql: Option<String>,
    /// A column comment (dynamic tables allow them).
    pub comment: Option<String>,
}

/// How a dynamic table is kept fresh; stored with the relation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DynamicTableDef {
    /// The defining query as the user wrote it (after `AS`).
    pub query_text: String,
    /// The whole CREATE statement text, shown as `text` in SHOW.
    pub create_text: String,
    /// Target lag in seconds, or `None` for DOWNSTREAM.
    pub target_lag_secs: Option<u64>,
    /// The WAREHOUSE clause, stored and shown only.
    pub warehouse: Option<String>,
    /// The mode the user asked for: AUTO, FULL or INCREMENTAL.
    pub requested_mode: String,
    /// The resolved mode: FULL or INCREMENTAL.
    pub refresh_mode: String,
    /// Why the resolved mode was chosen.
    pub refresh_mode_reason: String,
    /// ON_CREATE or ON_SCHEDULE.
    pub initialize: String,
    /// Sources the query reads (tables and dynamic tables).
    pub sources: Vec<QualifiedName>,
    /// Models used with their resolved versions: (model, version, follows_default).
    pub models: Vec<ModelUse>,
    /// Storage sequence of the snapshot the contents equal, `None` until first refresh.
    pub data_seq: Option<u64>,
    /// Commit time of that snapshot (microseconds since the epoch).
    pub data_timestamp_micros: Option<i64>,
    /// RUNNING, SUSPENDED or SUSPENDED_DUE_TO_ERRORS.
    pub scheduling_state: String,
    /// When it was last suspended.
    pub last_suspended_micros: Option<i64>,
    /// Consecutive failed scheduled refreshes.
    pub consecutive_failures: u32,
    /// The storage tables of `sources` (same order) the contents were last
    /// refreshed from. A source replaced since (`CREATE OR REPLACE TABLE`,
    /// inside a transaction or not) has another table id, and its change
    /// feed says nothing about the old table: the next refresh recomputes.
    /// Empty for tables written before this was recorded.
    #[serde(default)]
    pub source_table_ids: Vec<TableId>,
    /// The version of the lineage hashing the contents were written with;
    /// 0 for tables written before versions were recorded. A refresh of
    /// keyed contents written with an older version recomputes them.
    #[serde(default)]
    pub lineage_version: u32,
    /// The hidden storage table holding a GROUP BY's per-group partial
    /// aggregates, for dynamic tables maintained from state (see
    /// freshet-engine's `delta_aggregate`). Written in the same transaction
    /// as the contents; dropped with the dynamic table.
    #[serde(default)]
    pub state_table_id: Option<TableId>,
    /// One hidden storage table per `count(DISTINCT x)` of a GROUP BY
    /// maintained from state, in the aggregates' order, holding per group
    /// and value its row count (see freshet-engine's `value_counts`).
    /// Written with the per-group state; dropped with the dynamic table.
    #[serde(default)]
    pub value_count_table_ids: Vec<TableId>,
    /// Join inputs kept materialized beside the contents (see
    /// freshet-engine's `join_arrangement`): each holds one input's rows,
    /// model outputs included, with the source row each came from. Written
    /// in the same transaction as the contents; dropped with the dynamic
    /// table.
    #[serde(default)]
    pub arrangements: Vec<Arrangement>,
}

/// Which input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinSide {
    /// The left input.
    Left,
    /// The right input.
    Right,
}

/// A join input a dynamic table keeps materialized, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrangement {
    /// The input it holds.
    pub side: JoinSide,
    /// The hidden storage table holding it.
    pub table_id: TableId,
}

/// A model version a dynamic table reads, resolved at CREATE time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelUse {
    /// The model.
    pub model: QualifiedName,
    /// The version resolved at CREATE (or at the last REINITIALIZE).
    pub version: String,
    /// True when no version was named, so a change of default re-scores everything.
    pub follows_default: bool,
}

/// What a relation is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RelationKind {
    /// A base table stored in `table_id`.
    Table,
    /// A view, expanded at planning time.
    View {
        /// The view's query text.
        query_text: String,
        /// The tables, views and dynamic tables its query names, as they
        /// resolved at CREATE VIEW: dropping or renaming one of them is
        /// refused while the view exists (views created before this was
        /// recorded have none).
        #[serde(default)]
        reads: Vec<QualifiedName>,
    },
    /// A dynamic table whose contents are stored in `table_id`.
    DynamicTable(Box<DynamicTableDef>),
}

/// A table, view or dynamic table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationEntry {
    /// Database name.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Storage table holding the rows (tables and dynamic tables).
    pub table_id: Option<TableId>,
    /// Column extras keyed by column name.
    pub columns: BTreeMap<String, ColumnInfo>,
    /// Kind-specific definition.
    pub kind: RelationKind,
    /// Comment.
    pub comment: Option<String>,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
    /// PRIMARY KEY and UNIQUE constraints, enforced by the storage layer's
    /// unique indexes of the same names. Tables created before constraints
    /// were recorded have none.
    #[serde(default)]
    pub constraints: Vec<KeyConstraint>,
    /// Unique indexes created by CREATE UNIQUE INDEX, in creation order.
    /// Enforced and used for lookups like UNIQUE constraints (storage keeps
    /// the constraints' indexes first, then these), but not constraints:
    /// `ON CONFLICT ON CONSTRAINT` does not name them, and DROP INDEX
    /// drops them.
    #[serde(default)]
    pub unique_indexes: Vec<UniqueIndexEntry>,
    /// Who owns the relation and what others may do with it. Relations
    /// created before ownership was recorded have no owner: only superusers
    /// may use them.
    #[serde(default)]
    pub acl: Acl,
}

/// A privilege on a table, view or dynamic table, as PostgreSQL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TablePrivilege {
    /// Read rows (also needed to write rows a statement reads: RETURNING,
    /// or columns named in an UPDATE's or DELETE's WHERE or SET).
    Select,
    /// Add rows (INSERT, COPY FROM).
    Insert,
    /// Change rows.
    Update,
    /// Remove rows.
    Delete,
    /// Empty the table (TRUNCATE).
    Truncate,
    /// Reference the table from a foreign key. Freshet has no foreign keys:
    /// the privilege is recorded and shown, and allows nothing yet.
    References,
    /// Create a trigger. Freshet has no triggers: recorded and shown only.
    Trigger,
}

impl TablePrivilege {
    /// Every table privilege, in PostgreSQL's ACL order (`ALL`).
    pub const ALL: [TablePrivilege; 7] = [
        TablePrivilege::Insert,
        TablePrivilege::Select,
        TablePrivilege::Update,
        TablePrivilege::Delete,
        TablePrivilege::Truncate,
        TablePrivilege::References,
        TablePrivilege::Trigger,
    ];

    /// The privilege's SQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            TablePrivilege::Select => "SELECT",
            TablePrivilege::Insert => "INSERT",
            TablePrivilege::Update => "UPDATE",
            TablePrivilege::Delete => "DELETE",
            TablePrivilege::Truncate => "TRUNCATE",
            TablePrivilege::References => "REFERENCES",
            TablePrivilege::Trigger => "TRIGGER",
        }
    }

    /// The privilege's letter in PostgreSQL's `aclitem` text (`r`, `a`, …).
    pub fn acl_letter(self) -> char {
        match self {
            TablePrivilege::Select => 'r',
            TablePrivilege::Insert => 'a',
            TablePrivilege::Update => 'w',
            TablePrivilege::Delete => 'd',
            TablePrivilege::Truncate => 'D',
            TablePrivilege::References => 'x',
            TablePrivilege::Trigger => 't',
        }
    }
}

/// Who a grant is to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grantee {
    /// Every role, present and future.
    Public,
    /// One role, by name.
    Role(String),
}

/// Privileges granted to one grantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableGrant {
    /// Who holds them.
    pub grantee: Grantee,
    /// Who granted them (the owner, or a superuser acting for it).
    pub grantor: String,
    /// What they allow.
    pub privileges: std::collections::BTreeSet<TablePrivilege>,
}

/// A relation's owner and grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The owning role; `None` for relations created before owners were
    /// recorded.
    pub owner: Option<String>,
    /// Privileges granted to others, one entry per grantee.
    pub grants: Vec<TableGrant>,
    /// Whether a GRANT or REVOKE ever changed the privileges (PostgreSQL's
    /// `relacl` stays NULL, meaning the owner's defaults, until one does).
    #[serde(default)]
    pub changed: bool,
}

impl Acl {
    /// A new relation's: owned by `owner`, granted to no one else.
    pub fn owned_by(owner: &str) -> Acl {
        Acl {
            owner: Some(owner.to_string()),
            grants: Vec::new(),
            changed: false,
        }
    }

    /// Whether `role` owns the relation.
    pub fn is_owner(&self, role: &str) -> bool {
        self.owner.as_deref() == Some(role)
    }

    /// Whether `role` holds `privilege`: as the owner, or by a grant to it or
    /// to PUBLIC. Superusers are checked by the caller.
    pub fn allows(&self, role: &str, privilege: TablePrivilege) -> bool {
        self.is_owner(role)
            || self.grants.iter().any(|grant| {
                grant.privileges.contains(&privilege)
                    && match &grant.grantee {
                        Grantee::Public => true,
                        Grantee::Role(name) => name == role,
                    }
            })
    }

    /// Adds `privileges` to `grantee`'s grant.
    pub fn grant(&mut self, grantee: Grantee, grantor: &str, privileges: &[TablePrivilege]) {
        self.changed = true;
        match self.grants.iter_mut().find(|g| g.grantee == grantee) {
            Some(grant) => grant.privileges.extend(privileges.iter().copied()),
            None => self.grants.push(TableGrant {
                grantee,
                grantor: grantor.to_string(),
                privileges: privileges.iter().copied().collect(),
            }),
        }
    }

    /// Gives the relation to `new_owner`, as PostgreSQL's `ALTER … OWNER
    /// TO` does: what the old owner held and granted is now the new
    /// owner's, so grants the old owner made keep their grantees, and a
    /// grant to the new owner merges into its ownership.
    pub fn change_owner(&mut self, new_owner: &str) {
        let old = self.owner.replace(new_owner.to_string());
        let new = Grantee::Role(new_owner.to_string());
        for grant in &mut self.grants {
            if old.as_deref() == Some(grant.grantor.as_str()) {
                grant.grantor = new_owner.to_string();
            }
            if matches!((&grant.grantee, &old), (Grantee::Role(name), Some(old)) if name == old) {
                grant.grantee = new.clone();
            }
        }
        self.grants.retain(|grant| grant.grantee != new);
    }

    /// Removes `privileges` from `grantee`'s grant, dropping an emptied one.
    pub fn revoke(&mut self, grantee: &Grantee, privileges: &[TablePrivilege]) {
        self.changed = true;
        for grant in self.grants.iter_mut().filter(|g| &g.grantee == grantee) {
            for privilege in privileges {
                grant.privileges.remove(privilege);
            }
        }
        self.grants.retain(|g| !g.privileges.is_empty());
    }

    /// PostgreSQL's `aclitem` texts (`owner=arwdDxt/owner`, `alice=r/owner`,
    /// `=r/owner` for PUBLIC), `None` while the owner's defaults stand (as
    /// `pg_class.relacl` is NULL until the first GRANT or REVOKE).
    pub fn to_pg_items(&self) -> Option<Vec<String>> {
        if !self.changed {
            return None;
        }
        let letters = |privileges: &dyn Fn(TablePrivilege) -> bool| -> String {
            TablePrivilege::ALL
                .iter()
                .filter(|p| privileges(**p))
                .map(|p| p.acl_letter())
                .collect()
        };
        let mut items = Vec::new();
        if let Some(owner) = &self.owner {
            items.push(format!("{owner}={}/{owner}", letters(&|_| true)));
        }
        for grant in &self.grants {
            let who = match &grant.grantee {
                Grantee::Public => String::new(),
                Grantee::Role(name) => name.clone(),
            };
            items.push(format!(
                "{who}={}/{}",
                letters(&|p| grant.privileges.contains(&p)),
                grant.grantor
            ));
        }
        Some(items)
    }
}

/// A unique index created by CREATE UNIQUE INDEX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueIndexEntry {
    /// The index's name, unique among the relations and indexes of its
    /// schema.
    pub name: String,
    /// The key columns, in key order.
    pub columns: Vec<String>,
}

/// A PRIMARY KEY or UNIQUE constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConstraint {
    /// The constraint's name, as PostgreSQL generates it (`t_pkey`,
    /// `t_col_key`) unless the user named it.
    pub name: String,
    /// PRIMARY KEY (true) or UNIQUE (false).
    pub primary: bool,
    /// The key columns, in key order.
    pub columns: Vec<String>,
}

impl RelationEntry {
    /// The relation's qualified name.
    pub fn qualified(&self) -> QualifiedName {
        QualifiedName {
            database: self.database.clone(),
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
    }

    /// The dynamic-table definition, if this is a dynamic table.
    pub fn dynamic(&self) -> Option<&DynamicTableDef> {
        match &self.kind {
            RelationKind::DynamicTable(def) => Some(def),
            _ => None,
        }
    }

    /// The hidden storage tables a dynamic table keeps as maintenance
    /// state (per-group aggregates, distinct-value counts, join
    /// arrangements); empty for other relations.
    pub fn hidden_table_ids(&self) -> Vec<TableId> {
        let Some(def) = self.dynamic() else {
            return Vec::new();
        };
        def.state_table_id
            .into_iter()
            .chain(def.value_count_table_ids.iter().copied())
            .chain(def.arrangements.iter().map(|a| a.table_id))
            .collect()
    }
}

/// One registered version of a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelVersionEntry {
    /// The version name.
    pub name: String,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
    /// Key of the blob holding the ONNX bytes.
    pub blob_key: String,
    /// Content hash of the ONNX bytes (cache key).
    pub content_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// The signature as JSON (inputs, outputs, methods), shown by SHOW VERSIONS.
    pub signature_json: String,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
}

/// A model with its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Database name.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Model name.
    pub name: String,
    /// Versions in creation order.
    pub versions: Vec<ModelVersionEntry>,
    /// The default version's name.
    pub default_version: String,
    /// Comment.
    pub comment: Option<String>,
    /// Creation time, microseconds since the epoch.
    pub created_micros: i64,
    /// Who owns the model and who else may call it.
    #[serde(default)]
    pub acl: ModelAcl,
}

/// A model's owner and the roles it is granted to.
///
/// The owner (and any superuser) may call, alter, replace and drop the
/// model, and grant or revoke its one privilege, USAGE: calling it, in a
/// query or in a dynamic table's definition. Models registered before
/// owners were recorded have no owner: every role may call them, as every
/// role could then, and only superusers may change them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAcl {
    /// The owning role; `None` for models registered before owners were
    /// recorded.
    pub owner: Option<String>,
    /// USAGE granted to others, one entry per grantee.
    pub usage: Vec<ModelGrant>,
}

/// USAGE on a model, granted to one grantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGrant {
    /// Who holds it.
    pub grantee: Grantee,
    /// Who granted it (the owner, or a superuser acting for it).
    pub grantor: String,
}

impl ModelAcl {
    /// A new model's: owned by `owner`, granted to no one else.
    pub fn owned_by(owner: &str) -> ModelAcl {
        ModelAcl {
            owner: Some(owner.to_string()),
            usage: Vec::new(),
        }
    }

    /// Whether `role` owns the model.
    pub fn is_owner(&self, role: &str) -> bool {
        self.owner.as_deref() == Some(role)
    }

    /// Whether `role` may call the model: as its owner, by a grant to it or
    /// to PUBLIC, or because the model has no owner. Superusers are checked
    /// by the caller.
    pub fn allows_usage(&self, role: &str) -> bool {
        self.owner.is_none()
            || self.is_owner(role)
            || self.usage.iter().any(|grant| match &grant.grantee {
                Grantee::Public => true,
                Grantee::Role(name) => name == role,
            })
    }

    /// Grants USAGE to `grantee` (once).
    pub fn grant_usage(&mut self, grantee: Grantee, grantor: &str) {
        if !self.usage.iter().any(|g| g.grantee == grantee) {
            self.usage.push(ModelGrant {
                grantee,
                grantor: grantor.to_string(),
            });
        }
    }

    /// Gives the model to `new_owner`, as [`Acl::change_owner`] gives a
    /// relation.
    pub fn change_owner(&mut self, new_owner: &str) {
        let old = self.owner.replace(new_owner.to_string());
        let new = Grantee::Role(new_owner.to_string());
        for grant in &mut self.usage {
            if old.as_deref() == Some(grant.grantor.as_str()) {
                grant.grantor = new_owner.to_string();
            }
        }
        self.usage.retain(|grant| grant.grantee != new);
    }

    /// Takes USAGE back from `grantee`.
    pub fn revoke_usage(&mut self, grantee: &Grantee) {
        self.usage.retain(|g| &g.grantee != grantee);
    }

    /// Whether `role` owns the model or holds a grant on it.
    pub fn mentions(&self, role: &str) -> bool {
        self.is_owner(role)
            || self
                .usage
                .iter()
                .any(|g| g.grantee == Grantee::Role(role.to_string()))
    }
}

impl ModelEntry {
    /// The model's qualified name.
    pub fn qualified(&self) -> QualifiedName {
        QualifiedName {
            database: self.database.clone(),
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
    }

    /// Resolves a version reference: a version name, an alias, or FIRST/LAST/DEFAULT.
    pub fn resolve_version(&self, reference: Option<&str>) -> Option<&ModelVersionEntry> {
        match reference.map(|r| r.to_ascii_lowercase()) {
            None => self
                .versions
                .iter()
                .find(|v| v.name == self.default_version),
            Some(r) if r == "default" => self
                .versions
                .iter()
                .find(|v| v.name == self.default_version),
            Some(r) if r == "first" => self.versions.first(),
            Some(r) if r == "last" => self.versions.last(),
            Some(r) => self
                .versions
                .iter()
                .find(|v| v.name.eq_ignore_ascii_case(&r))
                .or_else(|| {
                    self.versions
                        .iter()
                        .find(|v| v.aliases.iter().any(|a| a.eq_ignore_ascii_case(&r)))
                }),
        }
    }
}

/// A role: a user that logs in, or a group whose privileges its members
/// share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserEntry {
    /// Role name.
    pub name: String,
    /// Superuser flag.
    pub superuser: bool,
    /// SCRAM salt (hex), if a password is set.
    pub scram_salt_hex: Option<String>,
    /// SCRAM salted password (hex).
    pub scram_salted_password_hex: Option<String>,
    /// PBKDF2 iterations.
    pub scram_iterations: usize,
    /// The role's OID, as `pg_roles.oid`, `pg_class.relowner` and
    /// `pg_get_userbyid` give it: 10 for the bootstrap superuser, then
    /// counted up from 16384 ([`allocate_role_oid`]) and never reused.
    /// Users created before OIDs were recorded get one at the next start
    /// ([`bootstrap`]).
    #[serde(default)]
    pub oid: Option<u32>,
    /// The role's own defaults for settings (`ALTER ROLE name SET
    /// statement_timeout = '5s'`) as (lowercase name, value), in the order
    /// they were first set, as PostgreSQL lists them; applied when each of
    /// its sessions starts.
    #[serde(default)]
    pub settings: Vec<(String, String)>,
    /// Whether the role may log in (`LOGIN`, the default of `CREATE
    /// USER`). A role that may not is a group: its privileges are its
    /// members'. Roles from before groups existed were all users.
    #[serde(default = "can_log_in")]
    pub login: bool,
    /// The roles this one is a member of (`GRANT group TO role`), whose
    /// privileges it has: PostgreSQL's `pg_auth_members` rows with this
    /// role as `member`.
    #[serde(default)]
    pub member_of: Vec<RoleMembership>,
}

fn can_log_in() -> bool {
    true
}

impl UserEntry {
    /// A new role without a password, defaults or memberships.
    pub fn new(name: &str, superuser: bool, login: bool, oid: Option<u32>) -> UserEntry {
        UserEntry {
            name: name.to_string(),
            superuser,
            scram_salt_hex: None,
            scram_salted_password_hex: None,
            scram_iterations: 4096,
            oid,
            settings: Vec::new(),
            login,
            member_of: Vec::new(),
        }
    }

    /// This role's direct membership in `role`, if it has one.
    pub fn membership(&self, role: &str) -> Option<&RoleMembership> {
        self.member_of.iter().find(|m| m.role == role)
    }
}

/// One role's membership in another (`GRANT role TO member`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMembership {
    /// The role the member belongs to.
    pub role: String,
    /// Whether the member may grant and revoke this membership to others
    /// (`WITH ADMIN OPTION`).
    pub admin_option: bool,
    /// Who granted it.
    pub grantor: String,
}

/// The roles whose privileges `role` has: itself, and every role it is a
/// member of, directly or through other roles (PostgreSQL's `INHERIT`,
/// the only mode here), each once, `role` first. Superuser status is not
/// among what is inherited; [`is_superuser`] asks about one role.
pub fn privileged_roles(reader: &dyn MetaRead, role: &str) -> Result<Vec<String>, CatalogError> {
    let mut roles = vec![role.to_string()];
    let mut next = 0;
    while let Some(current) = roles.get(next).cloned() {
        next += 1;
        let Some(entry) = get::<UserEntry>(reader, &user_key(&current))? else {
            continue;
        };
        for membership in entry.member_of {
            if !roles.contains(&membership.role) {
                roles.push(membership.role);
            }
        }
    }
    Ok(roles)
}

/// The bootstrap superuser's OID, as in PostgreSQL.
pub const BOOTSTRAP_SUPERUSER_OID: u32 = 10;

/// The first OID [`allocate_role_oid`] hands out, PostgreSQL's first
/// normal object OID.
pub const FIRST_ROLE_OID: u32 = 16384;

/// Key of the next role OID to hand out.
const NEXT_ROLE_OID_KEY: &str = "role_oid/next";

/// Hands out the next role OID. Two transactions allocating at once both
/// write the counter, so the second to commit fails with 40001 and no OID
/// is given twice.
pub fn allocate_role_oid(txn: &mut Transaction) -> u32 {
    let next = txn
        .get_meta(NEXT_ROLE_OID_KEY)
        .and_then(|b| serde_json::from_slice::<u32>(&b).ok())
        .unwrap_or(FIRST_ROLE_OID);
    put(txn, NEXT_ROLE_OID_KEY, &(next + 1));
    next
}

/// Key of a database entry.
pub fn database_key(db: &str) -> String {
    format!("db/{db}")
}

/// Key of a schema entry.
pub fn schema_key(db: &str, schema: &str) -> String {
    format!("schema/{db}/{schema}")
}

/// Prefix of all schemas in a database.
pub fn schema_prefix(db: &str) -> String {
    format!("schema/{db}/")
}

/// Key of a relation entry.
pub fn relation_key(name: &QualifiedName) -> String {
    format!("rel/{}/{}/{}", name.database, name.schema, name.name)
}

/// Prefix of all relations in a schema (or, with an empty schema, in a database).
pub fn relation_prefix(db: &str, schema: Option<&str>) -> String {
    match schema {
        Some(s) => format!("rel/{db}/{s}/"),
        None => format!("rel/{db}/"),
    }
}

/// Key of a model entry.
pub fn model_key(name: &QualifiedName) -> String {
    format!("model/{}/{}/{}", name.database, name.schema, name.name)
}

/// Prefix of all models in a schema (or database).
pub fn model_prefix(db: &str, schema: Option<&str>) -> String {
    match schema {
        Some(s) => format!("model/{db}/{s}/"),
        None => format!("model/{db}/"),
    }
}

/// Key of a user entry.
pub fn user_key(name: &str) -> String {
    format!("user/{name}")
}

/// Decodes a JSON catalog entry.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// Encodes a catalog entry as JSON.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; fall back to an empty object
    // rather than panicking if it ever did.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// Reads and decodes one entry.
pub fn get<T: for<'de> Deserialize<'de>>(
    reader: &dyn MetaRead,
    key: &str,
) -> Result<Option<T>, CatalogError> {
    reader.meta(key).map(|b| decode(key, &b)).transpose()
}

/// Whether `role` exists and is a superuser.
pub fn is_superuser(reader: &dyn MetaRead, role: &str) -> Result<bool, CatalogError> {
    let entry: Option<UserEntry> = get(reader, &user_key(role))?;
    Ok(entry.is_some_and(|u| u.superuser))
}

/// Reads and decodes all entries under a prefix.
pub fn list<T: for<'de> Deserialize<'de>>(
    reader: &dyn MetaRead,
    prefix: &str,
) -> Result<Vec<T>, CatalogError> {
    reader
        .meta_prefix(prefix)
        .into_iter()
        .map(|(k, v)| decode(&k, &v))
        .collect()
}

/// Writes one entry inside a transaction.
pub fn put<T: Serialize>(txn: &mut Transaction, key: &str, value: &T) {
    txn.put_meta(key, encode(value));
}

/// Creates the default database `freshet` with schema `public` and the bootstrap
/// superuser when the catalog is empty. Idempotent.
pub fn bootstrap(txn: &mut Transaction, superuser: &str, now_micros: i64) {
    if txn.get_meta(&database_key("freshet")).is_none() {
        put(
            txn,
            &database_key("freshet"),
            &DatabaseEntry {
                name: "freshet".into(),
                created_micros: now_micros,
            },
        );
        put(
            txn,
            &schema_key("freshet", "public"),
            &SchemaEntry {
                database: "freshet".into(),
                name: "public".into(),
                created_micros: now_micros,
            },
        );
    }
    let superuser_missing = txn.get_meta(&user_key(superuser)).is_none();
    // Entries that do not decode are left as they are (never rewritten,
    // so no password is lost); only a missing superuser is created.
    let mut users: Vec<UserEntry> = list(&*txn, "user/").unwrap_or_default();
    if superuser_missing {
        users.push(UserEntry::new(superuser, true, true, None));
    }
    // Every user has an OID: the bootstrap superuser 10 unless another
    // user already holds it (the superuser was renamed by --superuser),
    // others the next free one.
    let mut taken: std::collections::HashSet<u32> = users.iter().filter_map(|u| u.oid).collect();
    users.sort_by_key(|u| u.name != superuser);
    for user in &mut users {
        if user.oid.is_some() {
            continue;
        }
        let oid = if user.name == superuser && !taken.contains(&BOOTSTRAP_SUPERUSER_OID) {
            BOOTSTRAP_SUPERUSER_OID
        } else {
            allocate_role_oid(txn)
        };
        taken.insert(oid);
        user.oid = Some(oid);
        put(txn, &user_key(&user.name), user);
    }
}
