//! How PostgreSQL writes an identifier back out: `quote_ident()`, `%I` in
//! `format()`, and the deparser behind `pg_get_indexdef`/`pg_get_constraintdef`.
//!
//! One rule serves them all, so a name Freshet prints is quoted exactly when
//! PostgreSQL 15 would quote it: bare when it is lower-case ASCII letters,
//! digits and underscores (not starting with a digit) and not a keyword
//! outside the unreserved category; double-quoted otherwise, with embedded
//! double quotes doubled. `$` is quoted too, as PostgreSQL's `quote_ident`
//! does.

use std::borrow::Cow;

/// PostgreSQL 15 keywords that are not `UNRESERVED_KEYWORD` (categories
/// `C`, `T` and `R` of `pg_get_keywords()`), sorted bytewise. `quote_ident`
/// quotes an otherwise plain identifier when it is one of these.
static QUOTED_KEYWORDS: [&str; 151] = [
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// `value` as PostgreSQL's `quote_ident()` returns it.
pub(crate) fn quote_ident(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let plain = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && QUOTED_KEYWORDS.binary_search(&value).is_err();
    if plain {
        return Cow::Borrowed(value);
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Cow::Owned(quoted)
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, QUOTED_KEYWORDS};

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        assert!(QUOTED_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn identifiers_are_quoted_as_postgresql_quotes_them() {
        for (name, expected) in [
            ("id", "id"),
            ("user_id2", "user_id2"),
            ("name", "name"),
            ("_x", "_x"),
            ("order", "\"order\""),
            ("xmlelement", "\"xmlelement\""),
            ("system_user", "system_user"),
            ("a$b", "\"a$b\""),
            ("Mixed", "\"Mixed\""),
            ("a b", "\"a b\""),
            ("q\"t", "\"q\"\"t\""),
            ("1st", "\"1st\""),
            ("", "\"\""),
        ] {
            assert_eq!(quote_ident(name), expected, "{name}");
        }
    }
}
