//! Names of the column a single-column function in FROM returns.
//!
//! In PostgreSQL, a function in FROM that returns one column names that
//! column after its table alias, or after the function when there is no
//! alias: `SELECT sum(g) FROM generate_series(1, 3) AS g` and
//! `SELECT generate_series FROM generate_series(1, 3)` both work, and
//! `SELECT * FROM unnest(ARRAY[1, 2])` answers a column `unnest`.
//! DataFusion names the column `value` (or after the expression), so the
//! first query failed with 42703 and the others named their column
//! differently from PostgreSQL.
//!
//! [`rewrite`] gives such a function a column alias before planning: the
//! table alias if there is one, the function's name if not. Only the
//! functions known to return one column are touched (`generate_series`, and
//! `unnest` of one array without `WITH ORDINALITY`); a column alias list the
//! user wrote (`AS g(n)`) is kept.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, Statement, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};

/// Names the column of each single-column function in `statement`'s FROM
/// clauses, as the module docs say.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut NameColumns);
}

struct NameColumns;

impl VisitorMut for NameColumns {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                alias,
                ..
            } => {
                let function = name
                    .0
                    .last()
                    .and_then(|part| part.as_ident())
                    .map(|ident| ident.value.to_ascii_lowercase());
                if name.0.len() <= 2 && function.as_deref() == Some("generate_series") {
                    name_column(alias, "generate_series");
                }
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality: false,
                ..
            } if array_exprs.len() == 1 => name_column(alias, "unnest"),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Gives the function's one column the table alias's name, or `function`
/// (as both table and column name) when it has no alias.
fn name_column(alias: &mut Option<TableAlias>, function: &str) {
    match alias {
        Some(alias) if alias.columns.is_empty() => {
            alias.columns.push(TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            });
        }
        Some(_) => {}
        None => {
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new(function),
                columns: vec![TableAliasColumnDef::from_name(function)],
                at: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn single_column_functions_name_their_column() {
        assert_eq!(
            rewritten("SELECT sum(g) FROM generate_series(1, 3) AS g"),
            "SELECT sum(g) FROM generate_series(1, 3) AS g (g)"
        );
        assert_eq!(
            rewritten("SELECT * FROM generate_series(1, 3)"),
            "SELECT * FROM generate_series(1, 3) AS generate_series (generate_series)"
        );
        // The user's own column names are kept.
        assert_eq!(
            rewritten("SELECT n FROM generate_series(1, 3) AS g(n)"),
            "SELECT n FROM generate_series(1, 3) AS g (n)"
        );
        // A table is not a function.
        assert_eq!(rewritten("SELECT * FROM t AS g"), "SELECT * FROM t AS g");
    }
}
