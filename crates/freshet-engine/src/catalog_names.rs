//! Resolves unqualified names of pg_catalog relations as PostgreSQL does.
//!
//! PostgreSQL searches `pg_catalog` before the schemas of `search_path`, so
//! `SELECT * FROM pg_class` reads the catalog, and a user's own table of that
//! name is reached only when qualified. A WITH query comes before both: in
//! `WITH pg_class AS (SELECT 1 AS x) SELECT * FROM pg_class` the name is the
//! WITH query's. DataFusion knows neither rule, so before planning every
//! unqualified relation that names a catalog table and no WITH query in scope
//! is qualified with `pg_catalog`.
//!
//! Scope follows PostgreSQL: a WITH query's name is visible to the query's
//! body and to the WITH queries after it, and, under `WITH RECURSIVE`, to
//! every WITH query of the list, its own included.

use std::collections::HashSet;
use std::ops::ControlFlow;

use crate::names::ident;
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectNamePart, Query, Statement, TableFactor, VisitMut, VisitorMut, With,
};

/// Whether an unqualified relation name (as PostgreSQL folds it) names a
/// pg_catalog relation: datafusion-pg-catalog's or one Freshet adds.
pub(crate) fn is_catalog_relation(name: &str) -> bool {
    datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES
        .iter()
        .chain(crate::pg_keys::ADDED_CATALOG_TABLES)
        .any(|table| *table == name)
}

/// Qualifies with `pg_catalog` each unqualified relation of `statement` that
/// names a catalog relation and no WITH query in scope. Returns whether any
/// name was qualified.
pub(crate) fn qualify_catalog_relations(statement: &mut Statement) -> bool {
    let mut visitor = Qualifier::default();
    let _ = statement.visit(&mut visitor);
    visitor.qualified
}

#[derive(Default)]
struct Qualifier {
    /// WITH query names in scope, one frame per enclosing query.
    scopes: Vec<HashSet<String>>,
    /// Each enclosing query's WITH clause, taken out while the rest of the
    /// query is visited (its WITH queries are visited first, each in its own
    /// scope) and put back afterwards.
    withs: Vec<Option<With>>,
    qualified: bool,
}

impl Qualifier {
    fn in_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|frame| frame.contains(name))
    }
}

impl VisitorMut for Qualifier {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut with = query.with.take();
        let mut frame = HashSet::new();
        if let Some(with) = with.as_mut() {
            if with.recursive {
                frame.extend(with.cte_tables.iter().map(|cte| ident(&cte.alias.name)));
            }
            for cte in &mut with.cte_tables {
                self.scopes.push(frame.clone());
                let _ = cte.query.visit(self);
                self.scopes.pop();
                frame.insert(ident(&cte.alias.name));
            }
        }
        self.scopes.push(frame);
        self.withs.push(with);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.scopes.pop();
        query.with = self.withs.pop().flatten();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // A table function (`args`) is not a relation name.
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
        {
            if let [ObjectNamePart::Identifier(name_part)] = name.0.as_slice() {
                let folded = ident(name_part);
                if is_catalog_relation(&folded) && !self.in_scope(&folded) {
                    name.0
                        .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
                    self.qualified = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn qualified(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        qualify_catalog_relations(&mut statement);
        statement.to_string()
    }

    #[test]
    fn a_with_query_shadows_a_catalog_table_only_in_its_scope() {
        assert_eq!(
            qualified("SELECT * FROM pg_class"),
            "SELECT * FROM pg_catalog.pg_class"
        );
        assert_eq!(
            qualified("WITH pg_class AS (SELECT 1 AS x) SELECT * FROM pg_class"),
            "WITH pg_class AS (SELECT 1 AS x) SELECT * FROM pg_class"
        );
        // Its own body, outside WITH RECURSIVE, reads the catalog.
        assert_eq!(
            qualified("WITH pg_class AS (SELECT * FROM pg_class) SELECT * FROM pg_class"),
            "WITH pg_class AS (SELECT * FROM pg_catalog.pg_class) SELECT * FROM pg_class"
        );
        // A sibling subquery's WITH does not reach the outer FROM.
        assert_eq!(
            qualified(
                "SELECT * FROM pg_type, (WITH pg_type AS (SELECT 1 AS x) SELECT * FROM pg_type) s"
            ),
            "SELECT * FROM pg_catalog.pg_type, (WITH pg_type AS (SELECT 1 AS x) SELECT * FROM pg_type) s"
        );
        // An outer WITH reaches a nested subquery.
        assert_eq!(
            qualified(
                "WITH pg_proc AS (SELECT 1 AS x) SELECT * FROM t WHERE a IN (SELECT x FROM pg_proc)"
            ),
            "WITH pg_proc AS (SELECT 1 AS x) SELECT * FROM t WHERE a IN (SELECT x FROM pg_proc)"
        );
        // A quoted name is spelled exactly.
        assert_eq!(
            qualified("SELECT * FROM \"PG_CLASS\""),
            "SELECT * FROM \"PG_CLASS\""
        );
        assert_eq!(
            qualified("SELECT * FROM pg_indexes"),
            "SELECT * FROM pg_catalog.pg_indexes"
        );
    }

    #[test]
    fn recursive_with_queries_see_each_other() {
        assert_eq!(
            qualified(
                "WITH RECURSIVE pg_class(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM pg_class WHERE n < 3) SELECT * FROM pg_class"
            ),
            "WITH RECURSIVE pg_class (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM pg_class WHERE n < 3) SELECT * FROM pg_class"
        );
    }
}
