//! The engine's single error type and its mapping to Postgres SQLSTATE codes.
//!
//! Every error a client can cause ends up here with a SQLSTATE, so that drivers
//! can react to the class of failure (retry on 40001, report 42P01 as a missing
//! table, …) instead of parsing messages.

/// An error raised while planning or executing a statement.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A failure with an explicit SQLSTATE chosen at the point of failure.
    #[error("{message}")]
    Sql {
        /// The five-character SQLSTATE code.
        sqlstate: &'static str,
        /// The human-readable message.
        message: String,
        /// 1-based character position in the statement text, for syntax errors.
        position: Option<usize>,
        /// PostgreSQL's DETAIL line, e.g. the duplicate key of a unique violation.
        detail: Option<String>,
        /// The database object the error is about, if any (boxed: most
        /// errors have none).
        object: Option<Box<ErrorObject>>,
    },
}

/// An engine error raised inside DataFusion (by a function or a rule
/// Freshet adds), so `?` carries it there; `planning::map_df_error` finds
/// it again, with its SQLSTATE, however DataFusion wrapped it.
impl From<EngineError> for datafusion::error::DataFusionError {
    fn from(e: EngineError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

/// The object an error is about, which PostgreSQL names in the
/// ErrorResponse's schema (`s`), table (`t`) and constraint (`n`) fields,
/// so that drivers can tell which constraint failed without parsing the
/// message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorObject {
    /// The storage table the storage layer named; the session turns it
    /// into `schema` and `table` before the error leaves the engine.
    pub(crate) table_id: Option<freshet_storage::TableId>,
    /// The relation's schema.
    pub schema: Option<String>,
    /// The relation's name.
    pub table: Option<String>,
    /// The constraint's name.
    pub constraint: Option<String>,
}

impl EngineError {
    /// Builds an error with the given SQLSTATE and message.
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        EngineError::Sql {
            sqlstate,
            message: message.into(),
            position: None,
            detail: None,
            object: None,
        }
    }

    /// The object the error is about (schema, table, constraint), if any.
    pub fn object(&self) -> Option<&ErrorObject> {
        match self {
            EngineError::Sql { object, .. } => object.as_deref(),
        }
    }

    /// The storage table named by a storage error, whose catalog name the
    /// session has not filled in yet.
    pub(crate) fn unnamed_table(&self) -> Option<freshet_storage::TableId> {
        self.object()
            .filter(|o| o.table.is_none())
            .and_then(|o| o.table_id)
    }

    /// Names the relation the error is about.
    pub(crate) fn name_table(&mut self, schema: &str, table: &str) {
        let EngineError::Sql { object, .. } = self;
        let object = object.get_or_insert_with(Default::default);
        object.schema = Some(schema.to_string());
        object.table = Some(table.to_string());
    }

    /// The DETAIL line sent with the error, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            EngineError::Sql { detail, .. } => detail.as_deref(),
        }
    }

    /// The SQLSTATE code sent to the client in the ErrorResponse.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            EngineError::Sql { sqlstate, .. } => sqlstate,
        }
    }

    /// The 1-based character position of a syntax error, if known.
    pub fn position(&self) -> Option<usize> {
        match self {
            EngineError::Sql { position, .. } => *position,
        }
    }
}

/// Converts a dialect-layer error, keeping its SQLSTATE and position.
pub(crate) fn from_sql_error(e: freshet_sql::SqlError) -> EngineError {
    EngineError::Sql {
        sqlstate: e.sqlstate(),
        position: e.position,
        message: e.to_string(),
        detail: None,
        object: None,
    }
}

/// Storage failures keep the SQLSTATE the storage layer chose.
impl From<&freshet_storage::StorageError> for EngineError {
    fn from(e: &freshet_storage::StorageError) -> Self {
        EngineError::Sql {
            sqlstate: e.sqlstate(),
            message: e.to_string(),
            position: None,
            detail: e.detail().map(str::to_string),
            object: e.violated_constraint().map(|(table, constraint)| {
                Box::new(ErrorObject {
                    table_id: Some(table),
                    constraint: Some(constraint.to_string()),
                    ..ErrorObject::default()
                })
            }),
        }
    }
}

impl From<freshet_storage::StorageError> for EngineError {
    fn from(e: freshet_storage::StorageError) -> Self {
        EngineError::from(&e)
    }
}
