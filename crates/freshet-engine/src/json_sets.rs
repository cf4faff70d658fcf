//! The pieces of a JSON document that PostgreSQL's set-returning JSON
//! functions return, as lists.
//!
//! `jsonb_array_elements(j)` returns one row per element of `j`, and
//! `jsonb_each(j)` one per member. Freshet runs a set-returning function as
//! `unnest` of a list ([`crate::set_returning`]): each function here gives
//! one such list for a document. A NULL document gives an empty list, so
//! it returns no rows, as in PostgreSQL. A document of the wrong kind is
//! 22023, worded as PostgreSQL words it for the function called.
//!
//! `json` keeps its text as given, so its members come in the order
//! written, repeated keys included, and its elements as the text they were
//! written in; `jsonb` has one member per key, in its key order.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListArray, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::json_text::syntax_error;
use crate::EngineError;

/// The set-returning JSON functions, by their SQL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum JsonSetFunction {
    /// `json_array_elements` / `jsonb_array_elements`.
    ArrayElements,
    /// `json_array_elements_text` / `jsonb_array_elements_text`.
    ArrayElementsText,
    /// `json_object_keys` / `jsonb_object_keys`.
    ObjectKeys,
    /// `json_each` / `jsonb_each`.
    Each,
    /// `json_each_text` / `jsonb_each_text`.
    EachText,
}

impl JsonSetFunction {
    /// The function `name` names, and whether it is the `jsonb` one.
    pub(crate) fn named(name: &str) -> Option<(JsonSetFunction, bool)> {
        let lower = name.to_ascii_lowercase();
        let (jsonb, rest) = if let Some(rest) = lower.strip_prefix("jsonb_") {
            (true, rest.to_string())
        } else {
            (false, lower.strip_prefix("json_")?.to_string())
        };
        let function = match rest.as_str() {
            "array_elements" => JsonSetFunction::ArrayElements,
            "array_elements_text" => JsonSetFunction::ArrayElementsText,
            "object_keys" => JsonSetFunction::ObjectKeys,
            "each" => JsonSetFunction::Each,
            "each_text" => JsonSetFunction::EachText,
            _ => return None,
        };
        Some((function, jsonb))
    }

    fn sql_name(self, jsonb: bool) -> String {
        let base = match self {
            JsonSetFunction::ArrayElements => "array_elements",
            JsonSetFunction::ArrayElementsText => "array_elements_text",
            JsonSetFunction::ObjectKeys => "object_keys",
            JsonSetFunction::Each => "each",
            JsonSetFunction::EachText => "each_text",
        };
        format!("{}_{base}", if jsonb { "jsonb" } else { "json" })
    }
}

/// What a list function takes from each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Piece {
    /// Each element's JSON text.
    Elements,
    /// Each element as `->>` gives it (JSON null is SQL NULL).
    ElementTexts,
    /// Each member's key.
    Keys,
    /// Each member's value, as JSON text.
    Values,
    /// Each member's value as `->>` gives it.
    ValueTexts,
}

/// The name of the list function that takes `piece` of a document for
/// `function` (which words its errors).
pub(crate) fn list_function(function: JsonSetFunction, jsonb: bool, piece: Piece) -> String {
    format!("freshet_{}_{piece:?}", function.sql_name(jsonb)).to_ascii_lowercase()
}

/// `freshet_ordinals(list)`: `1, 2, …` as long as the list, for `WITH
/// ORDINALITY`.
pub(crate) const ORDINALS: &str = "freshet_ordinals";

/// Registers the list functions and [`ORDINALS`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    static ALL: OnceLock<Vec<ScalarUDF>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let mut all = vec![ScalarUDF::new_from_impl(Ordinals {
            signature: Signature::any(1, Volatility::Immutable),
        })];
        for function in [
            JsonSetFunction::ArrayElements,
            JsonSetFunction::ArrayElementsText,
            JsonSetFunction::ObjectKeys,
            JsonSetFunction::Each,
            JsonSetFunction::EachText,
        ] {
            let pieces: &[Piece] = match function {
                JsonSetFunction::ArrayElements => &[Piece::Elements],
                JsonSetFunction::ArrayElementsText => &[Piece::ElementTexts],
                JsonSetFunction::ObjectKeys => &[Piece::Keys],
                JsonSetFunction::Each => &[Piece::Keys, Piece::Values],
                JsonSetFunction::EachText => &[Piece::Keys, Piece::ValueTexts],
            };
            for jsonb in [false, true] {
                for piece in pieces {
                    all.push(ScalarUDF::new_from_impl(JsonList {
                        name: list_function(function, jsonb, *piece),
                        function,
                        jsonb,
                        piece: *piece,
                        signature: Signature::any(1, Volatility::Immutable),
                    }));
                }
            }
        }
        all
    });
    for udf in all {
        ctx.register_udf(udf.clone());
    }
}

/// One list function (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonList {
    name: String,
    function: JsonSetFunction,
    jsonb: bool,
    piece: Piece,
    signature: Signature,
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl ScalarUDFImpl for JsonList {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(text_list())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [docs] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{} takes one argument",
                    self.name
                )));
            };
            let docs = datafusion::arrow::compute::cast(docs, &DataType::Utf8)?;
            let mut out = ListBuilder::new(StringBuilder::new());
            for doc in docs.as_string::<i32>().iter() {
                if let Some(doc) = doc {
                    self.pieces(doc, out.values())?;
                }
                // A NULL document: an empty list, so no rows.
                out.append(true);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

/// What a JSON value is, by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    Scalar,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        _ => Kind::Scalar,
    }
}

impl JsonList {
    /// Appends this function's pieces of `doc` to `out`.
    fn pieces(&self, doc: &str, out: &mut StringBuilder) -> Result<(), EngineError> {
        // A `jsonb` function reads its argument as `jsonb`: a text literal
        // (PostgreSQL's `unknown`) in jsonb's form, so its pieces are too
        // (`1e2` is `100`, `{"b" : 2}` is `{"b": 2}`).
        let canonical;
        let doc = if self.jsonb {
            canonical = crate::json_text::jsonb_text(doc)?;
            canonical.as_str()
        } else {
            doc
        };
        let raw: &RawValue = serde_json::from_str(doc).map_err(syntax_error)?;
        let found = kind(raw);
        let wanted = match self.function {
            JsonSetFunction::ArrayElements | JsonSetFunction::ArrayElementsText => Kind::Array,
            _ => Kind::Object,
        };
        if found != wanted {
            return Err(self.wrong_kind(found));
        }
        let text_of =
            |value: &RawValue, out: &mut StringBuilder| match crate::json_text::as_text(value) {
                Some(text) => out.append_value(text),
                None => out.append_null(),
            };
        match self.piece {
            Piece::Elements | Piece::ElementTexts => {
                let items: Vec<&RawValue> = serde_json::from_str(doc).map_err(syntax_error)?;
                for item in items {
                    if self.piece == Piece::Elements {
                        out.append_value(item.get());
                    } else {
                        text_of(item, out);
                    }
                }
            }
            Piece::Keys | Piece::Values | Piece::ValueTexts => {
                let members = if self.jsonb {
                    crate::json_text::jsonb_members(doc)?
                } else {
                    serde_json::from_str::<Ordered>(doc)
                        .map_err(syntax_error)?
                        .0
                };
                for (key, value) in members {
                    match self.piece {
                        Piece::Keys => out.append_value(key),
                        Piece::Values => out.append_value(value.get()),
                        _ => text_of(value, out),
                    }
                }
            }
        }
        Ok(())
    }

    /// PostgreSQL's 22023 for a document of the `found` kind.
    fn wrong_kind(&self, found: Kind) -> EngineError {
        let name = self.function.sql_name(self.jsonb);
        let what = |object_word: &str| match found {
            Kind::Object => object_word.to_string(),
            Kind::Array => "an array".to_string(),
            Kind::Scalar => "a scalar".to_string(),
        };
        let message = match (self.function, self.jsonb) {
            (JsonSetFunction::ArrayElements | JsonSetFunction::ArrayElementsText, true) => {
                format!("cannot extract elements from {}", what("an object"))
            }
            (JsonSetFunction::ArrayElements | JsonSetFunction::ArrayElementsText, false) => {
                format!("cannot call {name} on {}", what("a non-array"))
            }
            (JsonSetFunction::ObjectKeys, _) => format!("cannot call {name} on {}", what("")),
            (JsonSetFunction::Each | JsonSetFunction::EachText, true) => {
                format!("cannot call {name} on a non-object")
            }
            (JsonSetFunction::Each | JsonSetFunction::EachText, false) => match found {
                Kind::Array => "cannot deconstruct an array as an object".to_string(),
                _ => "cannot deconstruct a scalar".to_string(),
            },
        };
        EngineError::new("22023", message)
    }
}

/// A JSON object's members in the order written, repeated keys included.
struct Ordered<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Ordered<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Ordered<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// `freshet_ordinals(list)` (see [`ORDINALS`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Ordinals {
    signature: Signature,
}

impl ScalarUDFImpl for Ordinals {
    fn name(&self) -> &str {
        ORDINALS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Int64,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [lists] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{ORDINALS} takes one argument"
                )));
            };
            let lists: &ListArray = lists.as_list_opt::<i32>().ok_or_else(|| {
                DataFusionError::Internal(format!("{ORDINALS} of {}", lists.data_type()))
            })?;
            let mut out = ListBuilder::new(Int64Builder::new());
            for row in 0..lists.len() {
                let n = if lists.is_null(row) {
                    0
                } else {
                    lists.value_length(row)
                };
                for i in 1..=i64::from(n) {
                    out.values().append_value(i);
                }
                out.append(true);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(name: &str, piece: Piece, doc: &str) -> Result<Vec<Option<String>>, String> {
        let (function, jsonb) = JsonSetFunction::named(name).unwrap();
        let list = JsonList {
            name: list_function(function, jsonb, piece),
            function,
            jsonb,
            piece,
            signature: Signature::any(1, Volatility::Immutable),
        };
        let mut out = StringBuilder::new();
        list.pieces(doc, &mut out).map_err(|e| e.to_string())?;
        Ok(out.finish().iter().map(|v| v.map(str::to_string)).collect())
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn pieces_follow_postgresql() {
        // Each answer is PostgreSQL 15's.
        let doc = r#"[1, "a", null, {"x":  1}]"#;
        assert_eq!(
            pieces("json_array_elements", Piece::Elements, doc),
            Ok(some(&["1", "\"a\"", "null", "{\"x\":  1}"]))
        );
        assert_eq!(
            pieces("jsonb_array_elements_text", Piece::ElementTexts, doc),
            Ok(vec![
                Some("1".into()),
                Some("a".into()),
                None,
                Some("{\"x\": 1}".into())
            ])
        );
        let doc = r#"{"b": 1, "a": 2, "b": 3}"#;
        assert_eq!(
            pieces("json_object_keys", Piece::Keys, doc),
            Ok(some(&["b", "a", "b"]))
        );
        assert_eq!(
            pieces("jsonb_object_keys", Piece::Keys, doc),
            Ok(some(&["a", "b"]))
        );
        assert_eq!(
            pieces(
                "jsonb_each",
                Piece::Keys,
                r#"{"b": 1, "aa": null, "a": "x"}"#
            ),
            Ok(some(&["a", "b", "aa"]))
        );
        assert_eq!(
            pieces(
                "jsonb_each_text",
                Piece::ValueTexts,
                r#"{"b": 1, "aa": null}"#
            ),
            Ok(vec![Some("1".into()), None])
        );
        // jsonb's pieces are in jsonb's form, json's as written.
        let doc = r#"[{"b" : 2}, 1e2]"#;
        assert_eq!(
            pieces("jsonb_array_elements_text", Piece::ElementTexts, doc),
            Ok(some(&["{\"b\": 2}", "100"]))
        );
        assert_eq!(
            pieces("json_array_elements_text", Piece::ElementTexts, doc),
            Ok(some(&["{\"b\" : 2}", "1e2"]))
        );
        for (name, piece, doc, message) in [
            (
                "jsonb_array_elements",
                Piece::Elements,
                "{}",
                "cannot extract elements from an object",
            ),
            (
                "jsonb_array_elements",
                Piece::Elements,
                "1",
                "cannot extract elements from a scalar",
            ),
            (
                "json_array_elements",
                Piece::Elements,
                "{}",
                "cannot call json_array_elements on a non-array",
            ),
            (
                "json_array_elements",
                Piece::Elements,
                "1",
                "cannot call json_array_elements on a scalar",
            ),
            (
                "jsonb_object_keys",
                Piece::Keys,
                "[]",
                "cannot call jsonb_object_keys on an array",
            ),
            (
                "json_object_keys",
                Piece::Keys,
                "1",
                "cannot call json_object_keys on a scalar",
            ),
            (
                "jsonb_each",
                Piece::Keys,
                "[]",
                "cannot call jsonb_each on a non-object",
            ),
            (
                "json_each",
                Piece::Keys,
                "[]",
                "cannot deconstruct an array as an object",
            ),
            (
                "jsonb_each_text",
                Piece::Keys,
                "1",
                "cannot call jsonb_each_text on a non-object",
            ),
        ] {
            let e = pieces(name, piece, doc).unwrap_err();
            assert!(e.contains(message), "{name}({doc}): {e}");
        }
    }
}
