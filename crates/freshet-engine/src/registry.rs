//! The model registry: `CREATE MODEL`, versions, aliases, SHOW and DESCRIBE,
//! and who may use a model.
//!
//! A model is owned by the role that registers it. Only its owner (or a
//! superuser) may alter, replace or drop it, and grant or revoke USAGE on
//! it; calling it needs USAGE ([`resolve_model`] checks it, for queries and
//! for the dynamic tables that score with it, which refresh as their
//! owner).
//!
//! A model version's ONNX bytes are validated (parsed and optimized by the model
//! runtime) *before* anything is written, and then stored with the model's
//! catalog entry in one transaction, so a bad file is never half-registered and
//! a registered model survives restart and crash like any table row.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{ObjectName, Owner};

use freshet_catalog::{
    self as catalog, Grantee, MetaRead, ModelAcl, ModelEntry, ModelVersionEntry, QualifiedName,
};
use freshet_models::CompiledModel;
use freshet_sql::{
    AlterModelAction, FreshetStatement, GranteeSpec, ModelSource, OwnedObject, ShowScope,
};

use crate::commands::{command, text_rows, text_schema};
use crate::ddl::{now_micros, txn_mut};
use crate::engine::Engine;
use crate::names::{ident, parts, require_schema, resolve_name};
use crate::planning::map_df_error;
use crate::session::Session;
use crate::{EngineError, QueryOutput};

/// A model version resolved for inference.
pub(crate) struct ResolvedModel {
    pub(crate) entry: ModelEntry,
    pub(crate) version: ModelVersionEntry,
    pub(crate) compiled: Arc<CompiledModel>,
}

fn catalog_err(e: catalog::CatalogError) -> EngineError {
    EngineError::new(e.sqlstate(), e.to_string())
}

/// Splits `db.schema.model` (1–3 parts) relative to the defaults.
pub(crate) fn qualify_model(default_db: &str, default_schema: &str, name: &str) -> QualifiedName {
    let parts: Vec<String> = name
        .split('.')
        .map(|p| {
            if p.starts_with('"') && p.ends_with('"') && p.len() >= 2 {
                p[1..p.len() - 1].to_string()
            } else {
                p.to_ascii_lowercase()
            }
        })
        .collect();
    match parts.as_slice() {
        [m] => QualifiedName {
            database: default_db.into(),
            schema: default_schema.into(),
            name: m.clone(),
        },
        [s, m] => QualifiedName {
            database: default_db.into(),
            schema: s.clone(),
            name: m.clone(),
        },
        [d, s, m, ..] => QualifiedName {
            database: d.clone(),
            schema: s.clone(),
            name: m.clone(),
        },
        [] => QualifiedName {
            database: default_db.into(),
            schema: default_schema.into(),
            name: String::new(),
        },
    }
}

/// Loads (or reuses) the compiled model for a version.
pub(crate) fn compiled_version(
    engine: &Engine,
    reader: &dyn MetaRead,
    version: &ModelVersionEntry,
) -> Result<Arc<CompiledModel>, EngineError> {
    if let Some(m) = engine.models.lock().get(&version.content_hash) {
        return Ok(m.clone());
    }
    let bytes = reader.meta(&version.blob_key).ok_or_else(|| {
        EngineError::new(
            "XX001",
            format!("model bytes {} are missing", version.blob_key),
        )
    })?;
    let compiled = Arc::new(
        CompiledModel::compile(&bytes)
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?,
    );
    engine
        .models
        .lock()
        .insert(version.content_hash.clone(), compiled.clone());
    Ok(compiled)
}

/// Fails with 42501 unless `role` may call the model: it owns the model,
/// holds USAGE on it (directly, through PUBLIC or through a role it is a
/// member of), or is a superuser.
pub(crate) fn require_usage(
    reader: &dyn MetaRead,
    role: &str,
    entry: &ModelEntry,
) -> Result<(), EngineError> {
    let allowed = entry.acl.allows_usage(role)
        || catalog::privileged_roles(reader, role)
            .map_err(catalog_err)?
            .iter()
            .any(|r| entry.acl.allows_usage(r));
    if allowed || catalog::is_superuser(reader, role).map_err(catalog_err)? {
        return Ok(());
    }
    Err(EngineError::new(
        "42501",
        format!("permission denied for model {}", entry.qualified()),
    ))
}

/// Resolves a model name and version reference to a compiled model, for
/// `role` to call: it needs USAGE on the model.
pub(crate) fn resolve_model(
    engine: &Engine,
    reader: &dyn MetaRead,
    role: &str,
    default_db: &str,
    default_schema: &str,
    name: &str,
    version: Option<&str>,
) -> Result<ResolvedModel, EngineError> {
    let qualified = qualify_model(default_db, default_schema, name);
    let entry: ModelEntry = catalog::get(reader, &catalog::model_key(&qualified))
        .map_err(catalog_err)?
        .ok_or_else(|| {
            EngineError::new("42704", format!("model \"{qualified}\" does not exist"))
        })?;
    require_usage(reader, role, &entry)?;
    let version_entry = entry.resolve_version(version).cloned().ok_or_else(|| {
        EngineError::new(
            "42704",
            format!(
                "model {qualified} has no version or alias \"{}\"; versions: {}",
                version.unwrap_or("DEFAULT"),
                entry
                    .versions
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let compiled = compiled_version(engine, reader, &version_entry)?;
    Ok(ResolvedModel {
        entry,
        version: version_entry,
        compiled,
    })
}

fn content_hash(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a model's ONNX bytes from its source, enforcing `--model-dir`.
fn source_bytes(
    session: &Session,
    source: &ModelSource,
    params: Option<&ParamValues>,
) -> Result<Vec<u8>, EngineError> {
    match source {
        ModelSource::Bytes(b) => Ok(b.clone()),
        ModelSource::Parameter(n) => {
            let value = match params {
                Some(ParamValues::List(list)) => {
                    list.get(n.saturating_sub(1)).map(|v| v.value.clone())
                }
                _ => None,
            };
            match value {
                Some(ScalarValue::Binary(Some(b)))
                | Some(ScalarValue::LargeBinary(Some(b)))
                | Some(ScalarValue::BinaryView(Some(b))) => Ok(b),
                Some(ScalarValue::Utf8(Some(s))) => decode_bytea_text(&s),
                Some(other) if other.is_null() => {
                    Err(EngineError::new("22004", "model bytes must not be NULL"))
                }
                Some(other) => Err(EngineError::new(
                    "42804",
                    format!(
                        "model source parameter ${n} must be bytea, got {}",
                        other.data_type()
                    ),
                )),
                None => Err(EngineError::new(
                    "42P02",
                    format!("there is no parameter ${n}"),
                )),
            }
        }
        ModelSource::Path(path) => read_model_file(session, path),
    }
}

/// Joins `path` to `dir` and folds `.` and `..` lexically, without touching
/// the file system; `None` when `..` climbs above the root.
fn lexical_join(dir: &Path, path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut out = if path.is_absolute() {
        PathBuf::new()
    } else {
        dir.to_path_buf()
    };
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

/// Reads a server-side model file, which must lie inside `--model-dir`.
///
/// Two checks, because either alone leaks or escapes: the lexical one
/// refuses `../secret` and absolute paths elsewhere *before* the file
/// system is asked anything (so a client cannot probe which files exist
/// outside the directory); the canonical one resolves symlinks, so a link
/// inside the directory pointing outside it is refused too.
fn read_model_file(session: &Session, path: &str) -> Result<Vec<u8>, EngineError> {
    let Some(configured) = &session.engine.config.model_dir else {
        return Err(EngineError::new(
            "42501",
            "server-side model paths are disabled; start the server with --model-dir DIR",
        ));
    };
    let dir = configured
        .canonicalize()
        .map_err(|e| EngineError::new("58030", format!("model directory is not readable: {e}")))?;
    let outside = || {
        EngineError::new(
            "42501",
            format!("model path \"{path}\" is outside the model directory"),
        )
    };
    // An absolute path may spell the directory as configured or canonically.
    let lexical = [dir.as_path(), configured.as_path()]
        .into_iter()
        .filter_map(|base| lexical_join(base, path).filter(|p| p.starts_with(base)))
        .next()
        .ok_or_else(outside)?;
    let real = lexical.canonicalize().map_err(|e| {
        EngineError::new(
            "58P01",
            format!("could not open model file \"{path}\": {e}"),
        )
    })?;
    if !real.starts_with(&dir) {
        return Err(outside());
    }
    if !real.is_file() {
        return Err(EngineError::new(
            "58P01",
            format!("model path \"{path}\" is not a file"),
        ));
    }
    std::fs::read(&real).map_err(|e| {
        EngineError::new(
            "58030",
            format!("could not read model file \"{path}\": {e}"),
        )
    })
}

/// Accepts the text form of bytea (`\x0a0b…`) for drivers that send text.
fn decode_bytea_text(text: &str) -> Result<Vec<u8>, EngineError> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| EngineError::new("22P02", "invalid input syntax for type bytea"))?;
    crate::users::from_hex(hex)
        .ok_or_else(|| EngineError::new("22P02", "invalid hexadecimal data in bytea"))
}

/// Validates bytes and builds a version entry; writes the blob in `txn`.
fn register_version(
    session: &Session,
    model: &QualifiedName,
    version: &str,
    bytes: Vec<u8>,
) -> Result<ModelVersionEntry, EngineError> {
    let signature = freshet_models::inspect(&bytes).map_err(|e| {
        EngineError::new(
            e.sqlstate(),
            format!("model {model} version {version} was not registered: {e}"),
        )
    })?;
    let hash = content_hash(&bytes);
    let blob_key = format!("blob/model/{hash}");
    let size = bytes.len() as u64;
    txn_mut(session, |t| {
        if t.get_meta(&blob_key).is_none() {
            t.put_meta(&blob_key, bytes);
        }
        Ok(())
    })?;
    Ok(ModelVersionEntry {
        name: version.to_string(),
        aliases: Vec::new(),
        blob_key,
        content_hash: hash,
        size,
        signature_json: signature_json(&signature),
        created_micros: now_micros(),
    })
}

fn signature_json(signature: &freshet_models::ModelSignature) -> String {
    let tensor = |t: &freshet_models::TensorSpec| {
        serde_json::json!({
            "name": t.name,
            "type": format!("{:?}", t.elem),
            "shape": t.shape.iter().map(|d| d.map(|v| v.to_string()).unwrap_or_else(|| "?".into())).collect::<Vec<_>>(),
        })
    };
    serde_json::json!({
        "inputs": signature.inputs.iter().map(tensor).collect::<Vec<_>>(),
        "outputs": signature.outputs.iter().map(tensor).collect::<Vec<_>>(),
        "methods": signature.methods,
    })
    .to_string()
}

fn load_model(session: &Session, name: &QualifiedName) -> Result<Option<ModelEntry>, EngineError> {
    session
        .shared
        .with_txn(|t| catalog::get::<ModelEntry>(t, &catalog::model_key(name)))
        .map_err(map_df_error)?
        .map_err(catalog_err)
}

fn require_model(
    session: &Session,
    name: &ObjectName,
) -> Result<(QualifiedName, ModelEntry), EngineError> {
    let qualified = resolve_name(session, name)?;
    let entry = load_model(session, &qualified)?.ok_or_else(|| {
        EngineError::new("42704", format!("model \"{qualified}\" does not exist"))
    })?;
    Ok((qualified, entry))
}

fn save_model(session: &Session, entry: &ModelEntry) -> Result<(), EngineError> {
    txn_mut(session, |t| {
        catalog::put(t, &catalog::model_key(&entry.qualified()), entry);
        Ok(())
    })
}

fn like_matches(pattern: Option<&str>, name: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => like(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()),
    }
}

/// SQL LIKE with `%` and `_`.
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn micros_to_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        .unwrap_or_default()
}

const SHOW_MODELS_COLUMNS: &[&str] = &[
    "created_on",
    "name",
    "database_name",
    "schema_name",
    "comment",
    "owner",
    "default_version_name",
    "versions",
    "aliases",
];

const SHOW_GRANTS_COLUMNS: &[&str] = &[
    "privilege",
    "granted_on",
    "name",
    "granted_to",
    "grantee_name",
    "grant_option",
    "granted_by",
];

const SHOW_VERSIONS_COLUMNS: &[&str] = &[
    "created_on",
    "name",
    "aliases",
    "is_default_version",
    "functions",
    "metadata",
    "size",
];

/// Row descriptions of the registry's row-returning statements.
pub(crate) fn describe(
    _session: &Session,
    statement: &FreshetStatement,
) -> Option<datafusion::arrow::datatypes::SchemaRef> {
    match statement {
        FreshetStatement::ShowModels { .. } => Some(text_schema(SHOW_MODELS_COLUMNS)),
        FreshetStatement::ShowModelGrants { .. } => Some(text_schema(SHOW_GRANTS_COLUMNS)),
        FreshetStatement::ShowVersions { .. } | FreshetStatement::DescribeModel { .. } => {
            Some(text_schema(SHOW_VERSIONS_COLUMNS))
        }
        _ => None,
    }
}

/// Executes a registry statement; `None` if the statement is not one.
pub(crate) async fn run(
    session: &mut Session,
    statement: &FreshetStatement,
    params: Option<&ParamValues>,
) -> Option<Result<QueryOutput, EngineError>> {
    let result = match statement {
        FreshetStatement::CreateModel {
            or_replace,
            if_not_exists,
            name,
            version,
            source,
            comment,
        } => create_model(
            session,
            name,
            *or_replace,
            *if_not_exists,
            version.as_ref().map(ident),
            source,
            comment.clone(),
            params,
        ),
        FreshetStatement::AlterModel { name, action } => alter_model(session, name, action, params),
        FreshetStatement::AlterOwner {
            object: OwnedObject::Model,
            name,
            owner,
            ..
        } => alter_model_owner(session, name, owner),
        FreshetStatement::DropModel { name, if_exists } => {
            let qualified = match resolve_name(session, name) {
                Ok(q) => q,
                Err(e) => return Some(Err(e)),
            };
            match load_model(session, &qualified) {
                Ok(Some(entry)) => require_model_owner(session, &entry)
                    .and_then(|()| {
                        txn_mut(session, |t| {
                            t.delete_meta(&catalog::model_key(&qualified));
                            Ok(())
                        })
                    })
                    .map(|_| command("DROP MODEL", None)),
                Ok(None) if *if_exists => Ok(command("DROP MODEL", None)),
                Ok(None) => Err(EngineError::new(
                    "42704",
                    format!("model \"{qualified}\" does not exist"),
                )),
                Err(e) => Err(e),
            }
        }
        FreshetStatement::ModelPrivileges {
            grant,
            privileges,
            models,
            grantees,
        } => change_privileges(session, *grant, privileges, models, grantees),
        FreshetStatement::ShowModelGrants { model } => show_grants(session, model),
        FreshetStatement::ShowModels { like, scope } => {
            show_models(session, like.as_deref(), scope)
        }
        FreshetStatement::ShowVersions { like, model } => {
            show_versions(session, model, like.as_deref(), None)
        }
        FreshetStatement::DescribeModel { name, version } => {
            show_versions(session, name, None, version.as_ref().map(ident))
        }
        _ => return None,
    };
    Some(result)
}

#[allow(clippy::too_many_arguments)]
fn create_model(
    session: &Session,
    name: &ObjectName,
    or_replace: bool,
    if_not_exists: bool,
    version: Option<String>,
    source: &ModelSource,
    comment: Option<String>,
    params: Option<&ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let qualified = resolve_name(session, name)?;
    require_schema(session, &qualified)?;
    // A replaced model keeps its owner and grants, as a function replaced
    // in PostgreSQL does: the dynamic tables and roles that use it go on
    // using it.
    let mut acl = ModelAcl::owned_by(session.user());
    if let Some(existing) = load_model(session, &qualified)? {
        if if_not_exists {
            return Ok(command("CREATE MODEL", None));
        }
        if !or_replace {
            return Err(EngineError::new(
                "42710",
                format!("model \"{qualified}\" already exists"),
            ));
        }
        require_model_owner(session, &existing)?;
        if existing.acl.owner.is_some() {
            acl = existing.acl;
        }
    }
    let version = version.unwrap_or_else(|| "v1".into());
    let bytes = source_bytes(session, source, params)?;
    let version_entry = register_version(session, &qualified, &version, bytes)?;
    let entry = ModelEntry {
        database: qualified.database.clone(),
        schema: qualified.schema.clone(),
        name: qualified.name.clone(),
        versions: vec![version_entry],
        default_version: version,
        comment,
        created_micros: now_micros(),
        acl,
    };
    save_model(session, &entry)?;
    Ok(command("CREATE MODEL", None))
}

fn alter_model(
    session: &Session,
    name: &ObjectName,
    action: &AlterModelAction,
    params: Option<&ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let (qualified, mut entry) = require_model(session, name)?;
    require_model_owner(session, &entry)?;
    let find_version = |entry: &ModelEntry, v: &str| {
        entry
            .versions
            .iter()
            .position(|x| x.name.eq_ignore_ascii_case(v))
            .ok_or_else(|| {
                EngineError::new("42704", format!("model {qualified} has no version \"{v}\""))
            })
    };
    match action {
        AlterModelAction::AddVersion { version, source } => {
            let version = ident(version);
            if entry.resolve_version(Some(&version)).is_some()
                && entry
                    .versions
                    .iter()
                    .any(|v| v.name.eq_ignore_ascii_case(&version))
            {
                return Err(EngineError::new(
                    "42710",
                    format!("model {qualified} already has a version \"{version}\""),
                ));
            }
            let bytes = source_bytes(session, source, params)?;
            let v = register_version(session, &qualified, &version, bytes)?;
            entry.versions.push(v);
        }
        AlterModelAction::SetDefaultVersion(v) => {
            let i = find_version(&entry, v)?;
            entry.default_version = entry.versions[i].name.clone();
        }
        AlterModelAction::SetVersionAlias { version, alias } => {
            let alias = ident(alias);
            if ["first", "last", "default"].contains(&alias.as_str()) {
                return Err(EngineError::new(
                    "42939",
                    format!("\"{alias}\" is reserved and cannot be an alias"),
                ));
            }
            if entry
                .versions
                .iter()
                .any(|v| v.name.eq_ignore_ascii_case(&alias))
            {
                return Err(EngineError::new(
                    "42710",
                    format!("\"{alias}\" is already a version name"),
                ));
            }
            let i = find_version(&entry, &ident(version))?;
            for v in entry.versions.iter_mut() {
                v.aliases.retain(|a| !a.eq_ignore_ascii_case(&alias));
            }
            entry.versions[i].aliases.push(alias);
        }
        AlterModelAction::UnsetVersionAlias { version } => {
            let i = find_version(&entry, &ident(version))?;
            entry.versions[i].aliases.clear();
        }
        AlterModelAction::DropVersion(version) => {
            let i = find_version(&entry, &ident(version))?;
            if entry.versions[i].name == entry.default_version {
                return Err(EngineError::new(
                    "2BP01",
                    format!(
                        "cannot drop version {} of model {qualified}: it is the default version; set another default first",
                        entry.versions[i].name
                    ),
                ));
            }
            entry.versions.remove(i);
        }
        AlterModelAction::SetComment(c) => entry.comment = Some(c.clone()),
        AlterModelAction::RenameTo(new_name) => {
            let p = parts(new_name);
            let target = QualifiedName {
                database: if p.len() == 3 {
                    p[0].clone()
                } else {
                    qualified.database.clone()
                },
                schema: if p.len() >= 2 {
                    p[p.len() - 2].clone()
                } else {
                    qualified.schema.clone()
                },
                name: p.last().cloned().unwrap_or_default(),
            };
            require_schema(session, &target)?;
            if load_model(session, &target)?.is_some() {
                return Err(EngineError::new(
                    "42710",
                    format!("model \"{target}\" already exists"),
                ));
            }
            txn_mut(session, |t| {
                t.delete_meta(&catalog::model_key(&qualified));
                Ok(())
            })?;
            entry.database = target.database;
            entry.schema = target.schema;
            entry.name = target.name;
        }
    }
    save_model(session, &entry)?;
    Ok(command("ALTER MODEL", None))
}

/// `ALTER MODEL name OWNER TO role`, with the checks of
/// [`crate::privileges::alter_relation_owner`].
fn alter_model_owner(
    session: &Session,
    name: &ObjectName,
    owner: &Owner,
) -> Result<QueryOutput, EngineError> {
    let (_, mut entry) = require_model(session, name)?;
    require_model_owner(session, &entry)?;
    let role = crate::privileges::named_owner(session, owner)?;
    if entry.acl.is_owner(&role) {
        return Ok(command("ALTER MODEL", None));
    }
    crate::privileges::require_member_of(session, &role)?;
    entry.acl.change_owner(&role);
    save_model(session, &entry)?;
    Ok(command("ALTER MODEL", None))
}

fn show_models(
    session: &Session,
    like_pattern: Option<&str>,
    scope: &ShowScope,
) -> Result<QueryOutput, EngineError> {
    let prefix = match scope {
        ShowScope::Current => catalog::model_prefix(&session.database, None),
        ShowScope::Database(d) => catalog::model_prefix(&ident(d), None),
        ShowScope::Schema(s) => {
            let p = parts(s);
            match p.as_slice() {
                [schema] => catalog::model_prefix(&session.database, Some(schema)),
                [db, schema] => catalog::model_prefix(db, Some(schema)),
                _ => return Err(EngineError::new("42601", "invalid schema name")),
            }
        }
    };
    let models: Vec<ModelEntry> = session
        .shared
        .with_txn(|t| catalog::list(t, &prefix))
        .map_err(map_df_error)?
        .map_err(catalog_err)?;
    let rows = models
        .into_iter()
        .filter(|m| like_matches(like_pattern, &m.name))
        .map(|m| {
            let versions = serde_json::to_string(
                &m.versions
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default();
            let aliases = serde_json::to_string(
                &m.versions
                    .iter()
                    .flat_map(|v| v.aliases.iter().map(move |a| (a.clone(), v.name.clone())))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .unwrap_or_default();
            vec![
                Some(micros_to_text(m.created_micros)),
                Some(m.name),
                Some(m.database),
                Some(m.schema),
                m.comment,
                m.acl.owner,
                Some(m.default_version),
                Some(versions),
                Some(aliases),
            ]
        })
        .collect();
    Ok(text_rows(SHOW_MODELS_COLUMNS, rows))
}

/// Whether the session's user owns the model (itself or through a role
/// it is a member of) or is a superuser.
fn owns_model(session: &Session, entry: &ModelEntry) -> Result<bool, EngineError> {
    Ok(
        crate::privileges::holds(&session.shared, session.user(), |r| entry.acl.is_owner(r))?
            || crate::privileges::is_superuser(&session.shared, session.user())?,
    )
}

/// Fails with 42501 ("must be owner of model m") unless the session's user
/// owns the model or is a superuser.
fn require_model_owner(session: &Session, entry: &ModelEntry) -> Result<(), EngineError> {
    if owns_model(session, entry)? {
        return Ok(());
    }
    Err(EngineError::new(
        "42501",
        format!("must be owner of model {}", entry.qualified()),
    ))
}

/// `GRANT USAGE ON MODEL … TO …` and `REVOKE USAGE ON MODEL … FROM …`.
/// USAGE (or `ALL`) is a model's only privilege; any other is 0LP01, as
/// PostgreSQL answers a privilege the object type does not have.
fn change_privileges(
    session: &Session,
    grant: bool,
    privileges: &[datafusion::sql::sqlparser::ast::Ident],
    models: &[ObjectName],
    grantees: &[GranteeSpec],
) -> Result<QueryOutput, EngineError> {
    for privilege in privileges {
        let word = ident(privilege);
        if word != "usage" && word != "all" {
            return Err(EngineError::new(
                "0LP01",
                format!(
                    "invalid privilege type {} for model",
                    word.to_ascii_uppercase()
                ),
            ));
        }
    }
    let grantees = grantees
        .iter()
        .map(|grantee| match grantee {
            GranteeSpec::Public => Ok(Grantee::Public),
            GranteeSpec::Role(role) => {
                let role = ident(role);
                let exists = session
                    .shared
                    .with_txn(|t| t.get_meta(&catalog::user_key(&role)).is_some())
                    .map_err(map_df_error)?;
                if exists {
                    Ok(Grantee::Role(role))
                } else {
                    Err(EngineError::new(
                        "42704",
                        format!("role \"{role}\" does not exist"),
                    ))
                }
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    for model in models {
        let (qualified, mut entry) = require_model(session, model)?;
        if !owns_model(session, &entry)? {
            return Err(EngineError::new(
                "42501",
                format!("permission denied for model {qualified}"),
            ));
        }
        let Some(grantor) = entry.acl.owner.clone() else {
            return Err(EngineError::new(
                "55000",
                format!(
                    "model {qualified} has no owner: it was registered before owners were recorded; create it again to grant on it"
                ),
            ));
        };
        for grantee in &grantees {
            if grant {
                entry.acl.grant_usage(grantee.clone(), &grantor);
            } else {
                entry.acl.revoke_usage(grantee);
            }
        }
        save_model(session, &entry)?;
    }
    Ok(command(if grant { "GRANT" } else { "REVOKE" }, None))
}

/// `SHOW GRANTS ON MODEL m`: its owner (OWNERSHIP) and who holds USAGE,
/// in Snowflake's columns.
fn show_grants(session: &Session, model: &ObjectName) -> Result<QueryOutput, EngineError> {
    let (qualified, entry) = require_model(session, model)?;
    let name = qualified.to_string();
    let row = |privilege: &str, grantee: String, granted_by: String| {
        vec![
            Some(privilege.to_string()),
            Some("MODEL".to_string()),
            Some(name.clone()),
            Some("ROLE".to_string()),
            Some(grantee),
            Some("false".to_string()),
            Some(granted_by),
        ]
    };
    let mut rows = Vec::new();
    if let Some(owner) = &entry.acl.owner {
        rows.push(row("OWNERSHIP", owner.clone(), owner.clone()));
    }
    for grant in &entry.acl.usage {
        let grantee = match &grant.grantee {
            Grantee::Public => "PUBLIC".to_string(),
            Grantee::Role(role) => role.clone(),
        };
        rows.push(row("USAGE", grantee, grant.grantor.clone()));
    }
    Ok(text_rows(SHOW_GRANTS_COLUMNS, rows))
}

fn show_versions(
    session: &Session,
    model: &ObjectName,
    like_pattern: Option<&str>,
    only: Option<String>,
) -> Result<QueryOutput, EngineError> {
    let (qualified, entry) = require_model(session, model)?;
    let selected: Option<String> = match &only {
        Some(v) => Some(
            entry
                .resolve_version(Some(v))
                .map(|x| x.name.clone())
                .ok_or_else(|| {
                    EngineError::new("42704", format!("model {qualified} has no version \"{v}\""))
                })?,
        ),
        None => None,
    };
    let rows = entry
        .versions
        .iter()
        .filter(|v| like_matches(like_pattern, &v.name))
        .filter(|v| selected.as_ref().is_none_or(|s| *s == v.name))
        .map(|v| {
            let methods = serde_json::from_str::<serde_json::Value>(&v.signature_json)
                .ok()
                .and_then(|j| j.get("methods").cloned())
                .map(|m| m.to_string())
                .unwrap_or_default();
            vec![
                Some(micros_to_text(v.created_micros)),
                Some(v.name.clone()),
                Some(serde_json::to_string(&v.aliases).unwrap_or_default()),
                Some((v.name == entry.default_version).to_string()),
                Some(methods),
                Some(v.signature_json.clone()),
                Some(v.size.to_string()),
            ]
        })
        .collect();
    Ok(text_rows(SHOW_VERSIONS_COLUMNS, rows))
}
