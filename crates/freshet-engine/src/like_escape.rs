//! `LIKE … ESCAPE 'c'` (and `ILIKE`) with an escape character other than
//! backslash.
//!
//! PostgreSQL takes any single character as the escape (`'a!%c' LIKE
//! 'a!%c' ESCAPE '!'`); DataFusion's physical planner refuses all but `\`.
//! [`LikeEscape`], an `AnalyzerRule`, rewrites a literal pattern into the
//! same pattern written with backslash escapes, which DataFusion runs: the
//! escape character and what follows become `\` and what follows, and a
//! backslash of the pattern, which is then an ordinary character, becomes
//! `\\`. A pattern that ends with the escape character is PostgreSQL's
//! 22025, whatever the text (PostgreSQL raises it only for a text that gets
//! that far, and answers false for a shorter one). A pattern that is not a
//! literal keeps DataFusion's refusal.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use crate::EngineError;

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(LikeEscape));
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct LikeEscape;

impl AnalyzerRule for LikeEscape {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_like_escape"
    }
}

fn rewrite(expr: Expr, _schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::Like(like) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
        return Ok(Transformed::no(expr));
    };
    let pattern = match like.pattern.as_ref() {
        Expr::Literal(
            ScalarValue::Utf8(pattern)
            | ScalarValue::LargeUtf8(pattern)
            | ScalarValue::Utf8View(pattern),
            _,
        ) => pattern
            .as_deref()
            .map(|p| with_backslash_escapes(p, escape))
            .transpose()?,
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(Expr::Like(Like {
        pattern: Box::new(Expr::Literal(ScalarValue::Utf8(pattern), None)),
        escape_char: None,
        ..like.clone()
    })))
}

/// `pattern`, whose escape character is `escape`, written with `\` as its
/// escape character instead.
fn with_backslash_escapes(pattern: &str, escape: char) -> Result<String, EngineError> {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            let Some(escaped) = chars.next() else {
                return Err(EngineError::new(
                    "22025",
                    "LIKE pattern must not end with escape character",
                ));
            };
            out.push('\\');
            out.push(escaped);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_backslashes() {
        assert_eq!(
            with_backslash_escapes("a!%c", '!').ok().as_deref(),
            Some("a\\%c")
        );
        assert_eq!(
            with_backslash_escapes("a!!b", '!').ok().as_deref(),
            Some("a\\!b")
        );
        assert_eq!(
            with_backslash_escapes("a\\_%", '#').ok().as_deref(),
            Some("a\\\\_%")
        );
        assert_eq!(
            with_backslash_escapes("ab!", '!').map_err(|e| e.sqlstate()),
            Err("22025")
        );
    }
}
