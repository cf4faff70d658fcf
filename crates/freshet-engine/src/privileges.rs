//! Who may do what to a relation: owners, GRANT and REVOKE.
//!
//! PostgreSQL's model, for the objects that have it here (tables, views and
//! dynamic tables):
//! - the role that creates a relation owns it; only the owner or a superuser
//!   may DROP, ALTER, replace or index it, and GRANT or REVOKE on it;
//! - anyone else needs a privilege (SELECT, INSERT, UPDATE, DELETE,
//!   TRUNCATE) granted to them or to PUBLIC;
//! - superusers may do anything;
//! - a member of a role (`GRANT role TO member`, [`crate::users`]) has
//!   that role's privileges and ownership, as with PostgreSQL's default
//!   `INHERIT`;
//! - `ALTER … OWNER TO` gives a relation (or a model) to another role.
//!
//! Reads are checked where rows are read, [`crate::provider`]'s table scan
//! (and the prepared point lookup, which skips it), as the session's user:
//! any statement that reads a table checks SELECT, however it was planned.
//! Writes are checked where their target is resolved
//! ([`crate::dml::writable_target`]). A dynamic table refreshes as its owner,
//! so a revoked SELECT on a source fails its next refresh.

use datafusion::sql::sqlparser::ast::{
    Action, Grant, GrantObjects, Grantee as SqlGrantee, GranteeName, ObjectName, Owner, Privileges,
    Revoke,
};
use freshet_catalog::{self as catalog, Acl, Grantee, RelationEntry, RelationKind, TablePrivilege};
use freshet_sql::OwnedObject;

use crate::commands::command;
use crate::ddl::txn_mut;
use crate::names::{lookup_relation, resolve_name};
use crate::planning::map_df_error;
use crate::provider::SessionShared;
use crate::session::Session;
use crate::{EngineError, QueryOutput};

/// Whether `role` is a superuser, in the session's current transaction.
pub(crate) fn is_superuser(shared: &SessionShared, role: &str) -> Result<bool, EngineError> {
    shared
        .with_txn(|t| catalog::is_superuser(t, role))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))
}

/// The roles whose privileges `role` has, in the session's current
/// transaction: itself and the roles it is a member of, directly or not
/// ([`catalog::privileged_roles`]).
pub(crate) fn roles_of(shared: &SessionShared, role: &str) -> Result<Vec<String>, EngineError> {
    shared
        .with_txn(|t| catalog::privileged_roles(t, role))
        .map_err(map_df_error)?
        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))
}

/// Whether `test` holds for `role` or for a role it is a member of: how
/// PostgreSQL's ownership and privilege checks treat members. The role
/// itself is tested first, so the common case reads no other role.
pub(crate) fn holds(
    shared: &SessionShared,
    role: &str,
    test: impl Fn(&str) -> bool,
) -> Result<bool, EngineError> {
    Ok(test(role) || roles_of(shared, role)?.iter().any(|r| test(r)))
}

/// Fails with 42501 and `message` unless the session's user is a superuser.
pub(crate) fn require_superuser(session: &Session, message: &str) -> Result<(), EngineError> {
    if is_superuser(&session.shared, session.user())? {
        Ok(())
    } else {
        Err(EngineError::new("42501", message))
    }
}

/// Whether the session's user owns what `acl` belongs to (itself or
/// through a role it is a member of), or is a superuser.
fn owns(session: &Session, acl: &Acl) -> Result<bool, EngineError> {
    Ok(holds(&session.shared, session.user(), |r| acl.is_owner(r))?
        || is_superuser(&session.shared, session.user())?)
}

/// The word PostgreSQL's messages use for a relation of this kind.
pub(crate) fn kind_word(kind: &RelationKind) -> &'static str {
    match kind {
        RelationKind::View { .. } => "view",
        RelationKind::Table | RelationKind::DynamicTable(_) => "table",
    }
}

/// Fails with 42501 unless `role` may use `privilege` on the table (or
/// dynamic table) `relation`: itself, through a role it is a member of,
/// or as a superuser. (Views are checked on the tables they read.)
pub(crate) fn require(
    shared: &SessionShared,
    role: &str,
    relation: &str,
    acl: &Acl,
    privilege: TablePrivilege,
) -> Result<(), EngineError> {
    if holds(shared, role, |r| acl.allows(r, privilege))? || is_superuser(shared, role)? {
        return Ok(());
    }
    Err(EngineError::new(
        "42501",
        format!("permission denied for table {relation}"),
    ))
}

/// Fails with 42501 unless the session's user owns `entry` or is a
/// superuser.
pub(crate) fn require_owner(session: &Session, entry: &RelationEntry) -> Result<(), EngineError> {
    require_owner_of(session, &entry.acl, kind_word(&entry.kind), &entry.name)
}

/// Fails with 42501 ("must be owner of `what` `name`") unless the session's
/// user owns what `acl` belongs to (a relation, or one of its indexes) or is
/// a superuser.
pub(crate) fn require_owner_of(
    session: &Session,
    acl: &Acl,
    what: &str,
    name: &str,
) -> Result<(), EngineError> {
    if owns(session, acl)? {
        return Ok(());
    }
    Err(EngineError::new(
        "42501",
        format!("must be owner of {what} {name}"),
    ))
}

/// The role an `OWNER TO` names, which must exist (42704).
pub(crate) fn named_owner(session: &Session, owner: &Owner) -> Result<String, EngineError> {
    let role = match owner {
        Owner::Ident(name) => crate::names::ident(name),
        // Freshet has no SET ROLE: the session's user is all three.
        Owner::CurrentUser | Owner::CurrentRole | Owner::SessionUser => session.user().to_string(),
    };
    let exists = session
        .shared
        .with_txn(|t| t.get_meta(&catalog::user_key(&role)).is_some())
        .map_err(map_df_error)?;
    if !exists {
        return Err(EngineError::new(
            "42704",
            format!("role \"{role}\" does not exist"),
        ));
    }
    Ok(role)
}

/// Fails with 42501 unless the session's user may make `role` an owner:
/// PostgreSQL 15 asks to be `role` or a member of it, directly or not; a
/// superuser may give to anyone.
pub(crate) fn require_member_of(session: &Session, role: &str) -> Result<(), EngineError> {
    if roles_of(&session.shared, session.user())?
        .iter()
        .any(|r| r == role)
        || is_superuser(&session.shared, session.user())?
    {
        return Ok(());
    }
    Err(EngineError::new(
        "42501",
        format!("must be member of role \"{role}\""),
    ))
}

/// `ALTER TABLE | VIEW | DYNAMIC TABLE name OWNER TO role`, as PostgreSQL
/// runs it: only the owner or a superuser may; naming the current owner
/// then changes nothing; any other role must be one they may become
/// ([`require_member_of`]). What the old owner held and granted
/// passes to the new one ([`Acl::change_owner`]); a dynamic table then
/// refreshes with the new owner's privileges. `object` is `None` for ALTER
/// TABLE, which takes any relation; ALTER VIEW and ALTER DYNAMIC TABLE
/// take only their own kind (42809).
pub(crate) fn alter_relation_owner(
    session: &Session,
    name: &ObjectName,
    if_exists: bool,
    owner: &Owner,
    object: Option<OwnedObject>,
) -> Result<QueryOutput, EngineError> {
    let tag = match object {
        None => "ALTER TABLE",
        Some(OwnedObject::View) => "ALTER VIEW",
        Some(OwnedObject::DynamicTable) => "ALTER DYNAMIC TABLE",
        Some(OwnedObject::Model) => "ALTER MODEL",
    };
    let qualified = resolve_name(session, name)?;
    let mut entry = match crate::names::find_relation(session, &qualified)? {
        Some(entry) => entry,
        None if if_exists => return Ok(command(tag, None)),
        None => lookup_relation(session, &qualified)?,
    };
    let kind_matches = match object {
        Some(OwnedObject::View) => matches!(entry.kind, RelationKind::View { .. }),
        Some(OwnedObject::DynamicTable) => matches!(entry.kind, RelationKind::DynamicTable(_)),
        Some(OwnedObject::Model) | None => true,
    };
    if !kind_matches {
        let what = match object {
            Some(OwnedObject::View) => "a view",
            _ => "a dynamic table",
        };
        return Err(EngineError::new(
            "42809",
            format!("\"{}\" is not {what}", entry.name),
        ));
    }
    require_owner(session, &entry)?;
    let role = named_owner(session, owner)?;
    if entry.acl.is_owner(&role) {
        return Ok(command(tag, None));
    }
    require_member_of(session, &role)?;
    entry.acl.change_owner(&role);
    txn_mut(session, |t| {
        catalog::put(t, &catalog::relation_key(&qualified), &entry);
        Ok(())
    })?;
    Ok(command(tag, None))
}

/// The table privileges a GRANT or REVOKE names.
fn table_privileges(privileges: &Privileges) -> Result<Vec<TablePrivilege>, EngineError> {
    match privileges {
        Privileges::All { .. } => Ok(TablePrivilege::ALL.to_vec()),
        Privileges::Actions(actions) => actions
            .iter()
            .map(|action| match action {
                Action::Select { columns: None } => Ok(TablePrivilege::Select),
                Action::Insert { columns: None } => Ok(TablePrivilege::Insert),
                Action::Update { columns: None } => Ok(TablePrivilege::Update),
                Action::Delete => Ok(TablePrivilege::Delete),
                Action::Truncate => Ok(TablePrivilege::Truncate),
                Action::References { columns: None } => Ok(TablePrivilege::References),
                Action::Trigger => Ok(TablePrivilege::Trigger),
                Action::Select { .. }
                | Action::Insert { .. }
                | Action::Update { .. }
                | Action::References { .. } => Err(EngineError::new(
                    "0A000",
                    "column privileges are not supported",
                )),
                other => Err(EngineError::new(
                    "0A000",
                    format!("privilege {other} is not supported on tables"),
                )),
            })
            .collect(),
    }
}

fn grantees(grantees: &[SqlGrantee]) -> Result<Vec<Grantee>, EngineError> {
    grantees
        .iter()
        .map(|grantee| match &grantee.name {
            Some(GranteeName::ObjectName(name)) => {
                let role = crate::names::parts(name).join(".");
                if role == "public" {
                    Ok(Grantee::Public)
                } else {
                    Ok(Grantee::Role(role))
                }
            }
            _ if grantee.grantee_type == datafusion::sql::sqlparser::ast::GranteesType::Public => {
                Ok(Grantee::Public)
            }
            _ => Err(EngineError::new(
                "0A000",
                format!("grantee {grantee} is not supported"),
            )),
        })
        .collect()
}

/// The relations a GRANT or REVOKE is on: `ON [TABLE] a, b`.
fn objects(
    objects: Option<&GrantObjects>,
) -> Result<&[datafusion::sql::sqlparser::ast::ObjectName], EngineError> {
    match objects {
        Some(GrantObjects::Tables(names)) => Ok(names),
        Some(other) => Err(EngineError::new(
            "0A000",
            format!("GRANT and REVOKE on {other} are not supported; only on tables, views and dynamic tables"),
        )),
        None => Err(EngineError::new(
            "0A000",
            "granting roles is not supported; grant privileges on tables",
        )),
    }
}

/// GRANT privileges ON [TABLE] names TO roles, or REVOKE them.
fn change(
    session: &Session,
    privileges: &Privileges,
    on: Option<&GrantObjects>,
    to: &[SqlGrantee],
    grant: bool,
) -> Result<QueryOutput, EngineError> {
    let privileges = table_privileges(privileges)?;
    let grantees = grantees(to)?;
    for grantee in &grantees {
        if let Grantee::Role(role) = grantee {
            let exists = session
                .shared
                .with_txn(|t| t.get_meta(&catalog::user_key(role)).is_some())
                .map_err(map_df_error)?;
            if !exists {
                return Err(EngineError::new(
                    "42704",
                    format!("role \"{role}\" does not exist"),
                ));
            }
        }
    }
    for name in objects(on)? {
        let qualified = resolve_name(session, name)?;
        let mut entry = lookup_relation(session, &qualified)?;
        if !owns(session, &entry.acl)? {
            return Err(EngineError::new(
                "42501",
                format!(
                    "permission denied for {} {}",
                    kind_word(&entry.kind),
                    entry.name
                ),
            ));
        }
        // As in PostgreSQL, a superuser's grant is recorded as the owner's.
        let grantor = entry
            .acl
            .owner
            .clone()
            .unwrap_or_else(|| session.user().to_string());
        for grantee in &grantees {
            if grant {
                entry.acl.grant(grantee.clone(), &grantor, &privileges);
            } else {
                entry.acl.revoke(grantee, &privileges);
            }
        }
        txn_mut(session, |t| {
            catalog::put(t, &catalog::relation_key(&qualified), &entry);
            Ok(())
        })?;
    }
    Ok(command(if grant { "GRANT" } else { "REVOKE" }, None))
}

/// Runs GRANT … ON … TO ….
pub(crate) fn grant(session: &Session, grant: &Grant) -> Result<QueryOutput, EngineError> {
    if grant.with_grant_option {
        return Err(EngineError::new(
            "0A000",
            "WITH GRANT OPTION is not supported",
        ));
    }
    change(
        session,
        &grant.privileges,
        grant.objects.as_ref(),
        &grant.grantees,
        true,
    )
}

/// Runs REVOKE … ON … FROM ….
pub(crate) fn revoke(session: &Session, revoke: &Revoke) -> Result<QueryOutput, EngineError> {
    change(
        session,
        &revoke.privileges,
        revoke.objects.as_ref(),
        &revoke.grantees,
        false,
    )
}
