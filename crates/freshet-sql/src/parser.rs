//! Statement splitting and the wrapper parser for Freshet's statements.
//!
//! Like DataFusion's `DFParser`, [`StmtParser`] drives a sqlparser [`Parser`]
//! over a token stream: it recognises Freshet's statements by their leading
//! keywords and parses them with sqlparser's token primitives, and hands
//! everything else to [`Parser::parse_statement`]. Freshet's keywords
//! (`DYNAMIC`, `TARGET_LAG`, ...) are matched as plain unquoted words,
//! case-insensitively, because most are not sqlparser keywords.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Owner, Query, SetExpr};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{
    Location, Span, Token, TokenWithSpan, Tokenizer, Word,
};

use crate::ast::{
    AlterDynamicTableAction, AlterModelAction, CreateDynamicTable, FreshetStatement, GranteeSpec,
    Initialize, ModelBinding, ModelSource, OwnedObject, ParsedQuery, ParsedStatement, RefreshMode,
    RoleSettingChange, ShowScope, TargetLag,
};
use crate::error::{SqlError, SqlErrorKind};
use crate::rewrite::{
    is_word, normalize_ident, resolve_path_markers, rewrite_model_calls, rewrite_paths,
    strip_model_bindings,
};
use crate::source::SourceMap;

/// The dialect for everything: the server speaks the Postgres protocol, so
/// standard statements get Postgres semantics (`::` casts, `$n` parameters,
/// `E''` strings, ...).
pub(crate) static DIALECT: PostgreSqlDialect = PostgreSqlDialect {};

/// Tokenizes the whole input once, so every token's span refers to the
/// original string.
pub(crate) fn tokenize(sql: &str, map: &SourceMap<'_>) -> Result<Vec<TokenWithSpan>, SqlError> {
    Tokenizer::new(&DIALECT, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::syntax(e.message, map.position(e.location)))
}

/// Splits tokens into statements at `;` outside parentheses. Empty statements
/// (`;;`, trailing `;`, comment-only text) are dropped.
pub(crate) fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut statements = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0usize;
    for token in tokens {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => {
                statements.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(token);
    }
    statements.push(current);
    statements
        .into_iter()
        .filter(|s| s.iter().any(|t| !matches!(t.token, Token::Whitespace(_))))
        .collect()
}

/// Character range (0-based, end exclusive) covered by the significant
/// tokens of one statement.
fn statement_range(tokens: &[TokenWithSpan], map: &SourceMap<'_>) -> (usize, usize) {
    let mut significant = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let first = significant.next();
    let last = significant.next_back().or(first);
    let start = first
        .and_then(|t| map.char_offset(t.span.start))
        .unwrap_or(0);
    let end = last
        .and_then(|t| map.char_offset(t.span.end))
        .unwrap_or(map.char_len());
    (start, end.max(start))
}

/// Runs the token rewrites and the statement parser on one statement.
pub(crate) fn parse_statement_tokens(
    map: &SourceMap<'_>,
    tokens: Vec<TokenWithSpan>,
) -> Result<ParsedStatement, SqlError> {
    let (start, end) = statement_range(&tokens, map);
    crate::depth::check_depth(&tokens, map)?;
    let (tokens, bindings) = strip_model_bindings(tokens, map)?;
    let tokens = rewrite_model_calls(tokens, &bindings, map)?;
    let tokens = rewrite_paths(tokens);
    let tokens = crate::postgres_syntax::rewrite_trim_from(tokens);
    let tokens = crate::postgres_syntax::rewrite_between_symmetric(tokens);
    let mut parser = StmtParser::new(tokens, map, end);
    let mut statement = parser.statement(&bindings)?;
    parser.expect_end()?;
    match &mut statement {
        FreshetStatement::Standard(stmt) => {
            resolve_path_markers(stmt);
            crate::postgres_syntax::finish_parsed(stmt);
        }
        FreshetStatement::CreateDynamicTable(create) => {
            resolve_path_markers(&mut create.query);
            crate::postgres_syntax::finish_parsed(&mut create.query);
        }
        _ => {}
    }
    Ok(ParsedStatement {
        statement,
        source: map.slice(start, end).to_string(),
        offset: start + 1,
        model_bindings: bindings,
    })
}

/// Parses a single query (the `query_text` of a dynamic table).
pub(crate) fn parse_query_tokens(
    map: &SourceMap<'_>,
    mut statements: Vec<Vec<TokenWithSpan>>,
) -> Result<ParsedQuery, SqlError> {
    if statements.len() > 1 {
        let (start, _) = statement_range(&statements[1], map);
        return Err(SqlError::syntax(
            "expected a single query, found several statements",
            Some(start + 1),
        ));
    }
    let Some(tokens) = statements.pop() else {
        return Err(SqlError::syntax("expected a query, found nothing", Some(1)));
    };
    let (_, end) = statement_range(&tokens, map);
    crate::depth::check_depth(&tokens, map)?;
    let (tokens, bindings) = strip_model_bindings(tokens, map)?;
    let tokens = rewrite_model_calls(tokens, &bindings, map)?;
    let tokens = rewrite_paths(tokens);
    let tokens = crate::postgres_syntax::rewrite_trim_from(tokens);
    let tokens = crate::postgres_syntax::rewrite_between_symmetric(tokens);
    let mut parser = StmtParser::new(tokens, map, end);
    let mut query = parser.query()?;
    parser.expect_end()?;
    resolve_path_markers(&mut query);
    crate::postgres_syntax::finish_parsed(&mut query);
    Ok(ParsedQuery {
        query,
        model_bindings: bindings,
    })
}

/// Extracts sqlparser's `" at Line: L, Column: C"` suffix from an error
/// message (sqlparser only exposes locations inside the text).
fn split_location(message: &str) -> (String, Option<Location>) {
    const MARKER: &str = " at Line: ";
    if let Some(idx) = message.rfind(MARKER) {
        let rest = &message[idx + MARKER.len()..];
        if let Some((line, column)) = rest.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                return (
                    message[..idx].to_string(),
                    Some(Location::new(line, column)),
                );
            }
        }
    }
    (message.to_string(), None)
}

/// Wrapper parser for one statement's rewritten tokens.
/// What `CREATE USER` or `ALTER USER` says about the role; `None` where
/// it says nothing.
struct RoleOptions {
    /// `PASSWORD 'pw'` (`Some(Some)`) or `PASSWORD NULL` (`Some(None)`).
    password: Option<Option<String>>,
    /// `SUPERUSER` or `NOSUPERUSER`.
    superuser: Option<bool>,
    /// `LOGIN` or `NOLOGIN`.
    login: Option<bool>,
}

struct StmtParser<'m> {
    p: Parser<'static>,
    map: &'m SourceMap<'m>,
    /// 0-based exclusive character offset where the statement ends.
    end: usize,
}

impl<'m> StmtParser<'m> {
    fn new(tokens: Vec<TokenWithSpan>, map: &'m SourceMap<'m>, end: usize) -> Self {
        StmtParser {
            p: Parser::new(&DIALECT).with_tokens_with_locations(tokens),
            map,
            end,
        }
    }

    // -- positions and errors ------------------------------------------------

    fn end_position(&self) -> Option<usize> {
        Some(self.end + 1)
    }

    fn pos(&self, span: Span) -> Option<usize> {
        self.map.position(span.start).or(self.end_position())
    }

    fn here(&self) -> Option<usize> {
        self.pos(self.p.peek_token_ref().span)
    }

    /// Converts a sqlparser error, recovering its location from the message.
    fn convert(&self, error: ParserError) -> SqlError {
        match error {
            ParserError::RecursionLimitExceeded => SqlError::new(
                SqlErrorKind::TooComplex,
                "statement is nested too deeply",
                self.here(),
            ),
            ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
                let (message, location) = split_location(&message);
                let position = location
                    .and_then(|l| self.map.position(l))
                    .or_else(|| self.here());
                SqlError::syntax(message, position)
            }
        }
    }

    /// "expected X, found Y" at the next token.
    fn expected(&self, what: &str) -> SqlError {
        let next = self.p.peek_token_ref();
        if next.token == Token::EOF {
            SqlError::syntax(
                format!("expected {what}, found end of statement"),
                self.end_position(),
            )
        } else {
            SqlError::syntax(
                format!("expected {what}, found {}", next.token),
                self.pos(next.span),
            )
        }
    }

    fn expect_end(&mut self) -> Result<(), SqlError> {
        if self.p.peek_token_ref().token == Token::EOF {
            Ok(())
        } else {
            Err(self.expected("end of statement"))
        }
    }

    // -- token primitives ----------------------------------------------------

    fn peek_is(&self, n: usize, keyword: &str) -> bool {
        is_word(&self.p.peek_nth_token_ref(n).token, keyword)
    }

    fn advance(&mut self, n: usize) {
        for _ in 0..n {
            self.p.next_token();
        }
    }

    fn eat(&mut self, keyword: &str) -> bool {
        if self.peek_is(0, keyword) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn eat_seq(&mut self, keywords: &[&str]) -> bool {
        if keywords.iter().enumerate().all(|(n, k)| self.peek_is(n, k)) {
            self.advance(keywords.len());
            true
        } else {
            false
        }
    }

    fn expect(&mut self, keyword: &str) -> Result<TokenWithSpan, SqlError> {
        if self.peek_is(0, keyword) {
            Ok(self.p.next_token())
        } else {
            Err(self.expected(keyword))
        }
    }

    fn eat_token(&mut self, token: &Token) -> bool {
        self.p.consume_token(token)
    }

    fn expect_token(&mut self, token: &Token, what: &str) -> Result<(), SqlError> {
        if self.eat_token(token) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Optional `=` between an option name and its value.
    fn optional_eq(&mut self) {
        self.eat_token(&Token::Eq);
    }

    fn ident(&mut self, what: &str) -> Result<Ident, SqlError> {
        let next = self.p.peek_token_ref();
        if let Token::Word(w) = &next.token {
            let ident = word_ident(w, next.span);
            self.p.next_token();
            Ok(ident)
        } else {
            Err(self.expected(what))
        }
    }

    /// A dotted name of at most `max_parts` parts.
    fn object_name(&mut self, what: &str, max_parts: usize) -> Result<ObjectName, SqlError> {
        let first_span = self.p.peek_token_ref().span;
        let mut parts = vec![self.ident(what)?];
        while self.eat_token(&Token::Period) {
            parts.push(self.ident(what)?);
        }
        if parts.len() > max_parts {
            return Err(SqlError::syntax(
                format!("{what} has too many name parts (at most {max_parts})"),
                self.pos(first_span),
            ));
        }
        Ok(ObjectName::from(parts))
    }

    fn string(&mut self, what: &str) -> Result<(String, Span), SqlError> {
        let next = self.p.peek_token_ref();
        let value = match &next.token {
            Token::SingleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::NationalStringLiteral(s)
            | Token::UnicodeStringLiteral(s) => s.clone(),
            Token::DollarQuotedString(s) => s.value.clone(),
            _ => return Err(self.expected(what)),
        };
        let span = next.span;
        self.p.next_token();
        Ok((value, span))
    }

    /// An enum-like option value: a word (quoted or not) or a string,
    /// returned upper-cased for matching.
    fn option_word(&mut self, what: &str) -> Result<(String, Span), SqlError> {
        let next = self.p.peek_token_ref();
        let value = match &next.token {
            Token::Word(w) => w.value.clone(),
            Token::SingleQuotedString(s) => s.clone(),
            _ => return Err(self.expected(what)),
        };
        let span = next.span;
        self.p.next_token();
        Ok((value.to_ascii_uppercase(), span))
    }

    /// A read-only query (sqlparser also accepts `INSERT`/`UPDATE`/... as a
    /// query body, which makes no sense for a defining query).
    fn query(&mut self) -> Result<Box<Query>, SqlError> {
        let start = self.p.peek_token_ref().span;
        let query = self.p.parse_query().map_err(|e| self.convert(e))?;
        if matches!(
            *query.body,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        ) {
            return Err(SqlError::syntax(
                "expected a query (SELECT, VALUES or TABLE), found a data-modifying statement",
                self.pos(start),
            ));
        }
        Ok(query)
    }

    fn duplicate(&self, clause: &str, span: Span) -> SqlError {
        SqlError::syntax(format!("{clause} specified more than once"), self.pos(span))
    }

    // -- dispatch ------------------------------------------------------------

    fn statement(&mut self, bindings: &[ModelBinding]) -> Result<FreshetStatement, SqlError> {
        if self.peek_is(0, "CREATE") {
            let or_replace = self.peek_is(1, "OR") && self.peek_is(2, "REPLACE");
            let n = if or_replace { 3 } else { 1 };
            if self.peek_is(n, "DYNAMIC") && self.peek_is(n + 1, "TABLE") {
                self.advance(n + 2);
                return self.create_dynamic_table(or_replace, bindings);
            }
            if self.peek_is(n, "MODEL") {
                self.advance(n + 1);
                return self.create_model(or_replace);
            }
            if self.peek_is(n, "DATABASE") {
                if or_replace {
                    return Err(SqlError::unsupported(
                        "CREATE OR REPLACE DATABASE is not supported",
                        self.here(),
                    ));
                }
                self.advance(2);
                return self.create_database();
            }
            if !or_replace && (self.peek_is(1, "USER") || self.peek_is(1, "ROLE")) {
                let role = self.peek_is(1, "ROLE");
                self.advance(2);
                return self.create_user(role);
            }
        } else if self.peek_is(0, "DROP") {
            if self.peek_is(1, "DYNAMIC") && self.peek_is(2, "TABLE") {
                self.advance(3);
                let if_exists = self.eat_seq(&["IF", "EXISTS"]);
                let name = self.object_name("dynamic table name", 3)?;
                let cascade = self.cascade();
                return Ok(FreshetStatement::DropDynamicTable {
                    name,
                    if_exists,
                    cascade,
                });
            }
            if self.peek_is(1, "MODEL") {
                self.advance(2);
                let if_exists = self.eat_seq(&["IF", "EXISTS"]);
                let name = self.object_name("model name", 3)?;
                return Ok(FreshetStatement::DropModel { name, if_exists });
            }
            if self.peek_is(1, "DATABASE") {
                self.advance(2);
                let if_exists = self.eat_seq(&["IF", "EXISTS"]);
                let name = self.ident("database name")?;
                let cascade = self.cascade();
                return Ok(FreshetStatement::DropDatabase {
                    name,
                    if_exists,
                    cascade,
                });
            }
            // PostgreSQL's DROP ROLE is DROP USER; Freshet's roles are its
            // users.
            if self.peek_is(1, "USER") || self.peek_is(1, "ROLE") {
                self.advance(2);
                let if_exists = self.eat_seq(&["IF", "EXISTS"]);
                let name = self.ident("user name")?;
                return Ok(FreshetStatement::DropUser { name, if_exists });
            }
        } else if self.peek_is(0, "ALTER") {
            if self.peek_is(1, "DYNAMIC") && self.peek_is(2, "TABLE") {
                self.advance(3);
                return self.alter_dynamic_table();
            }
            if self.peek_is(1, "MODEL") {
                self.advance(2);
                return self.alter_model();
            }
            if self.peek_is(1, "USER") {
                self.advance(2);
                return self.alter_user();
            }
            // sqlparser reads ALTER VIEW only with AS <query>.
            if self.peek_is(1, "VIEW") && self.owner_to_after_name(2) {
                self.advance(2);
                let if_exists = self.eat_seq(&["IF", "EXISTS"]);
                let name = self.object_name("view name", 3)?;
                return self.owner_to(OwnedObject::View, name, if_exists);
            }
            // PostgreSQL's ALTER ROLE is ALTER USER; Freshet's roles are
            // its users.
            if self.peek_is(1, "ROLE") {
                self.advance(2);
                return self.alter_user();
            }
        } else if self.peek_is(0, "GRANT") || self.peek_is(0, "REVOKE") {
            if let Some(statement) = self.role_membership()? {
                return Ok(statement);
            }
            if let Some(statement) = self.model_privileges()? {
                return Ok(statement);
            }
        } else if self.peek_is(0, "CHECKPOINT") {
            self.advance(1);
            return Ok(FreshetStatement::Checkpoint);
        } else if self.peek_is(0, "USE") {
            self.advance(1);
            return self.use_statement();
        } else if self.peek_is(0, "SHOW") {
            if let Some(statement) = self.show()? {
                return Ok(statement);
            }
        } else if self.peek_is(0, "DESCRIBE") || self.peek_is(0, "DESC") {
            if self.peek_is(1, "DYNAMIC") && self.peek_is(2, "TABLE") {
                self.advance(3);
                let name = self.object_name("dynamic table name", 3)?;
                return Ok(FreshetStatement::DescribeDynamicTable { name });
            }
            if self.peek_is(1, "MODEL") {
                self.advance(2);
                let name = self.object_name("model name", 3)?;
                let version = if self.eat("VERSION") {
                    Some(self.ident("version name")?)
                } else {
                    None
                };
                return Ok(FreshetStatement::DescribeModel { name, version });
            }
        }
        let statement = self.p.parse_statement().map_err(|e| self.convert(e))?;
        Ok(FreshetStatement::Standard(statement))
    }

    /// Optional `CASCADE | RESTRICT`; `true` for `CASCADE`.
    fn cascade(&mut self) -> bool {
        if self.eat("CASCADE") {
            true
        } else {
            self.eat("RESTRICT");
            false
        }
    }

    // -- databases, users, USE -----------------------------------------------

    fn create_database(&mut self) -> Result<FreshetStatement, SqlError> {
        let if_not_exists = self.eat_seq(&["IF", "NOT", "EXISTS"]);
        let name = self.ident("database name")?;
        if self.p.peek_token_ref().token == Token::Period {
            return Err(self.expected("end of statement (database names have one part)"));
        }
        if self.p.peek_token_ref().token != Token::EOF {
            return Err(SqlError::unsupported(
                "CREATE DATABASE options are not supported",
                self.here(),
            ));
        }
        Ok(FreshetStatement::CreateDatabase {
            name,
            if_not_exists,
        })
    }

    fn use_statement(&mut self) -> Result<FreshetStatement, SqlError> {
        for unsupported in ["ROLE", "WAREHOUSE", "SECONDARY"] {
            if self.peek_is(0, unsupported) {
                return Err(SqlError::unsupported(
                    format!("USE {unsupported} is not supported"),
                    self.here(),
                ));
            }
        }
        let name_follows = |s: &Self| matches!(s.p.peek_nth_token_ref(1).token, Token::Word(_));
        let bare_kind = (self.peek_is(0, "DATABASE") || self.peek_is(0, "SCHEMA"))
            && self.p.peek_nth_token_ref(1).token == Token::EOF;
        if bare_kind {
            self.advance(1);
            return Err(self.expected("a name"));
        }
        if self.peek_is(0, "DATABASE") && name_follows(self) {
            self.advance(1);
            let database = self.ident("database name")?;
            return Ok(FreshetStatement::Use {
                database: Some(database),
                schema: None,
            });
        }
        let explicit_schema = self.peek_is(0, "SCHEMA") && name_follows(self);
        if explicit_schema {
            self.advance(1);
        }
        let mut parts = object_parts(self.object_name("database or schema name", 2)?);
        let last = parts.pop();
        let first = parts.pop();
        Ok(match (explicit_schema, first, last) {
            (_, Some(database), schema) => FreshetStatement::Use {
                database: Some(database),
                schema,
            },
            (true, None, schema) => FreshetStatement::Use {
                database: None,
                schema,
            },
            (false, None, database) => FreshetStatement::Use {
                database,
                schema: None,
            },
        })
    }

    /// Parses user options shared by `CREATE USER` and `ALTER USER`.
    fn user_options(&mut self, allow_null_password: bool) -> Result<RoleOptions, SqlError> {
        let mut password: Option<Option<String>> = None;
        let mut superuser: Option<bool> = None;
        let mut login: Option<bool> = None;
        let _ = self.eat("WITH") || self.eat("SET");
        loop {
            let next = self.p.peek_token();
            if next.token == Token::EOF {
                break;
            }
            if self.eat("PASSWORD") {
                if password.is_some() {
                    return Err(self.duplicate("PASSWORD", next.span));
                }
                self.optional_eq();
                if self.peek_is(0, "NULL") {
                    if !allow_null_password {
                        return Err(SqlError::unsupported(
                            "removing a password with PASSWORD NULL is not supported",
                            self.here(),
                        ));
                    }
                    self.advance(1);
                    password = Some(None);
                } else {
                    password = Some(Some(self.string("password string")?.0));
                }
            } else if self.peek_is(0, "SUPERUSER") || self.peek_is(0, "NOSUPERUSER") {
                if superuser.is_some() {
                    return Err(self.duplicate("SUPERUSER", next.span));
                }
                superuser = Some(self.peek_is(0, "SUPERUSER"));
                self.advance(1);
            } else if self.peek_is(0, "LOGIN") || self.peek_is(0, "NOLOGIN") {
                if login.is_some() {
                    return Err(self.duplicate("LOGIN", next.span));
                }
                login = Some(self.peek_is(0, "LOGIN"));
                self.advance(1);
            } else if self.peek_is(0, "INHERIT") {
                // Members have their roles' privileges: the default, and
                // the only mode Freshet has.
                self.advance(1);
            } else if let Token::Word(w) = &next.token {
                return Err(SqlError::unsupported(
                    format!(
                        "user option {} is not supported",
                        w.value.to_ascii_uppercase()
                    ),
                    self.pos(next.span),
                ));
            } else {
                return Err(self.expected("PASSWORD, SUPERUSER or NOSUPERUSER"));
            }
        }
        Ok(RoleOptions {
            password,
            superuser,
            login,
        })
    }

    /// `CREATE USER name [options]`, or with `role` `CREATE ROLE name
    /// [options]`, which differs only in that its role cannot log in
    /// unless `LOGIN` is given: a group.
    fn create_user(&mut self, role: bool) -> Result<FreshetStatement, SqlError> {
        let name = self.ident("user name")?;
        let options = self.user_options(true)?;
        Ok(FreshetStatement::CreateUser {
            name,
            password: options.password.flatten(),
            superuser: options.superuser.unwrap_or(false),
            login: options.login.unwrap_or(!role),
        })
    }

    /// `GRANT role [, …] TO member [, …] [WITH ADMIN OPTION]` or `REVOKE
    /// [ADMIN OPTION FOR] role [, …] FROM member [, …] [CASCADE |
    /// RESTRICT]`; `None` (nothing consumed) for a GRANT or REVOKE with
    /// `ON`, which grants privileges on objects. As in PostgreSQL, what
    /// comes before `TO` is then a list of role names, keywords too
    /// (`GRANT select TO alice` names a role `select`).
    fn role_membership(&mut self) -> Result<Option<FreshetStatement>, SqlError> {
        let grant = self.peek_is(0, "GRANT");
        let to = if grant { "TO" } else { "FROM" };
        let has_on = (1..)
            .take_while(|&n| {
                self.p.peek_nth_token_ref(n).token != Token::EOF && !self.peek_is(n, to)
            })
            .any(|n| self.peek_is(n, "ON"));
        if has_on {
            return Ok(None);
        }
        self.advance(1);
        let admin_option = !grant && self.eat_seq(&["ADMIN", "OPTION", "FOR"]);
        if !grant && self.peek_is(0, "GRANT") && self.peek_is(1, "OPTION") {
            return Err(SqlError::unsupported(
                "GRANT OPTION FOR is not supported",
                self.here(),
            ));
        }
        let mut roles = Vec::new();
        loop {
            roles.push(self.ident("role name")?);
            if !self.eat_token(&Token::Comma) {
                break;
            }
        }
        self.expect(to)?;
        let mut members = Vec::new();
        loop {
            members.push(if self.eat("CURRENT_USER") {
                Owner::CurrentUser
            } else if self.eat("CURRENT_ROLE") {
                Owner::CurrentRole
            } else if self.eat("SESSION_USER") {
                Owner::SessionUser
            } else {
                Owner::Ident(self.ident("role name")?)
            });
            if !self.eat_token(&Token::Comma) {
                break;
            }
        }
        let admin_option = if grant {
            self.eat_seq(&["WITH", "ADMIN", "OPTION"])
        } else {
            admin_option
        };
        if self.peek_is(0, "GRANTED") {
            return Err(SqlError::unsupported(
                "GRANTED BY is not supported",
                self.here(),
            ));
        }
        if !grant {
            self.cascade();
        }
        if self.p.peek_token_ref().token != Token::EOF {
            return Err(self.expected("end of statement"));
        }
        Ok(Some(FreshetStatement::RoleMembership {
            grant,
            roles,
            members,
            admin_option,
        }))
    }

    /// Whether `[IF EXISTS] name OWNER TO` starts `n` tokens ahead.
    fn owner_to_after_name(&self, mut n: usize) -> bool {
        if self.peek_is(n, "IF") && self.peek_is(n + 1, "EXISTS") {
            n += 2;
        }
        loop {
            if !matches!(self.p.peek_nth_token_ref(n).token, Token::Word(_)) {
                return false;
            }
            n += 1;
            if self.p.peek_nth_token_ref(n).token != Token::Period {
                break;
            }
            n += 1;
        }
        self.peek_is(n, "OWNER") && self.peek_is(n + 1, "TO")
    }

    /// `OWNER TO {role | CURRENT_USER | CURRENT_ROLE | SESSION_USER}`, the
    /// end of an [`FreshetStatement::AlterOwner`].
    fn owner_to(
        &mut self,
        object: OwnedObject,
        name: ObjectName,
        if_exists: bool,
    ) -> Result<FreshetStatement, SqlError> {
        self.expect("OWNER")?;
        self.expect("TO")?;
        let owner = if self.eat("CURRENT_USER") {
            Owner::CurrentUser
        } else if self.eat("CURRENT_ROLE") {
            Owner::CurrentRole
        } else if self.eat("SESSION_USER") {
            Owner::SessionUser
        } else {
            Owner::Ident(self.ident("role name")?)
        };
        if self.p.peek_token_ref().token != Token::EOF {
            return Err(self.expected("end of statement"));
        }
        Ok(FreshetStatement::AlterOwner {
            object,
            name,
            if_exists,
            owner,
        })
    }

    fn alter_user(&mut self) -> Result<FreshetStatement, SqlError> {
        let name = self.ident("user name")?;
        if self.peek_is(0, "RENAME") {
            return Err(SqlError::unsupported(
                "renaming users is not supported",
                self.here(),
            ));
        }
        if self.p.peek_token_ref().token == Token::EOF {
            return Err(self.expected("PASSWORD, SUPERUSER or NOSUPERUSER"));
        }
        if let Some(change) = self.role_setting_change()? {
            return Ok(FreshetStatement::AlterUserSetting { name, change });
        }
        let options = self.user_options(false)?;
        if options.password.is_none() && options.superuser.is_none() && options.login.is_none() {
            return Err(self.expected("PASSWORD, SUPERUSER or NOSUPERUSER"));
        }
        Ok(FreshetStatement::AlterUser {
            name,
            password: options.password.flatten(),
            superuser: options.superuser,
            login: options.login,
        })
    }

    /// `SET parameter {TO | =} {value [, …] | DEFAULT}`, `RESET parameter`
    /// or `RESET ALL` after `ALTER USER name`; `None` (nothing consumed) for
    /// the user options, which Snowflake also writes after `SET`
    /// (`SET PASSWORD = '…'`).
    fn role_setting_change(&mut self) -> Result<Option<RoleSettingChange>, SqlError> {
        const OPTIONS: [&str; 6] = [
            "PASSWORD",
            "SUPERUSER",
            "NOSUPERUSER",
            "LOGIN",
            "NOLOGIN",
            "INHERIT",
        ];
        let is_set = self.peek_is(0, "SET") && !OPTIONS.iter().any(|o| self.peek_is(1, o));
        let is_reset = self.peek_is(0, "RESET");
        if !is_set && !is_reset {
            return Ok(None);
        }
        self.advance(1);
        if is_reset && self.eat("ALL") {
            return self.setting_end(RoleSettingChange::ResetAll);
        }
        let parameter = self.setting_name()?;
        if is_reset {
            return self.setting_end(RoleSettingChange::Reset { parameter });
        }
        if !self.eat("TO") && !self.p.consume_token(&Token::Eq) {
            return Err(self.expected("TO or ="));
        }
        if self.eat("DEFAULT") {
            return self.setting_end(RoleSettingChange::Reset { parameter });
        }
        let mut items = Vec::new();
        loop {
            let next = self.p.next_token();
            let item = match next.token {
                Token::SingleQuotedString(s) => s,
                Token::Number(n, _) => n,
                Token::Minus => match self.p.next_token().token {
                    Token::Number(n, _) => format!("-{n}"),
                    _ => return Err(self.expected("a number")),
                },
                Token::Word(w) => w.value,
                _ => return Err(self.expected("a setting value")),
            };
            items.push(item);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        let value = items.join(", ");
        self.setting_end(RoleSettingChange::Set { parameter, value })
    }

    /// A setting's name (`statement_timeout`, `myapp.flag`), lowercase.
    fn setting_name(&mut self) -> Result<String, SqlError> {
        let mut name = self.ident("a setting name")?.value.to_ascii_lowercase();
        while self.p.consume_token(&Token::Period) {
            name.push('.');
            name.push_str(&self.ident("a setting name")?.value.to_ascii_lowercase());
        }
        Ok(name)
    }

    /// `change`, if the statement ends here; `IN DATABASE` is refused.
    fn setting_end(
        &mut self,
        change: RoleSettingChange,
    ) -> Result<Option<RoleSettingChange>, SqlError> {
        if self.peek_is(0, "IN") {
            return Err(SqlError::unsupported(
                "settings for a role in one database are not supported; ALTER ROLE … SET applies to every database",
                self.here(),
            ));
        }
        if self.p.peek_token_ref().token != Token::EOF {
            return Err(self.expected("the end of the statement"));
        }
        Ok(Some(change))
    }

    // -- dynamic tables ------------------------------------------------------

    fn target_lag_value(&mut self) -> Result<TargetLag, SqlError> {
        if self.eat("DOWNSTREAM") {
            return Ok(TargetLag::Downstream);
        }
        let (text, span) = self.string("a TARGET_LAG string such as '5 minutes', or DOWNSTREAM")?;
        TargetLag::parse(&text).map_err(|e| e.at(self.pos(span)))
    }

    fn create_dynamic_table(
        &mut self,
        or_replace: bool,
        bindings: &[ModelBinding],
    ) -> Result<FreshetStatement, SqlError> {
        let if_not_exists_span = self.p.peek_token_ref().span;
        let if_not_exists = self.eat_seq(&["IF", "NOT", "EXISTS"]);
        if or_replace && if_not_exists {
            return Err(SqlError::syntax(
                "OR REPLACE and IF NOT EXISTS cannot both be specified",
                self.pos(if_not_exists_span),
            ));
        }
        let name = self.object_name("dynamic table name", 3)?;

        let mut columns = Vec::new();
        if self.eat_token(&Token::LParen) {
            loop {
                let column = self.ident("column name")?;
                let comment = if self.eat("COMMENT") {
                    self.optional_eq();
                    Some(self.string("comment string")?.0)
                } else {
                    None
                };
                columns.push((column, comment));
                if !self.eat_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen, "',' or ')'")?;
        }

        let mut target_lag = None;
        let mut warehouse = None;
        let mut refresh_mode = None;
        let mut initialize = None;
        let mut comment = None;
        let as_token = loop {
            let next = self.p.peek_token();
            let clause = match &next.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                Token::EOF => {
                    return Err(SqlError::syntax(
                        "expected AS <query> to end CREATE DYNAMIC TABLE",
                        self.end_position(),
                    ))
                }
                _ => String::new(),
            };
            match clause.as_str() {
                "AS" => break self.p.next_token(),
                "TARGET_LAG" => {
                    if target_lag.is_some() {
                        return Err(self.duplicate("TARGET_LAG", next.span));
                    }
                    self.advance(1);
                    self.optional_eq();
                    target_lag = Some(self.target_lag_value()?);
                }
                "WAREHOUSE" => {
                    if warehouse.is_some() {
                        return Err(self.duplicate("WAREHOUSE", next.span));
                    }
                    self.advance(1);
                    self.optional_eq();
                    warehouse = Some(self.ident("warehouse name")?);
                }
                "REFRESH_MODE" => {
                    if refresh_mode.is_some() {
                        return Err(self.duplicate("REFRESH_MODE", next.span));
                    }
                    self.advance(1);
                    self.optional_eq();
                    let (value, span) = self.option_word("AUTO, FULL or INCREMENTAL")?;
                    refresh_mode = Some(match value.as_str() {
                        "AUTO" => RefreshMode::Auto,
                        "FULL" => RefreshMode::Full,
                        "INCREMENTAL" => RefreshMode::Incremental,
                        _ => {
                            return Err(SqlError::syntax(
                                format!(
                                "invalid REFRESH_MODE {value}: expected AUTO, FULL or INCREMENTAL"
                            ),
                                self.pos(span),
                            ))
                        }
                    });
                }
                "INITIALIZE" => {
                    if initialize.is_some() {
                        return Err(self.duplicate("INITIALIZE", next.span));
                    }
                    self.advance(1);
                    self.optional_eq();
                    let (value, span) = self.option_word("ON_CREATE or ON_SCHEDULE")?;
                    initialize = Some(match value.as_str() {
                        "ON_CREATE" => Initialize::OnCreate,
                        "ON_SCHEDULE" => Initialize::OnSchedule,
                        _ => {
                            return Err(SqlError::syntax(
                                format!(
                                    "invalid INITIALIZE {value}: expected ON_CREATE or ON_SCHEDULE"
                                ),
                                self.pos(span),
                            ))
                        }
                    });
                }
                "COMMENT" => {
                    if comment.is_some() {
                        return Err(self.duplicate("COMMENT", next.span));
                    }
                    self.advance(1);
                    self.optional_eq();
                    comment = Some(self.string("comment string")?.0);
                }
                _ => {
                    return Err(self.expected(
                        "TARGET_LAG, WAREHOUSE, REFRESH_MODE, INITIALIZE, COMMENT or AS",
                    ))
                }
            }
        };
        let Some(target_lag) = target_lag else {
            return Err(SqlError::syntax(
                "CREATE DYNAMIC TABLE requires TARGET_LAG",
                self.pos(as_token.span),
            ));
        };
        let query = self.query()?;
        let text_start = self.map.char_offset(as_token.span.end).unwrap_or(self.end);
        let query_text = self.map.slice(text_start, self.end).trim().to_string();
        Ok(FreshetStatement::CreateDynamicTable(CreateDynamicTable {
            or_replace,
            if_not_exists,
            name,
            columns,
            target_lag,
            warehouse,
            refresh_mode: refresh_mode.unwrap_or_default(),
            initialize: initialize.unwrap_or_default(),
            comment,
            query,
            query_text,
            model_bindings: bindings.to_vec(),
        }))
    }

    fn alter_dynamic_table(&mut self) -> Result<FreshetStatement, SqlError> {
        let name = self.object_name("dynamic table name", 3)?;
        if self.peek_is(0, "OWNER") {
            return self.owner_to(OwnedObject::DynamicTable, name, false);
        }
        let action = if self.eat("SUSPEND") {
            AlterDynamicTableAction::Suspend
        } else if self.eat("RESUME") {
            AlterDynamicTableAction::Resume
        } else if self.eat("REFRESH") {
            AlterDynamicTableAction::Refresh
        } else if self.eat_seq(&["RENAME", "TO"]) {
            AlterDynamicTableAction::RenameTo(self.object_name("new dynamic table name", 3)?)
        } else if self.eat("SET") {
            if self.eat("TARGET_LAG") {
                self.optional_eq();
                AlterDynamicTableAction::SetTargetLag(self.target_lag_value()?)
            } else if self.eat("WAREHOUSE") {
                self.optional_eq();
                AlterDynamicTableAction::SetWarehouse(self.ident("warehouse name")?)
            } else if self.eat("COMMENT") {
                self.optional_eq();
                AlterDynamicTableAction::SetComment(self.string("comment string")?.0)
            } else {
                return Err(self.expected("TARGET_LAG, WAREHOUSE or COMMENT"));
            }
        } else {
            return Err(self.expected("SUSPEND, RESUME, REFRESH, SET, RENAME TO or OWNER TO"));
        };
        Ok(FreshetStatement::AlterDynamicTable { name, action })
    }

    // -- models --------------------------------------------------------------

    /// `$n`, a bytea literal, or a file path string.
    fn model_source(&mut self) -> Result<ModelSource, SqlError> {
        let next = self.p.peek_token();
        let position = self.pos(next.span);
        match &next.token {
            Token::Placeholder(p) if p.starts_with('$') => {
                self.advance(1);
                match p[1..].parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(ModelSource::Parameter(n)),
                    _ => Err(SqlError::syntax(
                        format!("invalid parameter reference {p}"),
                        position,
                    )),
                }
            }
            Token::HexStringLiteral(hex) => {
                self.advance(1);
                decode_hex(hex, position).map(ModelSource::Bytes)
            }
            Token::SingleQuotedString(text) | Token::EscapedStringLiteral(text) => {
                let escaped = matches!(next.token, Token::EscapedStringLiteral(_));
                self.advance(1);
                let bytea = if self.p.peek_token_ref().token == Token::DoubleColon {
                    self.advance(1);
                    if !self.eat("BYTEA") {
                        return Err(self.expected("BYTEA (model bytes must be cast to bytea)"));
                    }
                    true
                } else {
                    false
                };
                let hex_prefixed = text.starts_with("\\x") || text.starts_with("\\X");
                if bytea || (escaped && hex_prefixed) {
                    let Some(hex) = text.get(2..).filter(|_| hex_prefixed) else {
                        return Err(SqlError::unsupported(
                            "only hex-format bytea literals ('\\x...') are supported",
                            position,
                        ));
                    };
                    decode_hex(hex, position).map(ModelSource::Bytes)
                } else {
                    Ok(ModelSource::Path(text.clone()))
                }
            }
            Token::AtSign => Err(SqlError::unsupported(
                "stage references are not supported; use a quoted file path or a $n parameter",
                position,
            )),
            _ => Err(self.expected("$n parameter, bytea literal or quoted file path")),
        }
    }

    fn create_model(&mut self, or_replace: bool) -> Result<FreshetStatement, SqlError> {
        let if_not_exists_span = self.p.peek_token_ref().span;
        let if_not_exists = self.eat_seq(&["IF", "NOT", "EXISTS"]);
        if or_replace && if_not_exists {
            return Err(SqlError::syntax(
                "OR REPLACE and IF NOT EXISTS cannot both be specified",
                self.pos(if_not_exists_span),
            ));
        }
        let name = self.object_name("model name", 3)?;
        let mut version = None;
        let mut source = None;
        let mut comment = None;
        loop {
            let next = self.p.peek_token();
            if next.token == Token::EOF {
                break;
            }
            // `WITH VERSION v` is the documented (Snowflake) spelling; the bare
            // `VERSION v` is kept for compatibility with earlier scripts.
            if self.eat_seq(&["WITH", "VERSION"]) || self.eat("VERSION") {
                if version.is_some() {
                    return Err(self.duplicate("VERSION", next.span));
                }
                version = Some(self.ident("version name")?);
            } else if self.eat("FROM") {
                if source.is_some() {
                    return Err(self.duplicate("FROM", next.span));
                }
                source = Some(self.model_source()?);
            } else if self.eat("COMMENT") {
                if comment.is_some() {
                    return Err(self.duplicate("COMMENT", next.span));
                }
                self.optional_eq();
                comment = Some(self.string("comment string")?.0);
            } else {
                return Err(self.expected("WITH VERSION, FROM or COMMENT"));
            }
        }
        let Some(source) = source else {
            return Err(SqlError::syntax(
                "CREATE MODEL requires FROM <$n | bytea literal | 'path'>",
                self.end_position(),
            ));
        };
        Ok(FreshetStatement::CreateModel {
            or_replace,
            if_not_exists,
            name,
            version,
            source,
            comment,
        })
    }

    fn alter_model(&mut self) -> Result<FreshetStatement, SqlError> {
        let name = self.object_name("model name", 3)?;
        if self.peek_is(0, "OWNER") {
            return self.owner_to(OwnedObject::Model, name, false);
        }
        let action = if self.eat_seq(&["ADD", "VERSION"]) {
            let version = self.ident("version name")?;
            self.expect("FROM")?;
            AlterModelAction::AddVersion {
                version,
                source: self.model_source()?,
            }
        } else if self.eat_seq(&["DROP", "VERSION"]) {
            AlterModelAction::DropVersion(self.ident("version name")?)
        } else if self.eat_seq(&["RENAME", "TO"]) {
            AlterModelAction::RenameTo(self.object_name("new model name", 3)?)
        } else if self.eat("VERSION") {
            let version = self.ident("version name")?;
            if self.eat("SET") {
                self.expect("ALIAS")?;
                self.optional_eq();
                AlterModelAction::SetVersionAlias {
                    version,
                    alias: self.ident("alias name")?,
                }
            } else if self.eat("UNSET") {
                self.expect("ALIAS")?;
                AlterModelAction::UnsetVersionAlias { version }
            } else {
                return Err(self.expected("SET ALIAS or UNSET ALIAS"));
            }
        } else if self.eat("SET") {
            if self.eat("DEFAULT_VERSION") {
                self.optional_eq();
                let next = self.p.peek_token();
                let value = match &next.token {
                    Token::Word(w) => normalize_ident(&word_ident(w, next.span)),
                    Token::SingleQuotedString(s) => s.clone(),
                    _ => return Err(self.expected("version name")),
                };
                self.advance(1);
                AlterModelAction::SetDefaultVersion(value)
            } else if self.eat("COMMENT") {
                self.optional_eq();
                AlterModelAction::SetComment(self.string("comment string")?.0)
            } else {
                return Err(self.expected("DEFAULT_VERSION or COMMENT"));
            }
        } else {
            return Err(self.expected("ADD VERSION, DROP VERSION, VERSION, SET or RENAME TO"));
        };
        Ok(FreshetStatement::AlterModel { name, action })
    }

    // -- SHOW ------------------------------------------------------------------

    /// Recognises Freshet's `SHOW` forms; `None` leaves the statement to
    /// sqlparser (Postgres `SHOW var`, `SHOW ALL`, `SHOW COLUMNS` ...).
    fn show(&mut self) -> Result<Option<FreshetStatement>, SqlError> {
        let n = if self.peek_is(1, "TERSE") { 2 } else { 1 };
        if self.peek_is(n, "DYNAMIC") && self.peek_is(n + 1, "TABLES") {
            self.advance(n + 2);
            let (like, scope) = self.show_filters(true)?;
            return Ok(Some(FreshetStatement::ShowDynamicTables { like, scope }));
        }
        if n == 1 && self.peek_is(1, "MODELS") {
            self.advance(2);
            let (like, scope) = self.show_filters(true)?;
            return Ok(Some(FreshetStatement::ShowModels { like, scope }));
        }
        if n == 1 && self.peek_is(1, "GRANTS") && self.peek_is(2, "ON") && self.peek_is(3, "MODEL")
        {
            self.advance(4);
            let model = self.object_name("model name", 3)?;
            return Ok(Some(FreshetStatement::ShowModelGrants { model }));
        }
        if n == 1 && self.peek_is(1, "VERSIONS") {
            self.advance(2);
            let like = self.like()?;
            self.expect("IN")?;
            self.expect("MODEL")?;
            let model = self.object_name("model name", 3)?;
            return Ok(Some(FreshetStatement::ShowVersions { like, model }));
        }
        if self.peek_is(n, "TABLES") {
            self.advance(n + 1);
            let (like, scope) = self.show_filters(true)?;
            return Ok(Some(FreshetStatement::ShowTables { like, scope }));
        }
        if self.peek_is(n, "SCHEMAS") {
            self.advance(n + 1);
            let like = self.like()?;
            let database = if self.eat("IN") || self.eat("FROM") {
                self.eat("DATABASE");
                Some(self.ident("database name")?)
            } else {
                None
            };
            let like = match like {
                Some(like) => Some(like),
                None => self.like()?,
            };
            return Ok(Some(FreshetStatement::ShowSchemas { like, database }));
        }
        if self.peek_is(n, "DATABASES") {
            self.advance(n + 1);
            let like = self.like()?;
            return Ok(Some(FreshetStatement::ShowDatabases { like }));
        }
        Ok(None)
    }

    /// `GRANT … ON MODEL …` or `REVOKE … ON MODEL …`; `None` (nothing
    /// consumed) for a GRANT or REVOKE on anything else, which sqlparser
    /// parses.
    fn model_privileges(&mut self) -> Result<Option<FreshetStatement>, SqlError> {
        let on_model = (1..)
            .take_while(|&n| self.p.peek_nth_token_ref(n).token != Token::EOF)
            .find(|&n| self.peek_is(n, "ON"))
            .is_some_and(|on| self.peek_is(on + 1, "MODEL"));
        if !on_model {
            return Ok(None);
        }
        let grant = self.eat("GRANT");
        if !grant {
            self.expect("REVOKE")?;
            if self.peek_is(0, "GRANT") && self.peek_is(1, "OPTION") {
                return Err(SqlError::unsupported(
                    "GRANT OPTION FOR is not supported",
                    self.here(),
                ));
            }
        }
        let mut privileges = Vec::new();
        if self.peek_is(0, "ALL") {
            privileges.push(self.ident("privilege")?);
            self.eat("PRIVILEGES");
        } else {
            loop {
                privileges.push(self.ident("privilege")?);
                if !self.eat_token(&Token::Comma) {
                    break;
                }
            }
        }
        self.expect("ON")?;
        self.expect("MODEL")?;
        let mut models = Vec::new();
        loop {
            models.push(self.object_name("model name", 3)?);
            if !self.eat_token(&Token::Comma) {
                break;
            }
        }
        self.expect(if grant { "TO" } else { "FROM" })?;
        let mut grantees = Vec::new();
        loop {
            self.eat("ROLE");
            grantees.push(if self.eat("PUBLIC") {
                GranteeSpec::Public
            } else {
                GranteeSpec::Role(self.ident("role name")?)
            });
            if !self.eat_token(&Token::Comma) {
                break;
            }
        }
        if grant {
            if self.peek_is(0, "WITH") {
                return Err(SqlError::unsupported(
                    "WITH GRANT OPTION is not supported",
                    self.here(),
                ));
            }
        } else {
            self.cascade();
        }
        Ok(Some(FreshetStatement::ModelPrivileges {
            grant,
            privileges,
            models,
            grantees,
        }))
    }

    fn like(&mut self) -> Result<Option<String>, SqlError> {
        if self.eat("LIKE") {
            Ok(Some(self.string("LIKE pattern string")?.0))
        } else {
            Ok(None)
        }
    }

    /// `[LIKE 'pat'] [IN scope]`, in either order.
    fn show_filters(&mut self, allow_scope: bool) -> Result<(Option<String>, ShowScope), SqlError> {
        let mut like = None;
        let mut scope = None;
        loop {
            let next = self.p.peek_token();
            if self.peek_is(0, "LIKE") {
                if like.is_some() {
                    return Err(self.duplicate("LIKE", next.span));
                }
                like = self.like()?;
            } else if allow_scope && (self.peek_is(0, "IN") || self.peek_is(0, "FROM")) {
                if scope.is_some() {
                    return Err(self.duplicate("IN", next.span));
                }
                self.advance(1);
                scope = Some(self.show_scope()?);
            } else {
                break;
            }
        }
        Ok((like, scope.unwrap_or_default()))
    }

    fn show_scope(&mut self) -> Result<ShowScope, SqlError> {
        if self.peek_is(0, "ACCOUNT") {
            return Err(SqlError::unsupported(
                "IN ACCOUNT is not supported; use IN DATABASE or IN SCHEMA",
                self.here(),
            ));
        }
        if self.eat("DATABASE") {
            return Ok(ShowScope::Database(self.ident("database name")?));
        }
        self.eat("SCHEMA");
        Ok(ShowScope::Schema(self.object_name("schema name", 2)?))
    }
}

fn word_ident(w: &Word, span: Span) -> Ident {
    Ident {
        value: w.value.clone(),
        quote_style: w.quote_style,
        span,
    }
}

fn object_parts(name: ObjectName) -> Vec<Ident> {
    name.0
        .into_iter()
        .filter_map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident),
            _ => None,
        })
        .collect()
}

/// Decodes hex digits (whitespace between byte pairs allowed, as Postgres
/// does for bytea input). Errors are `22P02` at `position`.
fn decode_hex(hex: &str, position: Option<usize>) -> Result<Vec<u8>, SqlError> {
    let invalid = |detail: &str| {
        SqlError::new(
            SqlErrorKind::InvalidTextRepresentation,
            format!("invalid hexadecimal model bytes: {detail}"),
            position,
        )
    };
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    let mut chars = hex.chars().filter(|c| !c.is_whitespace());
    while let Some(high) = chars.next() {
        let Some(low) = chars.next() else {
            return Err(invalid("odd number of digits"));
        };
        match (high.to_digit(16), low.to_digit(16)) {
            (Some(h), Some(l)) => bytes.push(((h << 4) | l) as u8),
            _ => return Err(invalid(&format!("invalid digit in \"{high}{low}\""))),
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_suffix_is_split_off() {
        let (msg, loc) = split_location("Expected: foo, found: bar at Line: 2, Column: 7");
        assert_eq!(msg, "Expected: foo, found: bar");
        assert_eq!(loc, Some(Location::new(2, 7)));
        let (msg, loc) = split_location("no location here");
        assert_eq!(msg, "no location here");
        assert_eq!(loc, None);
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("0a0B ff", None).unwrap(), vec![0x0a, 0x0b, 0xff]);
        assert_eq!(decode_hex("", None).unwrap(), Vec::<u8>::new());
        assert_eq!(decode_hex("abc", None).unwrap_err().sqlstate(), "22P02");
        assert_eq!(decode_hex("zz", None).unwrap_err().sqlstate(), "22P02");
    }
}
