//! Users and their SCRAM-SHA-256 credentials.
//!
//! Only the salted password (`Hi(password, salt, i)`) is stored, never the
//! password itself; it is what the SCRAM exchange needs to verify a client.

use datafusion::sql::sqlparser::ast::Owner;
use freshet_catalog::{self as catalog, UserEntry};
use freshet_sql::RoleSettingChange;

use crate::commands::command;
use crate::ddl::txn_mut;
use crate::session::Session;
use crate::{EngineError, QueryOutput};

/// PBKDF2 iterations for new passwords (Postgres' default).
pub(crate) const SCRAM_ITERATIONS: usize = 4096;

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Computes SCRAM credentials for a cleartext password. An empty password is
/// refused (22023): it would be a credential anyone can guess, and a
/// non-loopback listener protected only by it would be open to the network.
pub(crate) fn scram_credentials(password: &str) -> Result<(String, String), EngineError> {
    if password.is_empty() {
        return Err(EngineError::new(
            "22023",
            "empty string is not a valid password",
        ));
    }
    use ring::rand::SecureRandom;
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| EngineError::new("XX000", "could not generate a random salt"))?;
    let mut salted = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(SCRAM_ITERATIONS as u32)
        .ok_or_else(|| EngineError::new("XX000", "invalid iteration count"))?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    Ok((to_hex(&salt), to_hex(&salted)))
}

/// Fails with 42501 unless the session's user is a superuser; `action` ends
/// the message ("only superusers <action>").
pub(crate) fn require_superuser(session: &Session, action: &str) -> Result<(), EngineError> {
    crate::privileges::require_superuser(
        session,
        &format!("permission denied: only superusers {action}"),
    )
}

/// CREATE USER name [PASSWORD '…'] [SUPERUSER] [LOGIN | NOLOGIN], and
/// CREATE ROLE.
pub(crate) fn create_user(
    session: &Session,
    name: &str,
    password: Option<&str>,
    superuser: bool,
    login: bool,
) -> Result<QueryOutput, EngineError> {
    require_superuser(session, "manage users")?;
    let (salt, salted) = match password {
        Some(p) => {
            let (s, h) = scram_credentials(p)?;
            (Some(s), Some(h))
        }
        None => (None, None),
    };
    txn_mut(session, |t| {
        if t.get_meta(&catalog::user_key(name)).is_some() {
            return Err(EngineError::new(
                "42710",
                format!("role \"{name}\" already exists"),
            ));
        }
        let oid = catalog::allocate_role_oid(t);
        let mut entry = UserEntry::new(name, superuser, login, Some(oid));
        entry.scram_salt_hex = salt;
        entry.scram_salted_password_hex = salted;
        entry.scram_iterations = SCRAM_ITERATIONS;
        catalog::put(t, &catalog::user_key(name), &entry);
        Ok(())
    })?;
    Ok(command("CREATE ROLE", None))
}

/// ALTER USER name [PASSWORD '…'] [SUPERUSER|NOSUPERUSER] [LOGIN|NOLOGIN].
pub(crate) fn alter_user(
    session: &Session,
    name: &str,
    password: Option<&str>,
    superuser: Option<bool>,
    login: Option<bool>,
) -> Result<QueryOutput, EngineError> {
    // Users may change their own password, and nothing else about their own
    // role: granting oneself SUPERUSER would be a privilege escalation.
    if name != session.user() || superuser.is_some() || login.is_some() {
        require_superuser(session, "manage users")?;
    }
    let credentials = password.map(scram_credentials).transpose()?;
    txn_mut(session, |t| {
        let mut entry: UserEntry = catalog::get(t, &catalog::user_key(name))
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?
            .ok_or_else(|| EngineError::new("42704", format!("role \"{name}\" does not exist")))?;
        if let Some((salt, salted)) = credentials {
            entry.scram_salt_hex = Some(salt);
            entry.scram_salted_password_hex = Some(salted);
            entry.scram_iterations = SCRAM_ITERATIONS;
        }
        if let Some(s) = superuser {
            entry.superuser = s;
        }
        if let Some(l) = login {
            entry.login = l;
        }
        catalog::put(t, &catalog::user_key(name), &entry);
        Ok(())
    })?;
    Ok(command("ALTER ROLE", None))
}

/// `ALTER ROLE name SET parameter = value`, `RESET parameter`, `RESET
/// ALL`: the role's defaults, which its sessions start with (`pg_roles`
/// shows them as `rolconfig`). The value is checked as `SET` checks it.
/// Users may change their own defaults; other roles' are for superusers.
pub(crate) fn alter_user_setting(
    session: &Session,
    name: &str,
    change: &RoleSettingChange,
) -> Result<QueryOutput, EngineError> {
    if name != session.user() {
        require_superuser(session, "manage users")?;
    }
    // Checked before the transaction: a bad value changes nothing.
    let set = match change {
        RoleSettingChange::Set { parameter, value } => Some((
            parameter.clone(),
            crate::session::checked_setting(parameter, value.clone())?,
        )),
        RoleSettingChange::Reset { .. } | RoleSettingChange::ResetAll => None,
    };
    txn_mut(session, |t| {
        let mut entry: UserEntry = catalog::get(t, &catalog::user_key(name))
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?
            .ok_or_else(|| EngineError::new("42704", format!("role \"{name}\" does not exist")))?;
        match change {
            RoleSettingChange::Reset { parameter } => {
                entry.settings.retain(|(name, _)| name != parameter);
            }
            RoleSettingChange::ResetAll => entry.settings.clear(),
            RoleSettingChange::Set { .. } => {
                if let Some((parameter, value)) = set.clone() {
                    // Replaced where it is, or added last.
                    match entry
                        .settings
                        .iter_mut()
                        .find(|(name, _)| *name == parameter)
                    {
                        Some(slot) => slot.1 = value,
                        None => entry.settings.push((parameter, value)),
                    }
                }
            }
        }
        catalog::put(t, &catalog::user_key(name), &entry);
        Ok(())
    })?;
    Ok(command("ALTER ROLE", None))
}

/// DROP USER [IF EXISTS] name.
pub(crate) fn drop_user(
    session: &Session,
    name: &str,
    if_exists: bool,
) -> Result<QueryOutput, EngineError> {
    require_superuser(session, "manage users")?;
    if name == session.user() {
        return Err(EngineError::new("55006", "current user cannot be dropped"));
    }
    txn_mut(session, |t| {
        if t.get_meta(&catalog::user_key(name)).is_none() {
            if if_exists {
                return Ok(());
            }
            return Err(EngineError::new(
                "42704",
                format!("role \"{name}\" does not exist"),
            ));
        }
        // Relations it owns or holds privileges on would be left with a
        // role that no longer exists (and a later role of the same name
        // would inherit them): refuse, as PostgreSQL does.
        let relations: Vec<catalog::RelationEntry> =
            catalog::list(t, "rel/").map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
        let grantee = catalog::Grantee::Role(name.to_string());
        if let Some(relation) = relations
            .iter()
            .find(|r| r.acl.is_owner(name) || r.acl.grants.iter().any(|g| g.grantee == grantee))
        {
            let object = format!(
                "{} {}",
                crate::privileges::kind_word(&relation.kind),
                relation.name
            );
            return Err(role_in_use(name, relation.acl.is_owner(name), &object));
        }
        let models: Vec<catalog::ModelEntry> = catalog::list(t, "model/")
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
        if let Some(model) = models.iter().find(|m| m.acl.mentions(name)) {
            let object = format!("model {}", model.qualified());
            return Err(role_in_use(name, model.acl.is_owner(name), &object));
        }
        t.delete_meta(&catalog::user_key(name));
        // Its memberships go with it, as PostgreSQL deletes its
        // pg_auth_members rows: those it had, with its entry, and those
        // others have in it.
        let users: Vec<UserEntry> =
            catalog::list(t, "user/").map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
        for mut user in users {
            let before = user.member_of.len();
            user.member_of.retain(|m| m.role != name);
            if user.member_of.len() != before {
                catalog::put(t, &catalog::user_key(&user.name), &user);
            }
        }
        Ok(())
    })?;
    Ok(command("DROP ROLE", None))
}

/// `GRANT role [, …] TO member [, …] [WITH ADMIN OPTION]` and `REVOKE
/// [ADMIN OPTION FOR] role [, …] FROM member [, …]`, as PostgreSQL 15 runs
/// them:
/// - every role named must exist (42704);
/// - the user must be a superuser or hold the role with ADMIN OPTION,
///   itself or through a role it is a member of (42501 `must have admin
///   option on role`);
/// - a grant that would make a role a member of itself, directly or
///   through others, is 0LP01 (`role "a" is a member of role "b"`);
/// - granting a membership that exists changes nothing, or adds the
///   admin option; revoking one that does not exist changes nothing.
///
/// The member then has the role's privileges and ownership
/// ([`crate::privileges::holds`]).
pub(crate) fn role_membership(
    session: &Session,
    grant: bool,
    roles: &[String],
    members: &[Owner],
    admin_option: bool,
) -> Result<QueryOutput, EngineError> {
    let members = members
        .iter()
        .map(|member| crate::privileges::named_owner(session, member))
        .collect::<Result<Vec<_>, _>>()?;
    let superuser = crate::privileges::is_superuser(&session.shared, session.user())?;
    let acting_roles = crate::privileges::roles_of(&session.shared, session.user())?;
    let user = session.user().to_string();
    txn_mut(session, |t| {
        let entry = |t: &freshet_storage::Transaction, name: &str| {
            catalog::get::<UserEntry>(t, &catalog::user_key(name))
                .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?
                .ok_or_else(|| EngineError::new("42704", format!("role \"{name}\" does not exist")))
        };
        for role in roles {
            entry(t, role)?;
            let admin = superuser
                || acting_roles.iter().any(|acting| {
                    entry(t, acting)
                        .is_ok_and(|e| e.membership(role).is_some_and(|m| m.admin_option))
                });
            if !admin {
                return Err(EngineError::new(
                    "42501",
                    format!("must have admin option on role \"{role}\""),
                ));
            }
            for member in &members {
                let mut member_entry = entry(t, member)?;
                if grant {
                    // `role` must not already have `member`'s privileges:
                    // the membership would be a cycle.
                    if catalog::privileged_roles(&*t, role)
                        .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?
                        .contains(member)
                    {
                        return Err(EngineError::new(
                            "0LP01",
                            format!("role \"{role}\" is a member of role \"{member}\""),
                        ));
                    }
                    match member_entry.member_of.iter_mut().find(|m| m.role == *role) {
                        Some(existing) => existing.admin_option |= admin_option,
                        None => member_entry.member_of.push(catalog::RoleMembership {
                            role: role.clone(),
                            admin_option,
                            grantor: user.clone(),
                        }),
                    }
                } else if admin_option {
                    if let Some(existing) =
                        member_entry.member_of.iter_mut().find(|m| m.role == *role)
                    {
                        existing.admin_option = false;
                    }
                } else {
                    member_entry.member_of.retain(|m| m.role != *role);
                }
                catalog::put(t, &catalog::user_key(member), &member_entry);
            }
        }
        Ok(())
    })?;
    Ok(command(
        if grant { "GRANT ROLE" } else { "REVOKE ROLE" },
        None,
    ))
}

/// PostgreSQL's refusal (2BP01) to drop a role that owns `object` or holds
/// privileges on it.
fn role_in_use(role: &str, owner: bool, object: &str) -> EngineError {
    let what = if owner { "owner of" } else { "privileges for" };
    EngineError::new(
        "2BP01",
        format!(
            "role \"{role}\" cannot be dropped because some objects depend on it: {what} {object}"
        ),
    )
}
