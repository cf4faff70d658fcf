//! psql against a real server: the meta-commands people use first (\l, \dn,
//! \dt, \d, \d+, \x) send psql's own catalog queries, so this checks that
//! Freshet's pg_catalog answers them.
//!
//! Skipped (with a message) only when psql is not installed; `.ci/run`
//! installs it and sets FRESHET_REQUIRE_CLIENTS=1, which turns a missing psql
//! into a failure.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_bounded, TestServer};

struct PsqlOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs psql with `args` (plus -X, ON_ERROR_STOP) against `server`, feeding
/// `stdin`. Bounded: psql is killed after 120 s.
fn psql(server: &TestServer, args: &[&str], stdin: Option<&str>) -> PsqlOutput {
    psql_at(&server.uri(), args, stdin)
}

/// [`psql`] against the server `connection` (a URI or libpq keywords) names.
fn psql_at(connection: &str, args: &[&str], stdin: Option<&str>) -> PsqlOutput {
    let mut cmd = Command::new("psql");
    cmd.arg("-X")
        .args(["-v", "ON_ERROR_STOP=1"])
        .args(["-d", connection])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "30")
        .env("PAGER", "cat")
        .env("PSQL_PAGER", "cat")
        .env("COLUMNS", "200")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn psql");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).expect("write psql stdin");
    }
    // Read output on threads so a chatty psql cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    PsqlOutput {
        code: status.and_then(|s| s.code()),
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// Runs one psql command (`-c`) and asserts it succeeded; returns stdout.
#[track_caller]
fn psql_ok(server: &TestServer, command: &str) -> String {
    psql_ok_at(&server.uri(), command)
}

/// [`psql_ok`] against the server `connection` names.
#[track_caller]
fn psql_ok_at(connection: &str, command: &str) -> String {
    let out = psql_at(connection, &["-c", command], None);
    assert_eq!(
        out.code,
        Some(0),
        "psql -c '{command}' failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

#[track_caller]
fn assert_contains_all(output: &str, what: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            output.contains(needle),
            "{what}: expected {needle:?} in the output:\n{output}"
        );
    }
}

const SETUP: &str = "
CREATE SCHEMA app;
CREATE TABLE logins (id bigint NOT NULL, user_id bigint, location text DEFAULT 'unknown', event_time timestamp);
CREATE TABLE users (id bigint NOT NULL, name varchar(40), active boolean);
CREATE TABLE app.settings (key text NOT NULL, value json);
CREATE VIEW active_users AS SELECT id, name FROM users WHERE active;
INSERT INTO users VALUES (1, 'ann', true), (2, 'bo', false);
INSERT INTO logins (id, user_id, event_time) VALUES (1, 1, '2024-01-01 10:00:00');
";

fn setup() -> Option<TestServer> {
    if !common::psql::psql_available() {
        return None;
    }
    let server = TestServer::start();
    let out = psql(&server, &["-q"], Some(SETUP));
    assert_eq!(
        out.code,
        Some(0),
        "setup script failed:\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    Some(server)
}

#[test]
fn psql_list_databases() {
    let Some(server) = setup() else { return };
    let out = psql_ok(&server, "\\l");
    assert_contains_all(&out, "\\l", &["List of databases", "Name", "freshet"]);
}

#[test]
fn psql_list_schemas() {
    let Some(server) = setup() else { return };
    let out = psql_ok(&server, "\\dn");
    assert_contains_all(&out, "\\dn", &["List of schemas", "public", "app"]);
}

#[test]
fn psql_list_tables() {
    let Some(server) = setup() else { return };
    let out = psql_ok(&server, "\\dt");
    assert_contains_all(
        &out,
        "\\dt",
        &["List of relations", "logins", "users", "table"],
    );
    assert!(
        !out.contains("active_users"),
        "\\dt lists only tables, not views:\n{out}"
    );
    let out = psql_ok(&server, "\\dt app.*");
    assert_contains_all(&out, "\\dt app.*", &["settings"]);
    let out = psql_ok(&server, "\\dv");
    assert_contains_all(&out, "\\dv", &["active_users", "view"]);
}

/// `\dt+` shows each table's size on disk (the rows are in the WAL until a
/// checkpoint, and count), not a constant, and a dynamic table's COMMENT as
/// its description; `\l+`, `\dn+` and `\dv+` answer too.
#[test]
fn psql_verbose_lists_show_sizes_and_comments() {
    let Some(server) = setup() else { return };
    psql_ok(
        &server,
        "CREATE DYNAMIC TABLE user_count TARGET_LAG = '1 day' COMMENT = 'users counted' \
         AS SELECT count(*) AS n FROM users",
    );
    let out = psql_ok(&server, "\\dt+");
    assert_contains_all(
        &out,
        "\\dt+",
        &[
            "List of relations",
            "Size",
            "users",
            "user_count",
            "users counted",
        ],
    );
    let users = out
        .lines()
        .find(|l| l.contains("| users "))
        .unwrap_or_else(|| panic!("no users row:\n{out}"));
    assert!(
        users.contains("bytes") && !users.contains("| 0 bytes"),
        "users has rows, so a size above zero:\n{out}"
    );
    let out = psql_ok(&server, "\\l+");
    assert_contains_all(&out, "\\l+", &["List of databases", "Size", "freshet"]);
    let out = psql_ok(&server, "\\dn+");
    assert_contains_all(&out, "\\dn+", &["List of schemas", "public", "app"]);
    let out = psql_ok(&server, "\\dv+");
    assert_contains_all(&out, "\\dv+", &["List of relations", "active_users"]);
}

/// Each database has its own catalog, as in Postgres: `\dn` and `\dt` list
/// the current database's schemas and tables only, while `\l` lists all.
#[test]
fn psql_lists_only_the_current_database() {
    let Some(server) = setup() else { return };
    let script = "CREATE DATABASE elsewhere;\n\\c elsewhere\nCREATE SCHEMA remote;\nCREATE TABLE remote_only (a int);\n";
    let out = psql(&server, &["-q"], Some(script));
    assert_eq!(out.code, Some(0), "setup failed:\n{}", out.stderr);
    let schemas = psql_ok(&server, "\\dn");
    assert_eq!(
        schemas.matches("public").count(),
        1,
        "\\dn lists one public schema:\n{schemas}"
    );
    assert!(
        !schemas.contains("remote"),
        "\\dn lists another database's schema:\n{schemas}"
    );
    let tables = psql_ok(&server, "\\dt");
    assert_contains_all(&tables, "\\dt", &["logins"]);
    assert!(
        !tables.contains("remote_only"),
        "\\dt lists another database's table:\n{tables}"
    );
    let databases = psql_ok(&server, "\\l");
    assert_contains_all(&databases, "\\l", &["freshet", "elsewhere"]);
}

#[test]
fn psql_describe_table() {
    let Some(server) = setup() else { return };
    let out = psql_ok(&server, "\\d logins");
    assert_contains_all(
        &out,
        "\\d logins",
        &[
            "Table \"public.logins\"",
            "id",
            "user_id",
            "location",
            "event_time",
            "bigint",
            "text",
            "timestamp without time zone",
            "not null",
            // psql reads a column's DEFAULT through a correlated subquery
            // in the select list.
            "'unknown'::text",
        ],
    );
    let out = psql_ok(&server, "\\d users");
    assert_contains_all(
        &out,
        "\\d users",
        &["name", "character varying(40)", "boolean"],
    );
    let out = psql_ok(&server, "\\d app.settings");
    assert_contains_all(&out, "\\d app.settings", &["key", "value", "json"]);
}

/// `\d` lists a table's keys and indexes in its footer. Where
/// SLT_REFERENCE_URL names a PostgreSQL, the whole output must be what
/// PostgreSQL's is for the same table.
#[test]
fn psql_describe_shows_keys_and_indexes() {
    let Some(server) = setup() else { return };
    const KEYS: &str = "
CREATE TABLE psql_keys (id int PRIMARY KEY, email text UNIQUE, a int NOT NULL, b int);
CREATE UNIQUE INDEX psql_keys_ab ON psql_keys (a, b);
";
    let out = psql(&server, &["-q"], Some(KEYS));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let ours = psql_ok(&server, "\\d psql_keys");
    assert_contains_all(
        &ours,
        "\\d psql_keys",
        &[
            "Indexes:",
            "\"psql_keys_pkey\" PRIMARY KEY, btree (id)",
            "\"psql_keys_ab\" UNIQUE, btree (a, b)",
            "\"psql_keys_email_key\" UNIQUE CONSTRAINT, btree (email)",
        ],
    );
    // an index is a relation of its own, listed by \di
    let listed = psql_ok(&server, "\\di");
    assert_contains_all(
        &listed,
        "\\di",
        &["psql_keys_ab", "psql_keys_pkey", "index"],
    );
    if let Ok(reference) = std::env::var("SLT_REFERENCE_URL") {
        let setup = format!("DROP TABLE IF EXISTS psql_keys;{KEYS}");
        let out = psql_at(&reference, &["-q"], Some(&setup));
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        let theirs = psql_ok_at(&reference, "\\d psql_keys");
        psql_ok_at(&reference, "DROP TABLE psql_keys");
        assert_eq!(ours, theirs, "\\d psql_keys differs from PostgreSQL's");
    }
}

#[test]
fn psql_describe_table_verbose() {
    let Some(server) = setup() else { return };
    let out = psql_ok(&server, "\\d+ logins");
    assert_contains_all(
        &out,
        "\\d+ logins",
        &[
            "Table \"public.logins\"",
            "id",
            "user_id",
            "location",
            "event_time",
            "bigint",
            "Storage",
        ],
    );
    let out = psql_ok(&server, "\\d+ active_users");
    assert_contains_all(&out, "\\d+ active_users", &["active_users", "id", "name"]);
}

#[test]
fn psql_expanded_output_and_queries() {
    let Some(server) = setup() else { return };
    let script = "\\x on\nSELECT id, name, active FROM users WHERE id = 1;\n\\x off\nSELECT count(*) AS n FROM logins;\n";
    let out = psql(&server, &[], Some(script));
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_contains_all(
        &out.stdout,
        "\\x on",
        &[
            "Expanded display is on.",
            "-[ RECORD 1 ]",
            "name",
            "ann",
            "active",
        ],
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("name") && l.contains("| ann")),
        "expanded output shows one `column | value` line per column:\n{}",
        out.stdout
    );
    assert_contains_all(
        &out.stdout,
        "\\x off",
        &["Expanded display is off.", " n ", "(1 row)"],
    );

    // Unaligned, tuples-only output of a query, as scripts use it.
    let out = psql(
        &server,
        &["-A", "-t", "-c", "SELECT name FROM users ORDER BY id"],
        None,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ann\nbo\n");

    // \copy goes through COPY FROM STDIN / TO STDOUT.
    let dir = server.scratch_dir();
    let file = dir.join("users.csv");
    std::fs::write(&file, "3,cy,true\n4,di,false\n").unwrap();
    let out = psql_ok(
        &server,
        &format!("\\copy users FROM '{}' WITH (FORMAT csv)", file.display()),
    );
    assert_contains_all(&out, "\\copy from", &["COPY 2"]);
    let out = psql(
        &server,
        &["-A", "-t", "-c", "SELECT count(*) FROM users WHERE active"],
        None,
    );
    assert_eq!(out.stdout.trim(), "2", "{}", out.stderr);
}

#[test]
fn psql_reports_errors_and_stops() {
    let Some(server) = setup() else { return };
    let out = psql(
        &server,
        &[],
        Some("SELECT 1;\nSELECT * FROM missing_table;\nCREATE TABLE after_error (x int);\n"),
    );
    assert_eq!(
        out.code,
        Some(3),
        "ON_ERROR_STOP makes psql exit 3:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ERROR:") && out.stderr.contains("missing_table"),
        "stderr: {}",
        out.stderr
    );
    let out = psql(
        &server,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'after_error'",
        ],
        None,
    );
    assert_eq!(
        out.stdout.trim(),
        "0",
        "psql stopped before the next statement"
    );
}

/// `\dp` lists a table's grants as PostgreSQL does (checked against it when
/// SLT_REFERENCE_URL names one; its superuser's name is the only
/// difference).
#[test]
fn psql_dp_lists_grants() {
    let Some(server) = setup() else { return };
    const GRANTS: &str = "
CREATE USER psql_dp_reader PASSWORD 'pw';
CREATE TABLE psql_grants (id int, v text);
GRANT SELECT ON psql_grants TO psql_dp_reader;
GRANT INSERT, UPDATE ON psql_grants TO PUBLIC;
";
    let out = psql(&server, &["-q"], Some(GRANTS));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let dp = |connection: &str| {
        let out = psql_at(connection, &["-A", "-c", "\\dp psql_grants"], None);
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        out.stdout
    };
    let ours = dp(&server.uri());
    assert_contains_all(
        &ours,
        "\\dp psql_grants",
        &[
            "public|psql_grants|table|freshet=arwdDxt/freshet",
            "psql_dp_reader=r/freshet",
            "=aw/freshet",
        ],
    );
    if let Ok(reference) = std::env::var("SLT_REFERENCE_URL") {
        let setup = format!(
            "DROP TABLE IF EXISTS psql_grants; DROP USER IF EXISTS psql_dp_reader;{GRANTS}"
        );
        let out = psql_at(&reference, &["-q"], Some(&setup));
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        let theirs = dp(&reference);
        psql_ok_at(&reference, "DROP TABLE psql_grants");
        psql_ok_at(&reference, "DROP USER psql_dp_reader");
        let superuser = psql_ok_at(&reference, "SELECT current_user");
        let superuser = superuser
            .lines()
            .nth(2)
            .unwrap_or("postgres")
            .trim()
            .to_string();
        assert_eq!(
            ours,
            theirs.replace(&superuser, "freshet"),
            "\\dp psql_grants differs from PostgreSQL's"
        );
    }
}

/// `\du` lists the users, and `\dt` names each table's owner: the user who
/// created it. Checked against PostgreSQL too when SLT_REFERENCE_URL names
/// one (there the new user needs CREATE on `public`, which PostgreSQL 15
/// does not give by default).
#[test]
fn psql_lists_roles_and_owners() {
    let Some(server) = setup() else { return };
    const ROLE: &str = "CREATE USER psql_du_owner PASSWORD 'pw'; CREATE ROLE psql_du_group; \
                        GRANT psql_du_group TO psql_du_owner;";
    let out = psql(&server, &["-q"], Some(ROLE));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let as_owner = format!(
        "postgresql://psql_du_owner:pw@{}:{}/freshet?sslmode=disable",
        server.host(),
        server.port()
    );
    psql_ok_at(&as_owner, "CREATE TABLE psql_owned (id int)");
    let listing = |connection: &str, command: &str| {
        let out = psql_at(connection, &["-A", "-c", command], None);
        assert_eq!(out.code, Some(0), "{command}: {}{}", out.stdout, out.stderr);
        out.stdout
    };
    let line_of = |listing: &str, prefix: &str| -> String {
        listing
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{listing}"))
            .to_string()
    };
    let du = listing(&server.uri(), "\\du");
    assert_contains_all(
        &du,
        "\\du",
        &[
            "freshet|Superuser, Create role, Create DB|{}",
            "psql_du_owner||{psql_du_group}",
            "psql_du_group|Cannot login|{}",
        ],
    );
    assert!(!du.contains("|pg_"), "\\du lists predefined roles:\n{du}");
    let ours_owned = line_of(&listing(&server.uri(), "\\dt psql_owned"), "public|");
    assert_eq!(ours_owned, "public|psql_owned|table|psql_du_owner");
    let ours_logins = line_of(&listing(&server.uri(), "\\dt logins"), "public|");
    assert_eq!(ours_logins, "public|logins|table|freshet");
    if let Ok(reference) = std::env::var("SLT_REFERENCE_URL") {
        // A run that failed midway may have left the role with its grant.
        let setup = format!(
            "DROP TABLE IF EXISTS psql_owned; \
             DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'psql_du_owner') \
             THEN DROP OWNED BY psql_du_owner; DROP ROLE psql_du_owner; END IF; END $$; \
             DROP ROLE IF EXISTS psql_du_group; \
             {ROLE} GRANT CREATE ON SCHEMA public TO psql_du_owner;"
        );
        let out = psql_at(&reference, &["-q"], Some(&setup));
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        // The same database the superuser's connection landed in.
        let database = listing(&reference, "SELECT current_database()");
        let database = database.lines().nth(1).unwrap_or("postgres");
        let reference_owner =
            format!("{reference} user=psql_du_owner password=pw dbname={database}");
        psql_ok_at(&reference_owner, "CREATE TABLE psql_owned (id int)");
        let theirs_du = listing(&reference, "\\du");
        let theirs_owned = line_of(&listing(&reference, "\\dt psql_owned"), "public|");
        psql_ok_at(&reference, "DROP TABLE psql_owned");
        psql_ok_at(
            &reference,
            "REVOKE CREATE ON SCHEMA public FROM psql_du_owner",
        );
        psql_ok_at(&reference, "DROP USER psql_du_owner");
        psql_ok_at(&reference, "DROP ROLE psql_du_group");
        for role in ["psql_du_owner|", "psql_du_group|"] {
            assert_eq!(
                line_of(&du, role),
                line_of(&theirs_du, role),
                "\\du differs from PostgreSQL's for {role}"
            );
        }
        assert_eq!(ours_owned, theirs_owned, "\\dt differs from PostgreSQL's");
    }
}
