//! The read-only web console: its assets and the JSON API it reads.
//!
//! The page at `/` (HTML, CSS and JavaScript built into the binary) shows
//! the graph of tables, dynamic tables and models, one dynamic table's lag
//! over time with its refresh history, and the models with their versions.
//! Its figures come from `/api/…` endpoints, each of which opens an engine
//! session as the authenticated user and runs the statements a user would
//! run in `psql` (`SHOW DYNAMIC TABLES`, `information_schema.*`,
//! `SHOW MODELS`, `SHOW VERSIONS IN MODEL`, `DESCRIBE DYNAMIC TABLE`): the
//! console never computes a figure the SQL interface does not show, and sees
//! only what that user may see.
//!
//! Authentication follows the wire protocol's policy: a request without
//! credentials acts as the bootstrap superuser when that user has no
//! password and the peer is on loopback (trust); otherwise HTTP Basic
//! credentials are checked against the user's stored SCRAM-SHA-256 salted
//! password (a user without a password is trusted only from loopback).
//! Basic credentials are accepted only over HTTPS or from loopback, where
//! they cannot be read off the network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use freshet_engine::{Engine, QueryOutput, Session};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::{HttpError, Response};

const HTML: &str = include_str!("../console/index.html");
const CSS: &str = include_str!("../console/console.css");
const JS: &str = include_str!("../console/console.js");
const ICON: &str = include_str!("../console/favicon.svg");

/// Whether `path` is served by the console (and so needs authentication).
pub(crate) fn is_console_path(path: &str) -> bool {
    matches!(path, "/" | "/console.css" | "/console.js" | "/favicon.svg")
        || path.starts_with("/api/")
}

/// What a console request carries besides its path.
#[derive(Debug)]
pub(crate) struct ConsoleRequest<'a> {
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
    pub peer: IpAddr,
    pub tls: bool,
    /// Whether the request carries [`CONSOLE_HEADER`]: the page's own
    /// script sets it; a form or link on another site cannot.
    pub console_header: bool,
}

/// The one API path that changes something: cancel a session's statement.
pub(crate) const CANCEL_PATH: &str = "/api/cancel";

/// The header the console's script sends with a cancel. A cross-site form
/// cannot set it, and a cross-site script would need a CORS preflight the
/// server never grants, so a cached password cannot be used against it.
pub(crate) const CONSOLE_HEADER: &str = "x-freshet-console";

/// The response to a GET of a console path (HEAD is answered the same way,
/// without the body, by the caller).
pub(crate) async fn respond(engine: &Arc<Engine>, request: &ConsoleRequest<'_>) -> Response {
    let user = match authenticate(engine, request) {
        Ok(user) => user,
        Err(response) => return response,
    };
    match request.path {
        "/" => Response::with_type(200, "text/html; charset=utf-8", HTML),
        "/console.css" => Response::with_type(200, "text/css; charset=utf-8", CSS),
        "/console.js" => Response::with_type(200, "text/javascript; charset=utf-8", JS),
        "/favicon.svg" => Response::with_type(200, "image/svg+xml", ICON),
        CANCEL_PATH if !request.console_header => Response::json(
            403,
            &json!({"error": format!("a cancel must carry the {CONSOLE_HEADER} header")}),
        ),
        path => {
            let result = match parse_query(request.query) {
                Ok(params) => api(engine.clone(), user, path.to_owned(), params).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(value) => Response::json(200, &value),
                Err(HttpError::NotFound) => Response::json(404, &json!({"error": "not found"})),
                Err(HttpError::Busy) => Response::json(
                    503,
                    &json!({"error": "too many console requests at once; try again"}),
                ),
                Err(e @ HttpError::BadRequest(_)) => {
                    Response::json(400, &json!({"error": e.to_string()}))
                }
                Err(HttpError::Query { sqlstate, message }) => {
                    Response::json(500, &json!({"error": message, "sqlstate": sqlstate}))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "console API request failed");
                    Response::json(500, &json!({"error": e.to_string()}))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Authentication

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn unauthorized(message: &str) -> Response {
    let mut response = Response::text(401, message);
    response.www_authenticate = true;
    response
}

/// The user a request acts as, or the response refusing it.
fn authenticate(engine: &Engine, request: &ConsoleRequest<'_>) -> Result<String, Response> {
    let loopback = is_loopback(request.peer);
    let Some(authorization) = request.authorization else {
        let superuser = engine.superuser();
        if loopback && engine.scram_secret(superuser).is_none() {
            return Ok(superuser.to_owned());
        }
        return Err(unauthorized("authentication required\n"));
    };
    if !request.tls && !loopback {
        // The password would cross the network in clear text.
        return Err(Response::text(
            403,
            "password authentication needs HTTPS (start the server with --tls-cert) \
             or a loopback connection\n",
        ));
    }
    let (user, password) =
        parse_basic(authorization).ok_or_else(|| unauthorized("malformed Basic credentials\n"))?;
    match engine.scram_secret(&user) {
        Some(secret) => {
            let iterations = u32::try_from(secret.iterations)
                .ok()
                .and_then(std::num::NonZeroU32::new);
            let verified = iterations.is_some_and(|iterations| {
                // Derives SaltedPassword = Hi(password, salt, i) and compares it
                // with the stored one in constant time: what a SCRAM proof
                // checks, given the password itself.
                ring::pbkdf2::verify(
                    ring::pbkdf2::PBKDF2_HMAC_SHA256,
                    iterations,
                    &secret.salt,
                    password.as_bytes(),
                    &secret.salted_password,
                )
                .is_ok()
            });
            if verified {
                Ok(user)
            } else {
                tracing::info!(%user, peer = %request.peer, "console: password authentication failed");
                Err(unauthorized("password authentication failed\n"))
            }
        }
        // A user without a password: trust, from loopback only, as on the wire.
        None if loopback && engine.user_exists(&user) => Ok(user),
        None => Err(unauthorized("password authentication failed\n")),
    }
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 with padding (RFC 4648 §4), as Basic credentials use.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - padding { 0 } else { value(*c)? };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(decoded.get(..3 - padding)?);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Query strings

fn parse_query(query: &str) -> Result<BTreeMap<String, String>, HttpError> {
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(percent_decode(key)?, percent_decode(value)?);
    }
    Ok(params)
}

fn percent_decode(text: &str) -> Result<String, HttpError> {
    let bad = || HttpError::BadRequest("malformed query string".to_owned());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

// ---------------------------------------------------------------------------
// The JSON API

/// How many console API requests may run at once; more get `503`.
const MAX_WORKERS: usize = 4;

static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_WORKERS`] slots, given back when dropped.
struct WorkerSlot;

impl WorkerSlot {
    fn take() -> Option<WorkerSlot> {
        WORKERS
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_WORKERS).then_some(n + 1)
            })
            .ok()
            .map(|_| WorkerSlot)
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        WORKERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one API request on a thread of its own (with the stack size the
/// engine's workers use), so a slow query never holds up `/healthz` on the
/// HTTP thread.
async fn api(
    engine: Arc<Engine>,
    user: String,
    path: String,
    params: BTreeMap<String, String>,
) -> Result<Value, HttpError> {
    let Some(slot) = WorkerSlot::take() else {
        return Err(HttpError::Busy);
    };
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("freshet-console".to_owned())
        .stack_size(freshet_engine::WORKER_STACK_SIZE)
        .spawn(move || {
            let _slot = slot;
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(route(&engine, &user, &path, &params)),
                Err(e) => Err(HttpError::Io(e)),
            };
            let _ = send.send(result);
        })?;
    receive
        .await
        .unwrap_or_else(|_| Err(HttpError::Internal("the console worker ended".to_owned())))
}

async fn route(
    engine: &Arc<Engine>,
    user: &str,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Result<Value, HttpError> {
    match path {
        "/api/whoami" => Ok(json!({ "user": user })),
        "/api/graph" => graph(engine, user).await,
        "/api/dynamic-table" => {
            let param = |key: &str| {
                params.get(key).ok_or_else(|| {
                    HttpError::BadRequest(format!("missing query parameter \"{key}\""))
                })
            };
            dynamic_table(
                engine,
                user,
                param("database")?,
                param("schema")?,
                param("name")?,
            )
            .await
        }
        "/api/models" => models(engine, user).await,
        "/api/sessions" => sessions(engine, user).await,
        CANCEL_PATH => {
            let pid = params
                .get("pid")
                .and_then(|p| p.parse::<i32>().ok())
                .ok_or_else(|| {
                    HttpError::BadRequest("query parameter \"pid\" must be an integer".to_owned())
                })?;
            let mut session = engine.new_session(user, None)?;
            let rows = query(
                &mut session,
                &format!("SELECT pg_cancel_backend({pid}) AS cancelled"),
            )
            .await?
            .objects();
            let cancelled = rows
                .first()
                .and_then(|r| r.get("cancelled"))
                .cloned()
                .unwrap_or(Value::Bool(false));
            Ok(json!({ "pid": pid, "cancelled": cancelled }))
        }
        _ => Err(HttpError::NotFound),
    }
}

/// A statement's result: column names and rows of JSON values.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn objects(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

/// Runs one statement in `session` and collects its rows.
async fn query(session: &mut Session, sql: &str) -> Result<Rows, HttpError> {
    let mut outputs = session.execute_simple(sql).await;
    let output = outputs
        .pop()
        .ok_or_else(|| HttpError::Internal(format!("no result for {sql}")))?;
    let output = output.map_err(|e| HttpError::Query {
        sqlstate: e.sqlstate().to_owned(),
        message: e.to_string(),
    })?;
    let QueryOutput::Rows {
        schema, mut stream, ..
    } = output
    else {
        return Err(HttpError::Internal(format!("{sql} returned no rows")));
    };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    let options = FormatOptions::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| HttpError::Query {
            sqlstate: "XX000".to_owned(),
            message: e.to_string(),
        })?;
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HttpError::Internal(e.to_string()))?;
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(formatters.len());
            for (column, formatter) in batch.columns().iter().zip(&formatters) {
                values.push(if column.is_null(row) {
                    Value::Null
                } else {
                    to_json(column.data_type(), formatter.value(row).to_string())
                });
            }
            rows.push(values);
        }
    }
    Ok(Rows { columns, rows })
}

/// A value as JSON: numbers and booleans as such, everything else as the
/// text Arrow displays (timestamps in ISO 8601).
fn to_json(data_type: &DataType, text: String) -> Value {
    if data_type.is_integer() {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return Value::from(n);
        }
    }
    if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    if *data_type == DataType::Boolean {
        return Value::Bool(text == "true");
    }
    Value::String(text)
}

/// `"a""b"` for `a"b`.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quoted_name(database: &str, schema: &str, name: &str) -> String {
    format!(
        "{}.{}.{}",
        quote_ident(database),
        quote_ident(schema),
        quote_ident(name)
    )
}

/// `database.schema.name` as the engine writes a qualified name (in
/// `dynamic_table_graph_history.inputs`, `DESCRIBE DYNAMIC TABLE`).
fn qualified(database: &str, schema: &str, name: &str) -> String {
    format!("{database}.{schema}.{name}")
}

fn text(row: &Map<String, Value>, key: &str) -> String {
    match row.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(row: &Map<String, Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}

/// A text column holding JSON (`inputs`, `aliases`, `statistics`…) as JSON.
fn parse_json_column(row: &mut Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = row.get(key) {
        if let Ok(parsed) = serde_json::from_str::<Value>(s) {
            row.insert(key.to_owned(), parsed);
        }
    }
}

async fn databases(engine: &Arc<Engine>, user: &str) -> Result<Vec<String>, HttpError> {
    let mut session = engine.new_session(user, None)?;
    let rows = query(&mut session, "SHOW DATABASES").await?;
    Ok(rows.objects().iter().map(|r| text(r, "name")).collect())
}

/// How a dynamic table's lag compares with its target: `ok` (at most 80 %
/// of the target), `near` (up to the target), `behind` (past it),
/// `suspended`, or `unknown` (never refreshed, or no target).
fn lag_status(scheduling_state: &str, lag: Option<f64>, target: Option<f64>) -> &'static str {
    if scheduling_state.starts_with("SUSPENDED") {
        return "suspended";
    }
    match (lag, target) {
        (Some(lag), Some(target)) if lag <= 0.8 * target => "ok",
        (Some(lag), Some(target)) if lag <= target => "near",
        (Some(_), Some(_)) => "behind",
        _ => "unknown",
    }
}

/// `/api/graph`: every database's base tables, dynamic tables and models,
/// and an edge from each table or model a dynamic table reads to it.
async fn graph(engine: &Arc<Engine>, user: &str) -> Result<Value, HttpError> {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for database in databases(engine, user).await? {
        match graph_of(engine, user, &database).await {
            Ok((n, e)) => {
                nodes.extend(n);
                edges.extend(e);
            }
            Err(e) if skippable(&e) => {
                tracing::debug!(%database, error = %e, "console: database left out of the graph");
            }
            Err(e) => return Err(e),
        }
    }
    // A table or model this user cannot list but a listed dynamic table
    // reads still gets a node, so no edge dangles.
    let known: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut missing = BTreeSet::new();
    for edge in &edges {
        if let Some(from) = edge.get("from").and_then(Value::as_str) {
            if !known.contains(from) {
                missing.insert(from.to_owned());
            }
        }
    }
    for id in missing {
        let kind = if id.starts_with("model:") {
            "model"
        } else {
            "table"
        };
        let name = id.strip_prefix("model:").unwrap_or(&id).to_owned();
        nodes.push(json!({"id": id, "kind": kind, "name": name, "unlisted": true}));
    }
    Ok(json!({ "nodes": nodes, "edges": edges }))
}

/// Whether a failure only concerns one database, which the console then
/// leaves out: dropped meanwhile (3D000) or not readable by this user (42501).
fn skippable(error: &HttpError) -> bool {
    matches!(error, HttpError::Query { sqlstate, .. } if sqlstate == "3D000" || sqlstate == "42501")
}

/// One database's nodes and edges.
async fn graph_of(
    engine: &Arc<Engine>,
    user: &str,
    database: &str,
) -> Result<(Vec<Value>, Vec<Value>), HttpError> {
    let database = database.to_owned();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    {
        let mut session = engine.new_session(user, Some(&database))?;
        let dynamic = query(&mut session, "SHOW DYNAMIC TABLES").await?.objects();
        let graph = query(
            &mut session,
            "SELECT qualified_name, inputs, effective_target_lag_sec \
             FROM information_schema.dynamic_table_graph_history WHERE valid_to IS NULL",
        )
        .await?
        .objects();
        let mut dynamic_ids = BTreeSet::new();
        for table in &dynamic {
            let (schema, name) = (text(table, "schema_name"), text(table, "name"));
            let id = qualified(&database, &schema, &name);
            dynamic_ids.insert(id.clone());
            let graph_row = graph.iter().find(|g| text(g, "qualified_name") == id);
            let target = graph_row.and_then(|g| number(g, "effective_target_lag_sec"));
            let lag = number(table, "lag_seconds");
            let state = text(table, "scheduling_state");
            nodes.push(json!({
                "id": id,
                "kind": "dynamic_table",
                "database": database,
                "schema": schema,
                "name": name,
                "target_lag": table.get("target_lag"),
                "effective_target_lag_seconds": target,
                "lag_seconds": lag,
                "max_lag_seconds_last_hour": table.get("max_lag_seconds_last_hour"),
                "scheduling_state": state,
                "refresh_mode": table.get("refresh_mode"),
                "data_timestamp": table.get("data_timestamp"),
                "rows": table.get("rows"),
                "lag_status": lag_status(&state, lag, target),
            }));
            if let Some(inputs) = graph_row
                .and_then(|g| g.get("inputs"))
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
            {
                for input in inputs {
                    if let Some(from) = input.get("name").and_then(Value::as_str) {
                        edges.push(json!({"from": from, "to": id, "kind": "table"}));
                    }
                }
            }
            let described = query(
                &mut session,
                &format!(
                    "DESCRIBE DYNAMIC TABLE {}",
                    quoted_name(&database, &schema, &name)
                ),
            )
            .await?;
            for row in described.objects() {
                if text(&row, "kind") == "MODEL" {
                    let model = text(&row, "name");
                    edges.push(json!({
                        "from": format!("model:{model}"),
                        "to": id,
                        "kind": "model",
                        "version": row.get("model_version"),
                    }));
                }
            }
        }
        let tables = query(
            &mut session,
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('information_schema', 'pg_catalog') \
             ORDER BY table_schema, table_name",
        )
        .await?;
        for table in tables.objects() {
            let (schema, name) = (text(&table, "table_schema"), text(&table, "table_name"));
            let id = qualified(&database, &schema, &name);
            if !dynamic_ids.contains(&id) {
                nodes.push(json!({
                    "id": id,
                    "kind": "table",
                    "database": database,
                    "schema": schema,
                    "name": name,
                }));
            }
        }
        for model in query(&mut session, "SHOW MODELS").await?.objects() {
            let (schema, name) = (text(&model, "schema_name"), text(&model, "name"));
            let id = format!("model:{}", qualified(&database, &schema, &name));
            nodes.push(json!({
                "id": id,
                "kind": "model",
                "database": database,
                "schema": schema,
                "name": name,
                "default_version": model.get("default_version_name"),
            }));
        }
    }
    Ok((nodes, edges))
}

/// `/api/dynamic-table?database=…&schema=…&name=…`: the table's
/// `SHOW DYNAMIC TABLES` row, its refresh history and its lag over time.
async fn dynamic_table(
    engine: &Arc<Engine>,
    user: &str,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Value, HttpError> {
    let mut session = engine.new_session(user, Some(database))?;
    let table = query(&mut session, "SHOW DYNAMIC TABLES")
        .await?
        .objects()
        .into_iter()
        .find(|t| text(t, "schema_name") == schema && text(t, "name") == name)
        .ok_or(HttpError::NotFound)?;
    let mine = |row: &Map<String, Value>| {
        text(row, "database_name") == database
            && text(row, "schema_name") == schema
            && text(row, "name") == name
    };
    // Newest first, as a monitoring view lists them; SCHEDULED and
    // EXECUTING rows have no start time yet or just one.
    let mut history: Vec<Map<String, Value>> = query(
        &mut session,
        "SELECT * FROM information_schema.dynamic_table_refresh_history \
         ORDER BY coalesce(refresh_start_time, completion_target) DESC",
    )
    .await?
    .objects()
    .into_iter()
    .filter(|r| mine(r))
    .collect();
    for row in &mut history {
        parse_json_column(row, "statistics");
    }
    // The lag is largest just before a refresh commits (the time since the
    // previous refresh's data timestamp) and smallest just after.
    let lags = query(
        &mut session,
        "SELECT database_name, schema_name, name, refresh_end_time, \
         extract(epoch FROM refresh_end_time - lag(data_timestamp) OVER \
           (PARTITION BY database_name, schema_name, name ORDER BY refresh_end_time)) \
           AS lag_before_seconds, \
         extract(epoch FROM refresh_end_time - data_timestamp) AS lag_after_seconds \
         FROM information_schema.dynamic_table_refresh_history \
         WHERE state = 'SUCCEEDED' ORDER BY refresh_end_time",
    )
    .await?;
    let mut points = Vec::new();
    for row in lags.objects().iter().filter(|r| mine(r)) {
        let time = row.get("refresh_end_time");
        if let Some(before) = number(row, "lag_before_seconds") {
            points.push(json!({"time": time, "lag_seconds": before}));
        }
        if let Some(after) = number(row, "lag_after_seconds") {
            points.push(json!({"time": time, "lag_seconds": after}));
        }
    }
    let now = query(&mut session, "SELECT now() AS now").await?.objects();
    let now = now.first().and_then(|r| r.get("now")).cloned();
    if let (Some(now), Some(lag)) = (now.clone(), number(&table, "lag_seconds")) {
        points.push(json!({"time": now, "lag_seconds": lag, "current": true}));
    }
    let graph = query(
        &mut session,
        "SELECT qualified_name, effective_target_lag_sec \
         FROM information_schema.dynamic_table_graph_history WHERE valid_to IS NULL",
    )
    .await?
    .objects();
    let id = qualified(database, schema, name);
    let target = graph
        .iter()
        .find(|g| text(g, "qualified_name") == id)
        .and_then(|g| number(g, "effective_target_lag_sec"));
    let state = text(&table, "scheduling_state");
    let status = lag_status(&state, number(&table, "lag_seconds"), target);
    Ok(json!({
        "id": id,
        "database": database,
        "schema": schema,
        "name": name,
        "table": table,
        "effective_target_lag_seconds": target,
        "lag_status": status,
        "now": now,
        "lag_points": points,
        "history": history,
    }))
}

/// `/api/models`: every database's models with their versions.
/// The sessions connected now (`pg_stat_activity`, as the user sees it).
async fn sessions(engine: &Arc<Engine>, user: &str) -> Result<Value, HttpError> {
    let mut session = engine.new_session(user, None)?;
    let superuser = engine.is_superuser(user);
    let sessions = query(
        &mut session,
        "SELECT pid, usename, datname, application_name, client_addr, backend_start, \
         xact_start, query_start, state_change, state, query \
         FROM pg_catalog.pg_stat_activity ORDER BY backend_start",
    )
    .await?
    .objects();
    Ok(json!({ "user": user, "superuser": superuser, "sessions": sessions }))
}

async fn models(engine: &Arc<Engine>, user: &str) -> Result<Value, HttpError> {
    let mut out = Vec::new();
    for database in databases(engine, user).await? {
        match models_of(engine, user, &database).await {
            Ok(models) => out.extend(models),
            Err(e) if skippable(&e) => {
                tracing::debug!(%database, error = %e, "console: database left out of the models");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(json!({ "models": out }))
}

/// One database's models, each with its versions.
async fn models_of(
    engine: &Arc<Engine>,
    user: &str,
    database: &str,
) -> Result<Vec<Value>, HttpError> {
    let database = database.to_owned();
    let mut out = Vec::new();
    {
        let mut session = engine.new_session(user, Some(&database))?;
        for mut model in query(&mut session, "SHOW MODELS").await?.objects() {
            let (schema, name) = (text(&model, "schema_name"), text(&model, "name"));
            parse_json_column(&mut model, "versions");
            parse_json_column(&mut model, "aliases");
            let mut versions = query(
                &mut session,
                &format!(
                    "SHOW VERSIONS IN MODEL {}",
                    quoted_name(&database, &schema, &name)
                ),
            )
            .await?
            .objects();
            for version in &mut versions {
                for key in ["aliases", "functions", "metadata"] {
                    parse_json_column(version, key);
                }
                // SHOW VERSIONS answers text; the page needs a boolean ("false"
                // would be truthy in JavaScript).
                let is_default = text(version, "is_default_version") == "true";
                version.insert("is_default_version".to_owned(), Value::from(is_default));
            }
            model.insert("database".to_owned(), Value::from(database.clone()));
            model.insert("version_details".to_owned(), Value::from(versions));
            out.push(Value::Object(model));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        // "freshet:s3cr:et" — the password may contain colons.
        assert_eq!(
            parse_basic("Basic ZnJlc2hldDpzM2NyOmV0"),
            Some(("freshet".to_owned(), "s3cr:et".to_owned()))
        );
        assert_eq!(
            parse_basic("basic YTpi"),
            Some(("a".to_owned(), "b".to_owned()))
        );
        assert_eq!(base64_decode("YQ=="), Some(b"a".to_vec()));
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode("YQ==YWJj"), None);
        assert_eq!(base64_decode("Y==="), None);
        assert_eq!(base64_decode("YW*j"), None);
        assert_eq!(parse_basic("Bearer YTpi"), None);
        assert_eq!(parse_basic("Basic bm9jb2xvbg=="), None);
    }

    #[test]
    fn query_strings_decode_names_needing_quotes() {
        let params = parse_query("name=a%22b%20%3Cc%3E+%C3%A9&schema=public&x").unwrap();
        assert_eq!(params["name"], "a\"b <c> é");
        assert_eq!(params["schema"], "public");
        assert_eq!(params["x"], "");
        assert!(parse_query("name=%zz").is_err());
        assert!(parse_query("name=%C3").is_err());
        assert!(parse_query("name=%4").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quoted_name("d", "s", "a\"b"), "\"d\".\"s\".\"a\"\"b\"");
    }

    #[test]
    fn lag_is_classified_against_the_target() {
        assert_eq!(lag_status("RUNNING", Some(1.0), Some(60.0)), "ok");
        assert_eq!(lag_status("RUNNING", Some(55.0), Some(60.0)), "near");
        assert_eq!(lag_status("RUNNING", Some(61.0), Some(60.0)), "behind");
        assert_eq!(lag_status("RUNNING", None, Some(60.0)), "unknown");
        assert_eq!(lag_status("SUSPENDED", Some(1.0), Some(60.0)), "suspended");
        assert_eq!(
            lag_status("SUSPENDED_DUE_TO_ERRORS", Some(1.0), Some(60.0)),
            "suspended"
        );
    }
}
