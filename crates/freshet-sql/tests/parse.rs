//! Public-API tests for `freshet-sql`.

use std::time::Duration;

use freshet_sql::sqlparser::ast::{Ident, ObjectName, Owner, Statement};
use freshet_sql::sqlparser::dialect::PostgreSqlDialect;
use freshet_sql::sqlparser::parser::Parser;
use freshet_sql::*;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn one(sql: &str) -> FreshetStatement {
    let mut statements = parse_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    assert_eq!(statements.len(), 1, "{sql}");
    statements.remove(0)
}

fn standard(sql: &str) -> Statement {
    match one(sql) {
        FreshetStatement::Standard(statement) => statement,
        other => panic!("expected a standard statement for {sql}, got {other:?}"),
    }
}

fn plain(sql: &str) -> String {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
    assert_eq!(statements.len(), 1);
    statements[0].to_string()
}

/// The Freshet SQL parses to the same tree as the plain SQL written out by hand.
fn assert_rewrites(freshet: &str, expected_plain: &str) {
    assert_eq!(
        standard(freshet).to_string(),
        plain(expected_plain),
        "{freshet}"
    );
}

fn err(sql: &str) -> SqlError {
    match parse_sql(sql) {
        Ok(statements) => panic!("expected an error for {sql}, got {statements:?}"),
        Err(e) => e,
    }
}

/// 1-based char position of the first occurrence of `needle` in `sql`.
fn pos_of(sql: &str, needle: &str) -> usize {
    let byte = sql
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {sql}"));
    sql[..byte].chars().count() + 1
}

fn name(parts: &[&str]) -> ObjectName {
    ObjectName::from(parts.iter().map(|p| Ident::new(*p)).collect::<Vec<_>>())
}

fn dynamic(sql: &str) -> CreateDynamicTable {
    match one(sql) {
        FreshetStatement::CreateDynamicTable(create) => create,
        other => panic!("expected CREATE DYNAMIC TABLE for {sql}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// CREATE DYNAMIC TABLE
// ---------------------------------------------------------------------------

const VERBATIM: &str = "CREATE OR REPLACE DYNAMIC TABLE logins_with_predictions
  WAREHOUSE = my_wh TARGET_LAG = '20 minutes' REFRESH_MODE = INCREMENTAL
  INITIALIZE = on_create COMMENT = 'Dynamic table with continuously updated model predictions'
AS
WITH my_model AS MODEL ml.registry.mymodel
SELECT l.login_id, l.user_id, l.location, l.event_time,
       my_model!predict(l.user_id, l.location) AS prediction_result
FROM logins_raw l;";

#[test]
fn verbatim_statement_parses() {
    let parsed = parse_sql_with_source(VERBATIM).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].source, VERBATIM.trim_end_matches(';'));
    assert_eq!(parsed[0].offset, 1);
    let FreshetStatement::CreateDynamicTable(create) = &parsed[0].statement else {
        panic!("{:?}", parsed[0].statement);
    };
    assert!(create.or_replace);
    assert!(!create.if_not_exists);
    assert_eq!(create.name, name(&["logins_with_predictions"]));
    assert!(create.columns.is_empty());
    assert_eq!(
        create.target_lag,
        TargetLag::Duration(Duration::from_secs(20 * 60))
    );
    assert_eq!(create.warehouse, Some(Ident::new("my_wh")));
    assert_eq!(create.refresh_mode, RefreshMode::Incremental);
    assert_eq!(create.initialize, Initialize::OnCreate);
    assert_eq!(
        create.comment.as_deref(),
        Some("Dynamic table with continuously updated model predictions")
    );
    assert_eq!(
        create.model_bindings,
        vec![ModelBinding {
            alias: Ident::new("my_model"),
            model: name(&["ml", "registry", "mymodel"]),
            version: None,
        }]
    );
    assert_eq!(parsed[0].model_bindings, create.model_bindings);
    assert!(create
        .query_text
        .starts_with("WITH my_model AS MODEL ml.registry.mymodel\nSELECT"));
    assert!(create.query_text.ends_with("FROM logins_raw l"));
    assert_eq!(
        create.query.to_string(),
        plain(
            "SELECT l.login_id, l.user_id, l.location, l.event_time, \
             freshet_model_call('ml.registry.mymodel', '', 'predict', l.user_id, l.location) AS prediction_result \
             FROM logins_raw l"
        )
    );
    // The stored text re-parses to the same query.
    let reparsed = parse_query_text(&create.query_text).unwrap();
    assert_eq!(reparsed.query, create.query);
    assert_eq!(reparsed.model_bindings, create.model_bindings);
    assert_eq!(
        collect_model_calls(&create.query),
        vec![ModelCall {
            model: "ml.registry.mymodel".into(),
            version: None,
            method: "predict".into()
        }]
    );
}

#[test]
fn clauses_in_any_order_are_equivalent() {
    let orders = [
        "TARGET_LAG = '1 hour' WAREHOUSE = wh REFRESH_MODE = FULL INITIALIZE = ON_SCHEDULE COMMENT = 'c'",
        "COMMENT = 'c' INITIALIZE = ON_SCHEDULE REFRESH_MODE = FULL WAREHOUSE = wh TARGET_LAG = '1 hour'",
        "REFRESH_MODE = FULL COMMENT = 'c' TARGET_LAG = '60 minutes' INITIALIZE = ON_SCHEDULE WAREHOUSE = wh",
        "warehouse=wh target_lag='3600 seconds' comment='c' initialize=on_schedule refresh_mode=full",
    ];
    let expected = dynamic(&format!("CREATE DYNAMIC TABLE d {} AS SELECT 1", orders[0]));
    assert_eq!(expected.refresh_mode, RefreshMode::Full);
    assert_eq!(expected.initialize, Initialize::OnSchedule);
    assert_eq!(expected.warehouse, Some(Ident::new("wh")));
    assert_eq!(expected.comment.as_deref(), Some("c"));
    for order in &orders[1..] {
        let got = dynamic(&format!("CREATE DYNAMIC TABLE d {order} AS SELECT 1"));
        assert_eq!(got, expected, "{order}");
    }
}

#[test]
fn keywords_and_values_are_case_insensitive() {
    let create = dynamic(
        "create or replace dynamic table S.T target_lag = '2 Hours' Refresh_Mode = incremental \
         initialize = On_Create as select a from b",
    );
    assert!(create.or_replace);
    assert_eq!(create.name, name(&["S", "T"]));
    assert_eq!(
        create.target_lag,
        TargetLag::Duration(Duration::from_secs(7200))
    );
    assert_eq!(create.refresh_mode, RefreshMode::Incremental);
    assert_eq!(create.initialize, Initialize::OnCreate);
    assert_eq!(create.query_text, "select a from b");
}

#[test]
fn defaults_downstream_columns_and_if_not_exists() {
    let create = dynamic(
        "CREATE DYNAMIC TABLE IF NOT EXISTS db.s.t (a COMMENT 'first', b, \"C\" COMMENT 'third') \
         TARGET_LAG = DOWNSTREAM AS SELECT x, y, z FROM src",
    );
    assert!(create.if_not_exists);
    assert_eq!(create.name, name(&["db", "s", "t"]));
    assert_eq!(create.target_lag, TargetLag::Downstream);
    assert_eq!(create.refresh_mode, RefreshMode::Auto);
    assert_eq!(create.initialize, Initialize::OnCreate);
    assert_eq!(create.warehouse, None);
    assert_eq!(create.comment, None);
    assert_eq!(
        create.columns,
        vec![
            (Ident::new("a"), Some("first".to_string())),
            (Ident::new("b"), None),
            (Ident::with_quote('"', "C"), Some("third".to_string())),
        ]
    );
    assert!(create.model_bindings.is_empty());
    // Lower-case downstream and the string form work too.
    let create = dynamic("create dynamic table t target_lag = downstream as select 1");
    assert_eq!(create.target_lag, TargetLag::Downstream);
    let create = dynamic("create dynamic table t target_lag = 'Downstream' as select 1");
    assert_eq!(create.target_lag, TargetLag::Downstream);
}

#[test]
fn target_lag_units() {
    let cases = [
        ("1 second", 1),
        ("30 seconds", 30),
        ("1 minute", 60),
        ("5 MINUTES", 300),
        ("1 hour", 3600),
        ("2 hours", 7200),
        ("1 day", 86400),
        ("3 Days", 3 * 86400),
        ("10 sec", 10),
        ("10 secs", 10),
        ("15 min", 900),
        ("15 mins", 900),
        ("15m", 900),
        ("2 hrs", 7200),
        ("1d", 86400),
        ("  7   s  ", 7),
    ];
    for (text, secs) in cases {
        assert_eq!(
            TargetLag::parse(text).unwrap(),
            TargetLag::Duration(Duration::from_secs(secs)),
            "{text}"
        );
    }
    for bad in [
        "",
        "minutes",
        "0 seconds",
        "0 days",
        "-1 minute",
        "1.5 hours",
        "5 weeks",
        "5",
        "99999999999999999999 days",
    ] {
        let e = TargetLag::parse(bad).unwrap_err();
        assert_eq!(e.sqlstate(), "22023", "{bad}");
    }
    // Display is canonical and re-parses.
    for (secs, text) in [
        (1, "1 second"),
        (90, "90 seconds"),
        (1200, "20 minutes"),
        (7200, "2 hours"),
        (86400, "1 day"),
    ] {
        let lag = TargetLag::Duration(Duration::from_secs(secs));
        assert_eq!(lag.to_string(), text);
        assert_eq!(TargetLag::parse(text).unwrap(), lag);
    }
    assert_eq!(TargetLag::Downstream.to_string(), "DOWNSTREAM");
    assert_eq!(RefreshMode::Incremental.to_string(), "INCREMENTAL");
    assert_eq!(Initialize::OnSchedule.to_string(), "ON_SCHEDULE");
}

#[test]
fn dynamic_table_errors_have_codes_and_positions() {
    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' TARGET_LAG = '2 minutes' AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "TARGET_LAG = '2")));
    assert!(e.message.contains("TARGET_LAG"), "{}", e.message);

    let sql = "CREATE DYNAMIC TABLE t WAREHOUSE = a COMMENT = 'x' WAREHOUSE = b TARGET_LAG = '1 minute' AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "WAREHOUSE = b")));

    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '0 seconds' AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "22023");
    assert_eq!(e.position, Some(pos_of(sql, "'0 seconds'")));

    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 fortnight' AS SELECT 1";
    assert_eq!(err(sql).sqlstate(), "22023");

    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' REFRESH_MODE = SOMETIMES AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "SOMETIMES")));
    assert!(e.message.contains("SOMETIMES"), "{}", e.message);

    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' INITIALIZE = LATER AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "LATER")));

    // Missing AS: at the end of the statement.
    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute'";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(sql.chars().count() + 1));
    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "SELECT")));

    // Missing TARGET_LAG: points at AS.
    let sql = "CREATE DYNAMIC TABLE t WAREHOUSE = w AS SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "AS SELECT")));
    assert!(e.message.contains("TARGET_LAG"));

    // OR REPLACE together with IF NOT EXISTS.
    let e =
        err("CREATE OR REPLACE DYNAMIC TABLE IF NOT EXISTS t TARGET_LAG = '1 minute' AS SELECT 1");
    assert_eq!(e.sqlstate(), "42601");

    // The defining query must be read-only.
    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' AS INSERT INTO x VALUES (1)";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "INSERT")));

    // A syntax error inside the query keeps its position in the whole string.
    let sql = "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' AS SELECT (a FROM t";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "FROM")));
}

#[test]
fn alter_drop_show_describe_dynamic_tables() {
    let cases = [
        (
            "ALTER DYNAMIC TABLE t SUSPEND",
            AlterDynamicTableAction::Suspend,
        ),
        (
            "alter dynamic table t resume",
            AlterDynamicTableAction::Resume,
        ),
        (
            "ALTER DYNAMIC TABLE t REFRESH",
            AlterDynamicTableAction::Refresh,
        ),
        (
            "ALTER DYNAMIC TABLE t SET TARGET_LAG = '5 minutes'",
            AlterDynamicTableAction::SetTargetLag(TargetLag::Duration(Duration::from_secs(300))),
        ),
        (
            "ALTER DYNAMIC TABLE t SET TARGET_LAG = DOWNSTREAM",
            AlterDynamicTableAction::SetTargetLag(TargetLag::Downstream),
        ),
        (
            "ALTER DYNAMIC TABLE t SET WAREHOUSE = big",
            AlterDynamicTableAction::SetWarehouse(Ident::new("big")),
        ),
        (
            "ALTER DYNAMIC TABLE t SET COMMENT = 'hello'",
            AlterDynamicTableAction::SetComment("hello".into()),
        ),
        (
            "ALTER DYNAMIC TABLE t RENAME TO s.u",
            AlterDynamicTableAction::RenameTo(name(&["s", "u"])),
        ),
    ];
    for (sql, action) in cases {
        assert_eq!(
            one(sql),
            FreshetStatement::AlterDynamicTable {
                name: name(&["t"]),
                action
            },
            "{sql}"
        );
    }
    let e = err("ALTER DYNAMIC TABLE t SET TARGET_LAG = '0 minutes'");
    assert_eq!(e.sqlstate(), "22023");
    let sql = "ALTER DYNAMIC TABLE t EXPLODE";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "EXPLODE")));

    assert_eq!(
        one("DROP DYNAMIC TABLE IF EXISTS a.b CASCADE"),
        FreshetStatement::DropDynamicTable {
            name: name(&["a", "b"]),
            if_exists: true,
            cascade: true
        }
    );
    assert_eq!(
        one("drop dynamic table t restrict"),
        FreshetStatement::DropDynamicTable {
            name: name(&["t"]),
            if_exists: false,
            cascade: false
        }
    );
    assert_eq!(
        one("SHOW DYNAMIC TABLES"),
        FreshetStatement::ShowDynamicTables {
            like: None,
            scope: ShowScope::Current
        }
    );
    assert_eq!(
        one("show terse dynamic tables like 'log%' in schema db.s"),
        FreshetStatement::ShowDynamicTables {
            like: Some("log%".into()),
            scope: ShowScope::Schema(name(&["db", "s"]))
        }
    );
    assert_eq!(
        one("SHOW DYNAMIC TABLES IN DATABASE db LIKE '%x'"),
        FreshetStatement::ShowDynamicTables {
            like: Some("%x".into()),
            scope: ShowScope::Database(Ident::new("db"))
        }
    );
    assert_eq!(
        one("SHOW DYNAMIC TABLES IN s"),
        FreshetStatement::ShowDynamicTables {
            like: None,
            scope: ShowScope::Schema(name(&["s"]))
        }
    );
    assert_eq!(err("SHOW DYNAMIC TABLES IN ACCOUNT").sqlstate(), "0A000");
    assert_eq!(
        one("DESCRIBE DYNAMIC TABLE db.s.t"),
        FreshetStatement::DescribeDynamicTable {
            name: name(&["db", "s", "t"])
        }
    );
    assert_eq!(
        one("desc dynamic table t"),
        FreshetStatement::DescribeDynamicTable { name: name(&["t"]) }
    );
}

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

fn create_model_source(sql: &str) -> ModelSource {
    match one(sql) {
        FreshetStatement::CreateModel { source, .. } => source,
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_model_forms() {
    assert_eq!(
        one("CREATE MODEL ml.registry.mymodel VERSION v1 FROM $1 COMMENT = 'fraud'"),
        FreshetStatement::CreateModel {
            or_replace: false,
            if_not_exists: false,
            name: name(&["ml", "registry", "mymodel"]),
            version: Some(Ident::new("v1")),
            source: ModelSource::Parameter(1),
            comment: Some("fraud".into()),
        }
    );
    assert_eq!(
        one("create or replace model m comment 'c' from '/models/m.onnx' version V2"),
        FreshetStatement::CreateModel {
            or_replace: true,
            if_not_exists: false,
            name: name(&["m"]),
            version: Some(Ident::new("V2")),
            source: ModelSource::Path("/models/m.onnx".into()),
            comment: Some("c".into()),
        }
    );
    assert_eq!(
        one("CREATE MODEL ml.registry.mymodel WITH VERSION v1 FROM '/models/login_risk.onnx'"),
        FreshetStatement::CreateModel {
            or_replace: false,
            if_not_exists: false,
            name: name(&["ml", "registry", "mymodel"]),
            version: Some(Ident::new("v1")),
            source: ModelSource::Path("/models/login_risk.onnx".into()),
            comment: None,
        }
    );
    assert_eq!(
        err("CREATE MODEL m WITH VERSION v1 VERSION v2 FROM $1").sqlstate(),
        "42601"
    );
    assert_eq!(err("CREATE MODEL m WITH v1 FROM $1").sqlstate(), "42601");
    match one("CREATE MODEL IF NOT EXISTS m FROM $12") {
        FreshetStatement::CreateModel {
            if_not_exists,
            source,
            version,
            comment,
            ..
        } => {
            assert!(if_not_exists);
            assert_eq!(source, ModelSource::Parameter(12));
            assert_eq!(version, None);
            assert_eq!(comment, None);
        }
        other => panic!("{other:?}"),
    }
    let bytes = ModelSource::Bytes(vec![0x0a, 0x0b, 0xff]);
    assert_eq!(
        create_model_source(r"CREATE MODEL m FROM '\x0a0bFF'::bytea"),
        bytes
    );
    assert_eq!(
        create_model_source(r"CREATE MODEL m FROM '\x0a0bFF'::BYTEA"),
        bytes
    );
    assert_eq!(
        create_model_source(r"CREATE MODEL m FROM E'\\x0a0bff'"),
        bytes
    );
    assert_eq!(
        create_model_source(r"CREATE MODEL m FROM E'\\x0a0bff'::bytea"),
        bytes
    );
    assert_eq!(create_model_source("CREATE MODEL m FROM X'0A0bff'"), bytes);
    assert_eq!(
        create_model_source(r"CREATE MODEL m FROM '\x'::bytea"),
        ModelSource::Bytes(vec![])
    );
}

#[test]
fn create_model_errors() {
    let sql = "CREATE MODEL m VERSION v1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(sql.len() + 1));
    let sql = r"CREATE MODEL m FROM '\x0g'::bytea";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "22P02");
    assert_eq!(e.position, Some(pos_of(sql, "'")));
    assert_eq!(err(r"CREATE MODEL m FROM 'abc'::bytea").sqlstate(), "0A000");
    assert_eq!(err(r"CREATE MODEL m FROM 'abc'::text").sqlstate(), "42601");
    assert_eq!(err("CREATE MODEL m FROM @stage/m.onnx").sqlstate(), "0A000");
    assert_eq!(err("CREATE MODEL m FROM $0").sqlstate(), "42601");
    assert_eq!(err("CREATE MODEL m FROM $1 FROM $2").sqlstate(), "42601");
    assert_eq!(err("CREATE MODEL m FROM 42").sqlstate(), "42601");
    assert_eq!(err("CREATE MODEL a.b.c.d FROM $1").sqlstate(), "42601");
}

#[test]
fn alter_drop_show_describe_models() {
    let cases = [
        (
            "ALTER MODEL m ADD VERSION v2 FROM $1",
            AlterModelAction::AddVersion {
                version: Ident::new("v2"),
                source: ModelSource::Parameter(1),
            },
        ),
        (
            "ALTER MODEL m ADD VERSION v3 FROM '/tmp/x.onnx'",
            AlterModelAction::AddVersion {
                version: Ident::new("v3"),
                source: ModelSource::Path("/tmp/x.onnx".into()),
            },
        ),
        (
            "ALTER MODEL m SET DEFAULT_VERSION = 'V2'",
            AlterModelAction::SetDefaultVersion("V2".into()),
        ),
        (
            "alter model m set default_version = V2",
            AlterModelAction::SetDefaultVersion("v2".into()),
        ),
        (
            "ALTER MODEL m VERSION v2 SET ALIAS = prod",
            AlterModelAction::SetVersionAlias {
                version: Ident::new("v2"),
                alias: Ident::new("prod"),
            },
        ),
        (
            "ALTER MODEL m VERSION v2 UNSET ALIAS",
            AlterModelAction::UnsetVersionAlias {
                version: Ident::new("v2"),
            },
        ),
        (
            "ALTER MODEL m DROP VERSION v1",
            AlterModelAction::DropVersion(Ident::new("v1")),
        ),
        (
            "ALTER MODEL m SET COMMENT = 'new'",
            AlterModelAction::SetComment("new".into()),
        ),
        (
            "ALTER MODEL m RENAME TO ml.other",
            AlterModelAction::RenameTo(name(&["ml", "other"])),
        ),
    ];
    for (sql, action) in cases {
        assert_eq!(
            one(sql),
            FreshetStatement::AlterModel {
                name: name(&["m"]),
                action
            },
            "{sql}"
        );
    }
    let sql = "ALTER MODEL m VERSION v2 SET NOTHING";
    assert_eq!(err(sql).position, Some(pos_of(sql, "NOTHING")));

    assert_eq!(
        one("DROP MODEL IF EXISTS ml.m"),
        FreshetStatement::DropModel {
            name: name(&["ml", "m"]),
            if_exists: true
        }
    );
    assert_eq!(
        one("SHOW MODELS LIKE 'fr%' IN SCHEMA ml.registry"),
        FreshetStatement::ShowModels {
            like: Some("fr%".into()),
            scope: ShowScope::Schema(name(&["ml", "registry"]))
        }
    );
    // GRANT and REVOKE on models; on anything else they are sqlparser's.
    let ident = |s: &str| Ident::new(s);
    assert_eq!(
        one("GRANT USAGE ON MODEL ml.m, n TO ROLE alice, public"),
        FreshetStatement::ModelPrivileges {
            grant: true,
            privileges: vec![ident("USAGE")],
            models: vec![name(&["ml", "m"]), name(&["n"])],
            grantees: vec![GranteeSpec::Role(ident("alice")), GranteeSpec::Public],
        }
    );
    assert_eq!(
        one("revoke all privileges on model m from bob cascade"),
        FreshetStatement::ModelPrivileges {
            grant: false,
            privileges: vec![ident("all")],
            models: vec![name(&["m"])],
            grantees: vec![GranteeSpec::Role(ident("bob"))],
        }
    );
    assert!(matches!(
        one("GRANT SELECT ON t TO bob"),
        FreshetStatement::Standard(Statement::Grant(_))
    ));
    assert!(matches!(
        one("REVOKE SELECT ON TABLE t FROM bob"),
        FreshetStatement::Standard(Statement::Revoke(_))
    ));
    assert_eq!(
        err("GRANT USAGE ON MODEL m TO bob WITH GRANT OPTION").sqlstate(),
        "0A000"
    );
    assert_eq!(err("GRANT USAGE ON MODEL m").sqlstate(), "42601");
    assert_eq!(
        one("SHOW GRANTS ON MODEL ml.m"),
        FreshetStatement::ShowModelGrants {
            model: name(&["ml", "m"])
        }
    );
    assert_eq!(
        one("show models"),
        FreshetStatement::ShowModels {
            like: None,
            scope: ShowScope::Current
        }
    );
    assert_eq!(
        one("SHOW VERSIONS IN MODEL ml.registry.mymodel"),
        FreshetStatement::ShowVersions {
            like: None,
            model: name(&["ml", "registry", "mymodel"])
        }
    );
    assert_eq!(
        one("SHOW VERSIONS LIKE 'v%' IN MODEL m"),
        FreshetStatement::ShowVersions {
            like: Some("v%".into()),
            model: name(&["m"])
        }
    );
    assert_eq!(err("SHOW VERSIONS").sqlstate(), "42601");
    assert_eq!(
        one("DESCRIBE MODEL m"),
        FreshetStatement::DescribeModel {
            name: name(&["m"]),
            version: None
        }
    );
    assert_eq!(
        one("DESC MODEL m VERSION prod"),
        FreshetStatement::DescribeModel {
            name: name(&["m"]),
            version: Some(Ident::new("prod"))
        }
    );
}

// ---------------------------------------------------------------------------
// databases, users, USE, SHOW
// ---------------------------------------------------------------------------

#[test]
fn databases_users_and_use() {
    assert_eq!(
        one("CREATE DATABASE IF NOT EXISTS analytics"),
        FreshetStatement::CreateDatabase {
            name: Ident::new("analytics"),
            if_not_exists: true
        }
    );
    assert_eq!(
        one("create database a"),
        FreshetStatement::CreateDatabase {
            name: Ident::new("a"),
            if_not_exists: false
        }
    );
    assert_eq!(
        err("CREATE DATABASE a WITH OWNER = bob").sqlstate(),
        "0A000"
    );
    assert_eq!(err("CREATE OR REPLACE DATABASE a").sqlstate(), "0A000");
    assert_eq!(
        one("DROP DATABASE IF EXISTS a CASCADE"),
        FreshetStatement::DropDatabase {
            name: Ident::new("a"),
            if_exists: true,
            cascade: true
        }
    );
    assert_eq!(
        one("DROP DATABASE a"),
        FreshetStatement::DropDatabase {
            name: Ident::new("a"),
            if_exists: false,
            cascade: false
        }
    );

    assert_eq!(
        one("CREATE USER alice WITH PASSWORD 'secret' SUPERUSER"),
        FreshetStatement::CreateUser {
            name: Ident::new("alice"),
            password: Some("secret".into()),
            superuser: true,
            login: true
        }
    );
    assert_eq!(
        one("create user bob password = 'pw'"),
        FreshetStatement::CreateUser {
            name: Ident::new("bob"),
            password: Some("pw".into()),
            superuser: false,
            login: true
        }
    );
    assert_eq!(
        one("CREATE USER carol LOGIN NOSUPERUSER PASSWORD NULL"),
        FreshetStatement::CreateUser {
            name: Ident::new("carol"),
            password: None,
            superuser: false,
            login: true
        }
    );
    assert_eq!(
        one("CREATE USER dave"),
        FreshetStatement::CreateUser {
            name: Ident::new("dave"),
            password: None,
            superuser: false,
            login: true
        }
    );
    // CREATE ROLE's role is a group unless LOGIN is given; a role may be
    // named like the option.
    assert_eq!(
        one("CREATE ROLE login"),
        FreshetStatement::CreateUser {
            name: Ident::new("login"),
            password: None,
            superuser: false,
            login: false
        }
    );
    assert_eq!(
        one("CREATE ROLE r LOGIN INHERIT"),
        FreshetStatement::CreateUser {
            name: Ident::new("r"),
            password: None,
            superuser: false,
            login: true
        }
    );
    assert_eq!(
        one("CREATE USER u NOLOGIN"),
        FreshetStatement::CreateUser {
            name: Ident::new("u"),
            password: None,
            superuser: false,
            login: false
        }
    );
    assert_eq!(err("CREATE ROLE r NOINHERIT").sqlstate(), "0A000");
    assert_eq!(err("CREATE ROLE r LOGIN NOLOGIN").sqlstate(), "42601");

    // GRANT or REVOKE without ON is role membership.
    assert_eq!(
        one("GRANT g, h TO alice, CURRENT_USER WITH ADMIN OPTION"),
        FreshetStatement::RoleMembership {
            grant: true,
            roles: vec![Ident::new("g"), Ident::new("h")],
            members: vec![Owner::Ident(Ident::new("alice")), Owner::CurrentUser],
            admin_option: true
        }
    );
    assert_eq!(
        one("REVOKE ADMIN OPTION FOR g FROM alice CASCADE"),
        FreshetStatement::RoleMembership {
            grant: false,
            roles: vec![Ident::new("g")],
            members: vec![Owner::Ident(Ident::new("alice"))],
            admin_option: true
        }
    );
    assert_eq!(
        one("REVOKE g FROM alice"),
        FreshetStatement::RoleMembership {
            grant: false,
            roles: vec![Ident::new("g")],
            members: vec![Owner::Ident(Ident::new("alice"))],
            admin_option: false
        }
    );
    assert_eq!(err("GRANT g TO alice GRANTED BY bob").sqlstate(), "0A000");
    assert_eq!(
        err("GRANT g TO alice WITH GRANT OPTION").sqlstate(),
        "42601"
    );

    let sql = "CREATE USER erin CREATEDB";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "0A000");
    assert_eq!(e.position, Some(pos_of(sql, "CREATEDB")));
    assert_eq!(
        err("CREATE USER x PASSWORD 'a' PASSWORD 'b'").sqlstate(),
        "42601"
    );

    assert_eq!(
        one("ALTER USER alice WITH PASSWORD 'new'"),
        FreshetStatement::AlterUser {
            name: Ident::new("alice"),
            password: Some("new".into()),
            superuser: None,
            login: None
        }
    );
    assert_eq!(
        one("ALTER USER alice SET PASSWORD = 'new' NOSUPERUSER"),
        FreshetStatement::AlterUser {
            name: Ident::new("alice"),
            password: Some("new".into()),
            superuser: Some(false),
            login: None
        }
    );
    let setting = |name: &str, change: RoleSettingChange| FreshetStatement::AlterUserSetting {
        name: Ident::new(name),
        change,
    };
    assert_eq!(
        one("ALTER ROLE alice SET statement_timeout = '5s'"),
        setting(
            "alice",
            RoleSettingChange::Set {
                parameter: "statement_timeout".into(),
                value: "5s".into()
            }
        )
    );
    assert_eq!(
        one("ALTER USER alice SET Search_Path TO app, public"),
        setting(
            "alice",
            RoleSettingChange::Set {
                parameter: "search_path".into(),
                value: "app, public".into()
            }
        )
    );
    assert_eq!(
        one("ALTER ROLE alice SET myapp.level = -3"),
        setting(
            "alice",
            RoleSettingChange::Set {
                parameter: "myapp.level".into(),
                value: "-3".into()
            }
        )
    );
    let reset = RoleSettingChange::Reset {
        parameter: "work_mem".into(),
    };
    assert_eq!(
        one("ALTER ROLE alice RESET work_mem"),
        setting("alice", reset.clone())
    );
    assert_eq!(
        one("ALTER ROLE alice SET work_mem TO DEFAULT"),
        setting("alice", reset)
    );
    assert_eq!(
        one("ALTER USER alice RESET ALL"),
        setting("alice", RoleSettingChange::ResetAll)
    );
    assert_eq!(
        one("ALTER ROLE alice PASSWORD 'x'"),
        FreshetStatement::AlterUser {
            name: Ident::new("alice"),
            password: Some("x".into()),
            superuser: None,
            login: None
        }
    );
    assert_eq!(err("ALTER ROLE alice SET work_mem").sqlstate(), "42601");
    assert_eq!(err("ALTER ROLE alice SET work_mem = ").sqlstate(), "42601");
    assert_eq!(
        err("ALTER ROLE alice IN DATABASE d SET work_mem = 1").sqlstate(),
        "0A000"
    );
    assert_eq!(
        err("ALTER ROLE alice SET work_mem = 1 IN DATABASE d").sqlstate(),
        "0A000"
    );
    assert_eq!(err("ALTER USER alice").sqlstate(), "42601");
    assert_eq!(err("ALTER USER alice RENAME TO bob").sqlstate(), "0A000");
    assert_eq!(
        one("DROP USER IF EXISTS alice"),
        FreshetStatement::DropUser {
            name: Ident::new("alice"),
            if_exists: true
        }
    );

    let use_ = |db: Option<&str>, schema: Option<&str>| FreshetStatement::Use {
        database: db.map(Ident::new),
        schema: schema.map(Ident::new),
    };
    assert_eq!(one("USE analytics"), use_(Some("analytics"), None));
    assert_eq!(
        one("use analytics.public"),
        use_(Some("analytics"), Some("public"))
    );
    assert_eq!(one("USE DATABASE analytics"), use_(Some("analytics"), None));
    assert_eq!(one("USE SCHEMA public"), use_(None, Some("public")));
    assert_eq!(one("USE SCHEMA db.s"), use_(Some("db"), Some("s")));
    assert_eq!(err("USE WAREHOUSE wh").sqlstate(), "0A000");
    assert_eq!(err("USE ROLE admin").sqlstate(), "0A000");
    assert_eq!(err("USE").sqlstate(), "42601");
    assert_eq!(err("USE DATABASE").position, Some(13));
    assert_eq!(err("USE SCHEMA").sqlstate(), "42601");
    // A database literally named like the keyword can still be quoted.
    assert_eq!(
        one("USE \"database\""),
        FreshetStatement::Use {
            database: Some(Ident::with_quote('"', "database")),
            schema: None,
        }
    );
    assert_eq!(err("USE a.b.c").sqlstate(), "42601");
}

#[test]
fn show_tables_schemas_databases() {
    assert_eq!(
        one("SHOW TABLES"),
        FreshetStatement::ShowTables {
            like: None,
            scope: ShowScope::Current
        }
    );
    assert_eq!(
        one("SHOW TERSE TABLES LIKE 't%' IN SCHEMA s"),
        FreshetStatement::ShowTables {
            like: Some("t%".into()),
            scope: ShowScope::Schema(name(&["s"]))
        }
    );
    assert_eq!(
        one("show tables from database db"),
        FreshetStatement::ShowTables {
            like: None,
            scope: ShowScope::Database(Ident::new("db"))
        }
    );
    assert_eq!(
        one("SHOW SCHEMAS"),
        FreshetStatement::ShowSchemas {
            like: None,
            database: None
        }
    );
    assert_eq!(
        one("SHOW SCHEMAS LIKE 'p%' IN DATABASE db"),
        FreshetStatement::ShowSchemas {
            like: Some("p%".into()),
            database: Some(Ident::new("db"))
        }
    );
    assert_eq!(
        one("SHOW SCHEMAS IN db LIKE 'p%'"),
        FreshetStatement::ShowSchemas {
            like: Some("p%".into()),
            database: Some(Ident::new("db"))
        }
    );
    assert_eq!(
        one("SHOW DATABASES LIKE 'a%'"),
        FreshetStatement::ShowDatabases {
            like: Some("a%".into())
        }
    );
    assert_eq!(
        one("show databases"),
        FreshetStatement::ShowDatabases { like: None }
    );
}

// ---------------------------------------------------------------------------
// model bindings and calls
// ---------------------------------------------------------------------------

#[test]
fn model_bindings_mix_with_ordinary_ctes() {
    let sql = "WITH a AS (SELECT 1 AS x), m AS MODEL reg.m VERSION v2, b (y) AS (SELECT 2) \
               SELECT m!predict(a.x, b.y) FROM a, b";
    assert_rewrites(
        sql,
        "WITH a AS (SELECT 1 AS x), b (y) AS (SELECT 2) \
         SELECT freshet_model_call('reg.m', 'v2', 'predict', a.x, b.y) FROM a, b",
    );
    let parsed = parse_sql_with_source(sql).unwrap();
    assert_eq!(
        parsed[0].model_bindings,
        vec![ModelBinding {
            alias: Ident::new("m"),
            model: name(&["reg", "m"]),
            version: Some(ModelVersionRef {
                name: Ident::new("v2")
            }),
        }]
    );

    // Binding first, last, alone, several; WITH RECURSIVE.
    assert_rewrites(
        "WITH m AS MODEL x, c AS (SELECT 1 AS v) SELECT m!f(v) FROM c",
        "WITH c AS (SELECT 1 AS v) SELECT freshet_model_call('x', '', 'f', v) FROM c",
    );
    assert_rewrites(
        "WITH c AS (SELECT 1 AS v), m AS MODEL x SELECT m!f(v) FROM c",
        "WITH c AS (SELECT 1 AS v) SELECT freshet_model_call('x', '', 'f', v) FROM c",
    );
    assert_rewrites(
        "WITH m1 AS MODEL a.b VERSION prod, m2 AS MODEL c SELECT m1!p(x) + m2!q(x) FROM t",
        "SELECT freshet_model_call('a.b', 'prod', 'p', x) + freshet_model_call('c', '', 'q', x) FROM t",
    );
    assert_rewrites(
        "WITH RECURSIVE m AS MODEL x, r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
         SELECT m!f(n) FROM r",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
         SELECT freshet_model_call('x', '', 'f', n) FROM r",
    );
    assert_rewrites(
        "WITH RECURSIVE m AS MODEL x SELECT m!f(1)",
        "SELECT freshet_model_call('x', '', 'f', 1)",
    );
    // A binding inside a subquery.
    assert_rewrites(
        "SELECT * FROM (WITH m AS MODEL x SELECT m!f(a) AS p FROM t) sub",
        "SELECT * FROM (SELECT freshet_model_call('x', '', 'f', a) AS p FROM t) sub",
    );
    // Quoted / upper-case names are normalized in the literal.
    assert_rewrites(
        "WITH \"M\" AS MODEL Ml.\"My Model\" VERSION \"V1\" SELECT \"M\"!Predict(x) FROM t",
        "SELECT freshet_model_call('ml.\"My Model\"', 'V1', 'predict', x) FROM t",
    );
    // Alias lookup is case-insensitive for unquoted names.
    assert_rewrites(
        "WITH My_Model AS MODEL x SELECT MY_MODEL!predict(a) FROM t",
        "SELECT freshet_model_call('x', '', 'predict', a) FROM t",
    );
}

#[test]
fn model_binding_errors() {
    let sql = "WITH m AS MODEL x, m AS MODEL y SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42712");
    assert_eq!(e.position, Some(pos_of(sql, "m AS MODEL y")));
    let sql = "WITH m AS MODEL 'x' SELECT 1";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, "'x'")));
    assert_eq!(err("WITH m AS MODEL a.b.c.d SELECT 1").sqlstate(), "42601");
    assert_eq!(
        err("WITH m AS MODEL a VERSION SELECT 1").sqlstate(),
        "42601"
    );
    assert_eq!(err("WITH m AS MODEL a VERSION").sqlstate(), "42601");
}

#[test]
fn model_calls_everywhere() {
    // WHERE, ORDER BY, nested, inside other expressions, no arguments.
    assert_rewrites(
        "WITH m AS MODEL x SELECT a FROM t WHERE m!score(a) > 0.5 ORDER BY m!score(a) DESC",
        "SELECT a FROM t WHERE freshet_model_call('x', '', 'score', a) > 0.5 \
         ORDER BY freshet_model_call('x', '', 'score', a) DESC",
    );
    assert_rewrites(
        "WITH m AS MODEL x SELECT 1 + m!f(m!g(a, b), coalesce(c, 0)) * 2 FROM t",
        "SELECT 1 + freshet_model_call('x', '', 'f', freshet_model_call('x', '', 'g', a, b), coalesce(c, 0)) * 2 FROM t",
    );
    assert_rewrites(
        "SELECT m ! predict ( ) FROM t",
        "SELECT freshet_model_call('m', '', 'predict') FROM t",
    );
    // Unbound 1-3 part names are model names with the default version.
    assert_rewrites(
        "SELECT ml.registry.mymodel!predict(a, b) FROM t",
        "SELECT freshet_model_call('ml.registry.mymodel', '', 'predict', a, b) FROM t",
    );
    assert_rewrites(
        "SELECT registry.mymodel!predict(a) FROM t",
        "SELECT freshet_model_call('registry.mymodel', '', 'predict', a) FROM t",
    );
    // MODEL(name [, version])!method(...)
    assert_rewrites(
        "SELECT MODEL(ml.registry.mymodel, v3)!predict(a) FROM t",
        "SELECT freshet_model_call('ml.registry.mymodel', 'v3', 'predict', a) FROM t",
    );
    assert_rewrites(
        "SELECT model(m, PROD)!predict(a), model(m)!predict(b) FROM t",
        "SELECT freshet_model_call('m', 'prod', 'predict', a), freshet_model_call('m', '', 'predict', b) FROM t",
    );
    // Works in CTAS, INSERT ... SELECT, views, UPDATE.
    assert_rewrites(
        "CREATE TABLE out AS WITH m AS MODEL x SELECT m!f(a) AS p FROM t",
        "CREATE TABLE out AS SELECT freshet_model_call('x', '', 'f', a) AS p FROM t",
    );
    assert_rewrites(
        "INSERT INTO out WITH m AS MODEL x SELECT m!f(a) FROM t",
        "INSERT INTO out SELECT freshet_model_call('x', '', 'f', a) FROM t",
    );
    assert_rewrites(
        "CREATE VIEW v AS WITH m AS MODEL x, c AS (SELECT 1 AS a) SELECT m!f(a) FROM c",
        "CREATE VIEW v AS WITH c AS (SELECT 1 AS a) SELECT freshet_model_call('x', '', 'f', a) FROM c",
    );
    assert_rewrites(
        "UPDATE t SET p = reg.m!f(a) WHERE id = 1",
        "UPDATE t SET p = freshet_model_call('reg.m', '', 'f', a) WHERE id = 1",
    );
    // A binding in one statement does not leak into the next.
    let statements = parse_sql("WITH m AS MODEL x SELECT m!f(1); SELECT m!f(1)").unwrap();
    assert_eq!(
        statements[1].to_string_lossy(),
        plain("SELECT freshet_model_call('m', '', 'f', 1)")
    );
    assert_eq!(err("SELECT a.b.c.d!f(1)").sqlstate(), "42601");
    // Postgres operators that contain '!' are unaffected.
    assert_rewrites(
        "SELECT a != b, a !~ 'x' FROM t",
        "SELECT a <> b, a !~ 'x' FROM t",
    );
}

#[test]
fn paths_become_get_field_calls() {
    assert_rewrites(
        "SELECT prediction_result:label FROM t",
        "SELECT freshet_get_field(prediction_result, 'label') FROM t",
    );
    assert_rewrites(
        "SELECT t.col:a.b FROM t",
        "SELECT freshet_get_field(freshet_get_field(t.col, 'a'), 'b') FROM t",
    );
    assert_rewrites(
        "SELECT x:Label::int, x : \"Quoted Key\" FROM t",
        "SELECT freshet_get_field(x, 'Label')::int, freshet_get_field(x, 'Quoted Key') FROM t",
    );
    assert_rewrites(
        "SELECT f(x):a, (a || b):c, arr[1]:d FROM t",
        "SELECT freshet_get_field(f(x), 'a'), freshet_get_field((a || b), 'c'), freshet_get_field(arr[1], 'd') FROM t",
    );
    assert_rewrites(
        "SELECT x:a[0].b FROM t",
        "SELECT freshet_get_field(freshet_get_field(x, 'a')[0], 'b') FROM t",
    );
    assert_rewrites(
        "SELECT a FROM t WHERE x:kind = 'fraud' AND y:n.m > 1",
        "SELECT a FROM t WHERE freshet_get_field(x, 'kind') = 'fraud' AND freshet_get_field(freshet_get_field(y, 'n'), 'm') > 1",
    );
    // Model call result followed by a path (the motivating use case).
    assert_rewrites(
        "WITH m AS MODEL reg.m SELECT m!predict(a):label AS l FROM t",
        "SELECT freshet_get_field(freshet_model_call('reg.m', '', 'predict', a), 'label') AS l FROM t",
    );
    // A colon after an operator or a reserved word is not a path: sqlparser
    // keeps `:name` as a placeholder there.
    assert_rewrites(
        "SELECT a FROM t WHERE id = :id LIMIT :n",
        "SELECT a FROM t WHERE id = :id LIMIT :n",
    );
    // Slices, casts, JSON operators and subscripts are untouched.
    assert_rewrites(
        "SELECT arr[1:2], arr[lo:hi], arr[:n], x::text, j->'a', j->>'b', j['label'] FROM t",
        "SELECT arr[1:2], arr[lo:hi], arr[:n], x::text, j->'a', j->>'b', j['label'] FROM t",
    );
}

#[test]
fn strings_identifiers_and_comments_are_untouched() {
    let sql =
        "SELECT 'a!b(c)', \"x:y\", 'm!predict(x)', 'WITH m AS MODEL x', E'p:q', $$ m!f(1) $$ \
               -- m!predict(y) and x:y\n /* WITH m AS MODEL z; x:y */ FROM t";
    assert_eq!(
        standard(sql).to_string(),
        plain("SELECT 'a!b(c)', \"x:y\", 'm!predict(x)', 'WITH m AS MODEL x', E'p:q', $$ m!f(1) $$ FROM t")
    );
    // A ';' inside strings, comments and quoted identifiers does not split.
    let parsed = parse_sql_with_source("SELECT ';' AS \"a;b\" /* ; */ -- ;\n; SELECT 2").unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].source, "SELECT ';' AS \"a;b\"");
    assert_eq!(parsed[1].source, "SELECT 2");
}

// ---------------------------------------------------------------------------
// statement splitting and pass-through
// ---------------------------------------------------------------------------

#[test]
fn multiple_statements_keep_source_and_offsets() {
    let sql = "  CREATE DATABASE d;\nUSE d;;\n SELECT 1 ;\n\nCREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' AS SELECT 2 -- tail\n";
    let parsed = parse_sql_with_source(sql).unwrap();
    assert_eq!(parsed.len(), 4);
    let sources: Vec<&str> = parsed.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "CREATE DATABASE d",
            "USE d",
            "SELECT 1",
            "CREATE DYNAMIC TABLE t TARGET_LAG = '1 minute' AS SELECT 2"
        ]
    );
    for p in &parsed {
        assert_eq!(p.offset, pos_of(sql, &p.source));
    }
    let FreshetStatement::CreateDynamicTable(create) = &parsed[3].statement else {
        panic!()
    };
    assert_eq!(create.query_text, "SELECT 2");
    assert!(parse_sql("").unwrap().is_empty());
    assert!(parse_sql(" ; ;; -- nothing\n").unwrap().is_empty());
}

#[test]
fn standard_statements_pass_through() {
    let sqls = [
        "SELECT a, b FROM t WHERE c = $1",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')",
        "UPDATE t SET a = a + 1 WHERE b IS NULL",
        "DELETE FROM t WHERE a IN (SELECT a FROM u)",
        "CREATE TABLE t (a INT PRIMARY KEY, b TEXT NOT NULL, c TIMESTAMP WITH TIME ZONE)",
        "CREATE TABLE t2 AS SELECT * FROM t",
        "CREATE VIEW v AS SELECT 1",
        "CREATE SCHEMA s",
        "DROP TABLE IF EXISTS t",
        "ALTER TABLE t ADD COLUMN d INT",
        "TRUNCATE t",
        "COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true)",
        "COPY t TO STDOUT",
        "SET search_path TO public",
        "SET TIME ZONE 'UTC'",
        "SHOW search_path",
        "SHOW ALL",
        "BEGIN",
        "START TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "PREPARE p AS SELECT $1",
        "EXECUTE p(1)",
        "DEALLOCATE p",
        "DESCRIBE t",
        "SELECT '2024-01-01'::date, INTERVAL '1 day', x::numeric(10, 2) FROM t",
        "SELECT * FROM t, LATERAL (SELECT 1) s ORDER BY 1 LIMIT 10 OFFSET 5",
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
    ];
    for sql in sqls {
        assert_eq!(standard(sql).to_string(), plain(sql), "{sql}");
    }
}

#[test]
fn syntax_errors_have_sqlstate_and_position() {
    let sql = "SELECT * FORM t";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.kind, SqlErrorKind::Syntax);
    assert_eq!(e.position, Some(pos_of(sql, "t")));
    assert!(!e.message.contains("Line:"), "{}", e.message);

    // Second statement on a later line: the position is in the whole string.
    let sql = "SELECT 1;\nSELECT 2;\n  SELEC 3";
    let e = err(sql);
    assert_eq!(e.position, Some(pos_of(sql, "SELEC 3")));

    // Multi-byte characters count as one position each.
    let sql = "SELECT 'héllo', 'ü', (a FROM t";
    assert_eq!(err(sql).position, Some(pos_of(sql, "FROM")));

    // End of input: one past the last character.
    let sql = "SELECT * FROM";
    assert_eq!(err(sql).position, Some(sql.len() + 1));

    // Tokenizer error (unterminated string).
    let sql = "SELECT 'abc";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert!(e.position.is_some());

    // Nesting beyond sqlparser's recursion limit is 54001, not a crash.
    let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    let e = err(&deep);
    assert_eq!(e.sqlstate(), "54001");
    assert_eq!(e.kind, SqlErrorKind::TooComplex);

    let sql = "CREATE DATABASE a.b";
    let e = err(sql);
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.position, Some(pos_of(sql, ".b")));

    // Trailing garbage after a complete statement.
    let sql = "SELECT 1 2";
    assert_eq!(err(sql).position, Some(pos_of(sql, "2")));
    let sql = "DROP MODEL m extra";
    assert_eq!(err(sql).position, Some(pos_of(sql, "extra")));
}

#[test]
fn parse_query_text_rules() {
    let parsed = parse_query_text("WITH m AS MODEL x SELECT m!f(a):b FROM t;").unwrap();
    assert_eq!(
        parsed.query.to_string(),
        plain("SELECT freshet_get_field(freshet_model_call('x', '', 'f', a), 'b') FROM t")
    );
    assert_eq!(parsed.model_bindings.len(), 1);
    assert_eq!(
        parse_query_text("SELECT 1; SELECT 2").unwrap_err().position,
        Some(11)
    );
    assert_eq!(parse_query_text("").unwrap_err().sqlstate(), "42601");
    assert_eq!(
        parse_query_text("INSERT INTO t VALUES (1)")
            .unwrap_err()
            .sqlstate(),
        "42601"
    );
}

#[test]
fn model_name_helpers() {
    assert_eq!(
        model_name_literal(&name(&["ml", "registry", "m"])),
        "ml.registry.m"
    );
    let quoted = ObjectName::from(vec![
        Ident::new("ML"),
        Ident::with_quote('"', "My \"Model\""),
    ]);
    let literal = model_name_literal(&quoted);
    assert_eq!(literal, "ml.\"My \"\"Model\"\"\"");
    assert_eq!(
        split_model_name(&literal).unwrap(),
        vec!["ml", "My \"Model\""]
    );
    assert_eq!(split_model_name("A.b.C").unwrap(), vec!["a", "b", "c"]);
    assert!(split_model_name("a.b.c.d").is_err());
    assert!(split_model_name("a b").is_err());
    assert!(split_model_name("").is_err());
    assert_eq!(normalize_ident(&Ident::new("AbC")), "abc");
    assert_eq!(normalize_ident(&Ident::with_quote('"', "AbC")), "AbC");
}

#[test]
fn collect_model_calls_deduplicates() {
    let statement = standard("SELECT MODEL(a, v1)!p(x), MODEL(a, v1)!p(y), b!q(z) FROM t");
    assert_eq!(
        collect_model_calls(&statement),
        vec![
            ModelCall {
                model: "a".into(),
                version: Some("v1".into()),
                method: "p".into()
            },
            ModelCall {
                model: "b".into(),
                version: None,
                method: "q".into()
            },
        ]
    );
}

/// Every prefix of a set of tricky inputs parses or fails cleanly: no panic.
#[test]
fn never_panics_on_truncated_input() {
    let inputs = [
        VERBATIM,
        "WITH m AS MODEL a.b VERSION v, c AS (SELECT 1) SELECT MODEL(a.b, v)!p(x):y.z[1] FROM c",
        r"CREATE OR REPLACE MODEL m VERSION v FROM E'\\x0a0b' COMMENT = 'x'",
        "ALTER MODEL m VERSION v SET ALIAS = a; SHOW VERSIONS LIKE 'v%' IN MODEL m",
        "USE SCHEMA db.s; SHOW TERSE DYNAMIC TABLES LIKE 'x' IN DATABASE d",
        "CREATE USER u WITH PASSWORD 'p' SUPERUSER; ALTER USER u SET PASSWORD = 'q'",
        "ALTER ROLE u SET search_path TO a, 'b', -1; ALTER ROLE u RESET ALL",
        "SELECT x:a:b, arr[a:b], ((m!f(1))):c FROM t WHERE 'é' = \"ü\"",
    ];
    for input in inputs {
        let chars: Vec<char> = input.chars().collect();
        for n in 0..=chars.len() {
            let prefix: String = chars[..n].iter().collect();
            let _ = parse_sql(&prefix);
            let _ = parse_query_text(&prefix);
        }
    }
}

trait ToStringLossy {
    fn to_string_lossy(&self) -> String;
}

impl ToStringLossy for FreshetStatement {
    fn to_string_lossy(&self) -> String {
        match self {
            FreshetStatement::Standard(s) => s.to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// Random soups of the tokens the rewrites care about never panic.
#[test]
fn never_panics_on_token_soup() {
    const FRAGMENTS: &[&str] = &[
        "WITH",
        "RECURSIVE",
        "m",
        "AS",
        "MODEL",
        "VERSION",
        "v",
        "!",
        ":",
        "::",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "'s'",
        "\"Q\"",
        "x",
        "SELECT",
        "FROM",
        "t",
        "CREATE",
        "ALTER",
        "DROP",
        "SHOW",
        "USE",
        "DYNAMIC",
        "TABLE",
        "TABLES",
        "TARGET_LAG",
        "=",
        "'1 minute'",
        ";",
        "$1",
        "E'\\\\x0a'",
        "X'0g'",
        "DATABASE",
        "SCHEMA",
        "USER",
        "PASSWORD",
        "IN",
        "LIKE",
        "predict",
        "MODEL(",
        "1",
        "-- c\n",
        "/* c */",
        "NOT",
        "MATERIALIZED",
        "DESC",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    for _ in 0..4000 {
        let len = 1 + next() % 24;
        let sql: Vec<&str> = (0..len)
            .map(|_| FRAGMENTS[next() % FRAGMENTS.len()])
            .collect();
        let sql = sql.join(" ");
        if let Err(e) = parse_sql(&sql) {
            if let Some(position) = e.position {
                assert!(
                    position >= 1 && position <= sql.chars().count() + 1,
                    "{sql}: {e:?}"
                );
            }
        }
        let _ = parse_query_text(&sql);
    }
}
