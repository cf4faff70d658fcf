//! The `INFORMATION_SCHEMA` dynamic-table monitoring relations are rewritten
//! into Freshet's table functions, and nothing else is touched.

use freshet_sql::sqlparser::dialect::PostgreSqlDialect;
use freshet_sql::sqlparser::parser::Parser;
use freshet_sql::*;

fn rewritten(sql: &str) -> String {
    let mut statements = parse_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    assert_eq!(statements.len(), 1, "{sql}");
    match statements.remove(0) {
        FreshetStatement::Standard(statement) => statement.to_string(),
        other => panic!("expected a standard statement for {sql}, got {other:?}"),
    }
}

fn plain(sql: &str) -> String {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("plain SQL parses");
    assert_eq!(statements.len(), 1);
    statements[0].to_string()
}

#[track_caller]
fn assert_rewrites(freshet: &str, expected: &str) {
    assert_eq!(rewritten(freshet), plain(expected), "{freshet}");
}

#[test]
fn snowflake_table_function_form_with_named_arguments() {
    assert_rewrites(
        "SELECT * FROM TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'x'))",
        "SELECT * FROM freshet_dynamic_table_refresh_history('name', 'x')",
    );
    assert_rewrites(
        "select state from table(information_schema.dynamic_table_refresh_history(name => 'S.X', result_limit => 10, error_only => true)) h where h.state = 'FAILED'",
        "SELECT state FROM freshet_dynamic_table_refresh_history('name', 'S.X', 'result_limit', 10, 'error_only', true) h WHERE h.state = 'FAILED'",
    );
    assert_rewrites(
        "SELECT * FROM TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY())",
        "SELECT * FROM freshet_dynamic_table_refresh_history()",
    );
    assert_rewrites(
        "SELECT * FROM TABLE(mydb.INFORMATION_SCHEMA.DYNAMIC_TABLE_GRAPH_HISTORY())",
        "SELECT * FROM freshet_dynamic_table_graph_history('database', 'mydb')",
    );
    assert_rewrites(
        "SELECT * FROM TABLE(\"My Db\".INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'x'))",
        "SELECT * FROM freshet_dynamic_table_refresh_history('database', 'My Db', 'name', 'x')",
    );
    // Nested parentheses inside an argument stay intact.
    assert_rewrites(
        "SELECT * FROM TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => lower('X'), RESULT_LIMIT => (1 + 2)))",
        "SELECT * FROM freshet_dynamic_table_refresh_history('name', lower('X'), 'result_limit', (1 + 2))",
    );
}

#[test]
fn relation_form() {
    assert_rewrites(
        "SELECT name, state FROM information_schema.dynamic_table_refresh_history WHERE name = 'x'",
        "SELECT name, state FROM freshet_dynamic_table_refresh_history() WHERE name = 'x'",
    );
    assert_rewrites(
        "SELECT * FROM INFORMATION_SCHEMA.DYNAMIC_TABLE_GRAPH_HISTORY g JOIN information_schema.dynamic_tables d ON g.name = d.name",
        "SELECT * FROM freshet_dynamic_table_graph_history() g JOIN freshet_dynamic_tables() d ON g.name = d.name",
    );
    assert_rewrites(
        "SELECT count(*) FROM freshet.information_schema.dynamic_table_refresh_history",
        "SELECT count(*) FROM freshet_dynamic_table_refresh_history('database', 'freshet')",
    );
    // Inside a subquery and in a dynamic table's query.
    assert_rewrites(
        "SELECT * FROM (SELECT * FROM information_schema.dynamic_table_refresh_history) AS x",
        "SELECT * FROM (SELECT * FROM freshet_dynamic_table_refresh_history()) AS x",
    );
}

#[test]
fn other_shapes_are_left_alone() {
    for sql in [
        "SELECT * FROM information_schema.tables",
        "SELECT table_name FROM information_schema.columns WHERE table_name = 'dynamic_table_refresh_history'",
        "SELECT 'information_schema.dynamic_table_refresh_history'",
        "SELECT \"information_schema.dynamic_table_refresh_history\" FROM t",
        "SELECT information_schema.dynamic_tables.name FROM t",
        "SELECT * FROM information_schema.dynamic_table_refresh_history_other",
        "SELECT 1 -- information_schema.dynamic_table_refresh_history",
    ] {
        assert_eq!(rewritten(sql), plain(sql), "{sql}");
    }
}

#[test]
fn functions_are_listed_for_the_engine() {
    let names: Vec<&str> = INFORMATION_SCHEMA_FUNCTIONS
        .iter()
        .map(|(_, f)| *f)
        .collect();
    assert!(names.contains(&"freshet_dynamic_table_refresh_history"));
    assert!(names.contains(&"freshet_dynamic_table_graph_history"));
    assert!(names.contains(&"freshet_dynamic_tables"));
}
