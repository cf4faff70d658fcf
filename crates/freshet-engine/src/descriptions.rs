//! `obj_description(oid, catalog)` (and its one-argument form): the comment
//! of the relation an OID names, which psql's `\dt+`, `\dv+` and `\d+` show
//! as the Description. A dynamic table's `COMMENT = '…'` is its comment.
//! Only relations (`pg_class` objects) carry comments in Freshet; any other
//! object, and an OID the session has not seen, answers NULL, as PostgreSQL
//! does for an object without a comment. `shobj_description(oid, catalog)`
//! (databases and roles, `\l+` and `\du+`) is always NULL.
//!
//! `pg_get_viewdef(oid [, pretty])` is a view's query as it was written
//! (PostgreSQL prints its own reconstruction, with the same meaning), for
//! psql's `\d+` and `pg_views.definition`; NULL for anything else.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::provider::SessionShared;
use crate::relation_oids::RelationOids;

/// Registers `obj_description` and `shobj_description` for a session.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    oids: Arc<RelationOids>,
    shared: Arc<SessionShared>,
    database: &str,
) {
    let mut accepted = Vec::new();
    let mut shared_objects = Vec::new();
    for int in [DataType::Int32, DataType::Int64, DataType::UInt32] {
        accepted.push(TypeSignature::Exact(vec![int.clone()]));
        accepted.push(TypeSignature::Exact(vec![int.clone(), DataType::Utf8]));
        shared_objects.push(TypeSignature::Exact(vec![int, DataType::Utf8]));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(crate::pg_compat::NullText {
        name: "shobj_description",
        signature: Signature::one_of(shared_objects, Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(ObjDescription {
        oids: oids.clone(),
        shared: shared.clone(),
        database: database.to_string(),
        signature: Signature::one_of(accepted, Volatility::Volatile),
        text: RelationText::Comment,
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(ObjDescription {
        oids,
        shared,
        database: database.to_string(),
        signature: Signature::variadic_any(Volatility::Volatile),
        text: RelationText::ViewDefinition,
    }));
}

/// What a relation's text function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RelationText {
    /// `obj_description`: its comment.
    Comment,
    /// `pg_get_viewdef`: a view's query.
    ViewDefinition,
}

#[derive(Debug)]
struct ObjDescription {
    oids: Arc<RelationOids>,
    shared: Arc<SessionShared>,
    database: String,
    signature: Signature,
    text: RelationText,
}

impl PartialEq for ObjDescription {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.oids, &other.oids) && self.text == other.text
    }
}

impl Eq for ObjDescription {}

impl std::hash::Hash for ObjDescription {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl ScalarUDFImpl for ObjDescription {
    fn name(&self) -> &str {
        match self.text {
            RelationText::Comment => "obj_description",
            RelationText::ViewDefinition => "pg_get_viewdef",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let oids = arrays
            .first()
            .ok_or_else(|| DataFusionError::Plan(format!("{} needs an OID", self.name())))?;
        if self.text == RelationText::ViewDefinition {
            // pg_get_viewdef(name) is not read: a view named by text.
            let by_oid = oids.data_type().is_integer();
            let mut out = StringBuilder::new();
            for oid in crate::udf_args::oids(oids)? {
                let query = match oid {
                    Some(oid) if by_oid => self
                        .oids
                        .entry(&self.shared, &self.database, oid)?
                        .and_then(|e| match e.kind {
                            freshet_catalog::RelationKind::View { query_text, .. } => {
                                Some(query_text)
                            }
                            _ => None,
                        }),
                    _ => None,
                };
                out.append_option(query);
            }
            return Ok(ColumnarValue::Array(Arc::new(out.finish())));
        }
        let oids = crate::udf_args::oids(oids)?;
        let catalogs = match arrays.get(1) {
            Some(c) => Some(datafusion::arrow::compute::cast(c, &DataType::Utf8)?),
            None => None,
        };
        let mut out = StringBuilder::new();
        for (row, oid) in oids.into_iter().enumerate() {
            // Relations are pg_class objects; the one-argument form names
            // no catalog.
            let of_class = catalogs.as_ref().is_none_or(|c| {
                let c = c.as_string::<i32>();
                c.is_valid(row) && matches!(c.value(row), "pg_class" | "pg_catalog.pg_class")
            });
            let comment = match oid {
                Some(oid) if of_class => self
                    .oids
                    .entry(&self.shared, &self.database, oid)?
                    .and_then(|e| e.comment),
                _ => None,
            };
            out.append_option(comment);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
