//! Text array literals (`'{"a b",c}'::text[]`) read as PostgreSQL reads them.
//!
//! datafusion-pg-catalog's `FixArrayLiteral` turns `'{…}'::T[]` into an
//! `ARRAY[…]` by splitting the text on commas: quotes stay in the elements
//! (`'{"a b",c}'::text[]` gave `"a b"`), a quoted comma splits an element
//! in two, and `NULL` became the text `NULL`. Wrong values, without an
//! error.
//!
//! [`rewrite`] runs before that rule and replaces each cast of a string
//! literal to a one-dimensional array of a text type with `ARRAY[…]` of the
//! elements PostgreSQL's `array_in` reads: double-quoted elements with
//! backslash escapes, unquoted elements trimmed of surrounding blanks, and
//! an unquoted `NULL` as NULL. Text it cannot read as such an array (nested
//! braces, a stray quote, `{}`) is left to the rule that follows, as before.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Array, ArrayElemTypeDef, DataType, Expr, Statement, Value,
};

/// Replaces the text array literals of `statement`, as the module docs say.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Array(element),
            ..
        } = expr
        {
            let text_elements = match element {
                ArrayElemTypeDef::SquareBracket(t, _)
                | ArrayElemTypeDef::AngleBracket(t)
                | ArrayElemTypeDef::Parenthesis(t) => is_text_type(t),
                ArrayElemTypeDef::None => false,
            };
            if let Expr::Value(value) = inner.as_ref() {
                if let (true, Value::SingleQuotedString(text)) = (text_elements, &value.value) {
                    if let Some(elements) = parse(text) {
                        **inner = Expr::Array(Array {
                            elem: elements
                                .into_iter()
                                .map(|e| match e {
                                    Some(s) => Expr::value(Value::SingleQuotedString(s)),
                                    None => Expr::value(Value::Null),
                                })
                                .collect(),
                            named: true,
                        });
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn is_text_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Text
            | DataType::Varchar(_)
            | DataType::CharacterVarying(_)
            | DataType::Char(_)
            | DataType::Character(_)
            | DataType::String(_)
    )
}

/// The elements of a one-dimensional array's text (`{}` included), as
/// [`parse`] reads them, or `None` if `text` is not one.
pub(crate) fn elements(text: &str) -> Option<Vec<Option<String>>> {
    match text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
    {
        Some(inner) if inner.trim().is_empty() => Some(Vec::new()),
        _ => parse(text),
    }
}

/// The elements of a one-dimensional, non-empty array literal (`None` for
/// an unquoted NULL), or `None` if `text` is not one.
fn parse(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty() {
        return None;
    }
    let mut elements = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let element = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            Some(value)
        } else {
            let mut value = String::new();
            // Blanks are trimmed only where they were not escaped.
            let mut kept = 0;
            let mut escaped_any = false;
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '"' | '{' | '}' => return None,
                    '\\' => {
                        chars.next();
                        value.push(chars.next()?);
                        kept = value.len();
                        escaped_any = true;
                    }
                    c => {
                        chars.next();
                        value.push(c);
                        if !c.is_whitespace() {
                            kept = value.len();
                        }
                    }
                }
            }
            value.truncate(kept);
            if value.is_empty() {
                return None;
            }
            if !escaped_any && value.eq_ignore_ascii_case("null") {
                None
            } else {
                Some(value)
            }
        };
        elements.push(element);
        match chars.next() {
            None => return Some(elements),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn some(items: &[&str]) -> Option<Vec<Option<String>>> {
        Some(items.iter().map(|s| Some((*s).to_owned())).collect())
    }

    #[test]
    fn elements_are_read_as_array_in_reads_them() {
        assert_eq!(parse(r#"{"a b",c}"#), some(&["a b", "c"]));
        assert_eq!(parse(r#"{"a,b", c }"#), some(&["a,b", "c"]));
        assert_eq!(parse(r#"{"x\"y",a\,b}"#), some(&["x\"y", "a,b"]));
        assert_eq!(parse("{ a b ,c}"), some(&["a b", "c"]));
        assert_eq!(
            parse(r#"{NULL,"NULL",null}"#),
            Some(vec![None, Some("NULL".to_owned()), None])
        );
        // Not a one-dimensional array literal: left alone.
        assert_eq!(parse("{}"), None);
        assert_eq!(parse("{{a},{b}}"), None);
        assert_eq!(parse(r#"{a"b}"#), None);
        assert_eq!(parse("{a,,b}"), None);
        assert_eq!(parse("a,b"), None);
    }
}
