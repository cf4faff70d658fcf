//! Arrow ⇄ Postgres type mapping and row encoding.
//!
//! arrow-pg does the heavy lifting (type OIDs, text and binary encodings). This
//! module adds Freshet's policy on top of it:
//!
//! * columns tagged `ARROW:extension:name = arrow.json`, and nested values
//!   (structs, maps, lists of structs — typically model predictions) are sent as
//!   Postgres `json`, so drivers hand users a dict instead of an anonymous
//!   composite record they cannot decode;
//! * Arrow types arrow-pg cannot map fall back to `json` as well rather than
//!   failing the whole query;
//! * parameter types declared by clients in Parse are mapped back to Arrow so the
//!   engine can plan with them.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, IntervalUnit, Schema, TimeUnit};
use datafusion::arrow::json::writer::{make_encoder, EncoderOptions};
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};

use freshet_engine::types::PgVector;

use crate::error::{WireError, WireResult};

/// How one result column goes on the wire.
#[derive(Debug, Clone)]
struct ColumnPlan {
    /// Convert the Arrow column to JSON text before encoding.
    to_json: bool,
    /// The Arrow field handed to arrow-pg's encoder (Utf8 for JSON columns).
    wire_field: FieldRef,
    /// Format the column with Freshet's Postgres-exact text output
    /// ([`crate::text`]) instead of arrow-pg.
    own_text: bool,
    /// The column is an `int2vector` or `oidvector`, encoded here.
    vector: Option<PgVector>,
    /// The column is `jsonb` sent in binary: its text after the format's
    /// version byte (1), as PostgreSQL's `jsonb_send` writes it.
    jsonb_binary: bool,
}

/// A result schema prepared for encoding: Postgres field descriptions plus the
/// per-column conversions needed to produce them.
#[derive(Debug, Clone)]
pub struct WireSchema {
    fields: Arc<Vec<FieldInfo>>,
    columns: Vec<ColumnPlan>,
}

impl WireSchema {
    /// Maps `schema` to Postgres fields using the per-column `format` the client
    /// requested in Bind (text when describing a statement).
    pub fn new(schema: &Schema, format: &Format) -> WireResult<Self> {
        let mut fields = Vec::with_capacity(schema.fields().len());
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (idx, field) in schema.fields().iter().enumerate() {
            let field = &without_stale_tags(field);
            let col_format = format_for(format, idx, schema.fields().len())?;
            let vector = PgVector::of(field);
            let (pg_type, to_json) = match vector {
                Some(PgVector::Int2) => (Type::INT2_VECTOR, false),
                Some(PgVector::Oid) => (Type::OID_VECTOR, false),
                None => pg_type_for_field(field),
            };
            let wire_field = if to_json && !is_string_type(field.data_type()) {
                Arc::new(Field::new(field.name(), DataType::Utf8, true))
            } else {
                field.clone()
            };
            let own_text =
                col_format == FieldFormat::Text && crate::text::supports(wire_field.data_type());
            let jsonb_binary = pg_type == Type::JSONB && col_format == FieldFormat::Binary;
            let origin = column_origin(field);
            // A column passed through from a table keeps its declared
            // modifier (varchar(40), numeric(10,2)); anything computed is
            // described without one, as PostgreSQL does for most
            // expressions.
            let type_modifier = origin
                .and_then(|_| freshet_engine::types::declared_pg_type(field))
                .map_or(-1, |(_, typmod)| typmod);
            fields.push(
                FieldInfo::new(
                    field.name().clone(),
                    origin.map(|(table, _)| table),
                    origin.map(|(_, column)| column),
                    pg_type.clone(),
                    col_format,
                )
                .with_type_modifier(type_modifier)
                .with_type_size(type_size(&pg_type)),
            );
            columns.push(ColumnPlan {
                to_json,
                wire_field,
                own_text,
                vector,
                jsonb_binary,
            });
        }
        Ok(WireSchema {
            fields: Arc::new(fields),
            columns,
        })
    }

    /// The field descriptions (for Describe and RowDescription).
    pub fn fields(&self) -> &Arc<Vec<FieldInfo>> {
        &self.fields
    }

    /// The RowDescription message for this schema.
    pub fn row_description(&self) -> RowDescription {
        RowDescription::new(self.fields.iter().map(FieldDescription::from).collect())
    }

    /// Encodes every row of `batch` as a DataRow in the negotiated formats.
    pub fn encode_batch(&self, batch: &RecordBatch) -> WireResult<Vec<DataRow>> {
        let mut prepared = self.prepare(batch)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut data = BytesMut::new();
        for row in 0..batch.num_rows() {
            for col in 0..self.columns.len() {
                prepared.encode_field(col, row, &mut data)?;
            }
            rows.push(DataRow::new(data.split(), self.columns.len() as i16));
        }
        Ok(rows)
    }

    /// Readies `batch` for field-by-field encoding (JSON conversion, null
    /// masks, per-column formatters).
    pub(crate) fn prepare(&self, batch: &RecordBatch) -> WireResult<PreparedBatch<'_>> {
        let columns = self.wire_columns(batch)?;
        let nulls = columns.iter().map(|c| c.logical_nulls()).collect();
        Ok(PreparedBatch {
            schema: self,
            columns,
            nulls,
            scratch: DataRowEncoder::new(self.fields.clone()),
        })
    }

    /// The batch's columns, with JSON conversions applied.
    fn wire_columns(&self, batch: &RecordBatch) -> WireResult<Vec<ArrayRef>> {
        if batch.num_columns() != self.columns.len() {
            return Err(WireError::Execution {
                sqlstate: "XX000",
                message: format!(
                    "result batch has {} columns but the row description has {}",
                    batch.num_columns(),
                    self.columns.len()
                ),
            });
        }
        let schema = batch.schema();
        batch
            .columns()
            .iter()
            .zip(&self.columns)
            .zip(schema.fields())
            .map(|((array, plan), field)| {
                if plan.to_json && !is_string_type(array.data_type()) {
                    to_json_strings(field, array.as_ref())
                } else {
                    Ok(array.clone())
                }
            })
            .collect()
    }
}

/// A result batch ready to be encoded one field at a time, so that callers
/// (DataRow streaming, COPY) never hold more than one encoded row.
pub(crate) struct PreparedBatch<'a> {
    schema: &'a WireSchema,
    columns: Vec<ArrayRef>,
    nulls: Vec<Option<NullBuffer>>,
    /// arrow-pg writes through a DataRowEncoder; used for binary fields and
    /// for text of types [`crate::text`] does not cover.
    scratch: DataRowEncoder,
}

impl PreparedBatch<'_> {
    /// Whether the field at (`col`, `row`) is NULL.
    pub(crate) fn is_null(&self, col: usize, row: usize) -> bool {
        self.nulls[col].as_ref().is_some_and(|n| n.is_null(row))
    }

    /// Appends the field at (`col`, `row`) as a DataRow field: a big-endian
    /// length (-1 for NULL) followed by the value in the column's format.
    pub(crate) fn encode_field(
        &mut self,
        col: usize,
        row: usize,
        out: &mut BytesMut,
    ) -> WireResult<()> {
        if self.is_null(col, row) {
            out.put_i32(-1);
            return Ok(());
        }
        let plan = &self.schema.columns[col];
        if let Some(vector) = plan.vector {
            let format = self.schema.fields[col].format();
            let bytes = encode_vector(self.columns[col].as_ref(), row, vector, format)?;
            let len = i32::try_from(bytes.len())
                .map_err(|_| WireError::protocol("54000", "field value is too large to send"))?;
            out.put_i32(len);
            out.extend_from_slice(&bytes);
            return Ok(());
        }
        if plan.jsonb_binary {
            let mut text = vec![1u8];
            crate::text::write_value(self.columns[col].as_ref(), row, &mut text)?;
            let len = i32::try_from(text.len())
                .map_err(|_| WireError::protocol("54000", "field value is too large to send"))?;
            out.put_i32(len);
            out.extend_from_slice(&text);
            return Ok(());
        }
        if plan.own_text {
            let mut text = Vec::new();
            crate::text::write_value(self.columns[col].as_ref(), row, &mut text)?;
            let len = i32::try_from(text.len())
                .map_err(|_| WireError::protocol("54000", "field value is too large to send"))?;
            out.put_i32(len);
            out.extend_from_slice(&text);
            return Ok(());
        }
        arrow_pg::encoder::encode_value(
            &mut self.scratch,
            &self.columns[col],
            row,
            &plan.wire_field,
            &self.schema.fields[col],
        )?;
        out.extend_from_slice(&self.scratch.take_row().data);
        Ok(())
    }

    /// The text of the field at (`col`, `row`) (`None` for NULL), for COPY,
    /// which needs the same representation as a text-format SELECT but quotes
    /// it its own way.
    pub(crate) fn field_text(
        &mut self,
        col: usize,
        row: usize,
        buf: &mut BytesMut,
    ) -> WireResult<Option<Vec<u8>>> {
        buf.clear();
        self.encode_field(col, row, buf)?;
        if buf.len() < 4 || buf[..4] == (-1i32).to_be_bytes() {
            return Ok(None);
        }
        Ok(Some(buf[4..].to_vec()))
    }
}

/// The `int2vector` or `oidvector` at `row` of the list column `array`:
/// in text, the elements separated by spaces (`1 2`); in binary, the array
/// format PostgreSQL's `int2vectorsend`/`oidvectorsend` write (one
/// dimension, lower bound 0, no NULLs).
fn encode_vector(
    array: &dyn Array,
    row: usize,
    vector: PgVector,
    format: FieldFormat,
) -> WireResult<Vec<u8>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int16Type, Int32Type};
    let not_a_vector = || WireError::Execution {
        sqlstate: "XX000",
        message: format!("{} column is not a list", vector.sql_name()),
    };
    let list = array.as_list_opt::<i32>().ok_or_else(not_a_vector)?;
    let items = list.value(row);
    if items.null_count() > 0 {
        return Err(WireError::Execution {
            sqlstate: "22004",
            message: format!("{} cannot contain NULL", vector.sql_name()),
        });
    }
    let values: Vec<i64> = match vector {
        PgVector::Int2 => items
            .as_primitive_opt::<Int16Type>()
            .ok_or_else(not_a_vector)?
            .values()
            .iter()
            .map(|v| i64::from(*v))
            .collect(),
        // OIDs are unsigned: one stored as a negative Int32 is its u32.
        PgVector::Oid => items
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(not_a_vector)?
            .values()
            .iter()
            .map(|v| i64::from(*v as u32))
            .collect(),
    };
    let mut out = Vec::new();
    match format {
        FieldFormat::Text => {
            let text: Vec<String> = values.iter().map(i64::to_string).collect();
            out.extend_from_slice(text.join(" ").as_bytes());
        }
        FieldFormat::Binary => {
            let (element_oid, width) = match vector {
                PgVector::Int2 => (Type::INT2.oid(), 2i32),
                PgVector::Oid => (Type::OID.oid(), 4i32),
            };
            let count = i32::try_from(values.len())
                .map_err(|_| WireError::protocol("54000", "vector is too long to send"))?;
            out.extend_from_slice(&1i32.to_be_bytes()); // dimensions
            out.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
            out.extend_from_slice(&element_oid.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes()); // lower bound
            for value in values {
                out.extend_from_slice(&width.to_be_bytes());
                match vector {
                    PgVector::Int2 => out.extend_from_slice(&(value as i16).to_be_bytes()),
                    PgVector::Oid => out.extend_from_slice(&(value as u32).to_be_bytes()),
                }
            }
        }
    }
    Ok(out)
}

/// The table OID and column number the engine traced a result column to
/// ([`freshet_engine::TABLE_OID_METADATA`]), for RowDescription.
fn column_origin(field: &Field) -> Option<(i32, i16)> {
    let metadata = field.metadata();
    let table = metadata
        .get(freshet_engine::TABLE_OID_METADATA)?
        .parse()
        .ok()?;
    let column = metadata
        .get(freshet_engine::COLUMN_NUMBER_METADATA)?
        .parse()
        .ok()?;
    Some((table, column))
}

/// `pg_type.typlen` of a type RowDescription announces: its fixed width in
/// bytes, or -1 for variable-width types (PostgreSQL sends it; drivers
/// show it as the field's size).
fn type_size(ty: &Type) -> i16 {
    match *ty {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE | Type::REGCLASS | Type::REGTYPE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::TIMETZ => 12,
        Type::INTERVAL | Type::UUID => 16,
        Type::NAME => 64,
        _ => -1,
    }
}

/// `Format::format_for` indexes without bounds checks; a client sending the
/// wrong number of format codes must get an error, not crash the connection.
pub fn format_for(format: &Format, idx: usize, count: usize) -> WireResult<FieldFormat> {
    match format {
        Format::Individual(codes) => {
            if codes.len() != count {
                return Err(WireError::protocol(
                    "08P01",
                    format!(
                        "bind message has {} result formats but query has {} columns",
                        codes.len(),
                        count
                    ),
                ));
            }
            Ok(FieldFormat::from(codes[idx]))
        }
        other => Ok(other.format_for(idx)),
    }
}

/// `field` without arrow-pg's type tags that no longer describe it.
///
/// DataFusion keeps a column's metadata through a cast, so the tag that
/// makes an Int32 column an `oid` (`pg.oid_alias`) or a one-character text
/// column a `"char"` (`pg.char`) survives `oid::bigint` or `relkind::int`.
/// PostgreSQL answers those casts with the target type, so a tag on an
/// Arrow type other than the one it describes is dropped. (A cast that
/// keeps the Arrow type, `oid::int4` or `relkind::text`, cannot be told
/// from the column and keeps the tag.)
fn without_stale_tags(field: &FieldRef) -> FieldRef {
    use arrow_pg::datatypes::{PG_CHAR_KEY, PG_OID_ALIAS_KEY};
    let stale_alias =
        field.metadata().contains_key(PG_OID_ALIAS_KEY) && *field.data_type() != DataType::Int32;
    let stale_char = field.metadata().contains_key(PG_CHAR_KEY)
        && !matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View);
    if !stale_alias && !stale_char {
        return field.clone();
    }
    let mut metadata = field.metadata().clone();
    if stale_alias {
        metadata.remove(PG_OID_ALIAS_KEY);
    }
    if stale_char {
        metadata.remove(PG_CHAR_KEY);
    }
    Arc::new(field.as_ref().clone().with_metadata(metadata))
}

/// Whether `field` should be sent as Postgres `json`, and the Postgres type to
/// advertise for it.
pub fn pg_type_for_field(field: &FieldRef) -> (Type, bool) {
    let declared = field
        .metadata()
        .get(freshet_engine::types::SQL_TYPE_METADATA)
        .map(String::as_str);
    let text = is_string_type(field.data_type());
    if is_json_field(field) {
        // A column declared jsonb is described as jsonb, as PostgreSQL does.
        return if text && declared == Some("jsonb") {
            (Type::JSONB, true)
        } else {
            (Type::JSON, true)
        };
    }
    // A column declared varchar(n) is described as varchar (drivers map it
    // to their string type either way; pgjdbc's metadata reports the name).
    if text
        && declared.is_some_and(|t| t.starts_with("varchar") || t.starts_with("character varying"))
    {
        return (Type::VARCHAR, false);
    }
    match arrow_pg::datatypes::field_into_pg_type(field) {
        // arrow-pg describes structs as anonymous composite records, which most
        // drivers cannot decode; is_json_field already caught those, but be safe.
        Ok(t) if t.oid() == Type::RECORD.oid() || t.oid() == Type::RECORD_ARRAY.oid() => {
            (Type::JSON, true)
        }
        Ok(t) => (t, false),
        Err(_) => (Type::JSON, true),
    }
}

/// The Postgres type advertised for a parameter of Arrow type `dt`.
pub fn pg_type_for_param(dt: &DataType) -> Type {
    match arrow_pg::datatypes::into_pg_type(dt) {
        Ok(t) if t.oid() == Type::RECORD.oid() || t.oid() == Type::RECORD_ARRAY.oid() => Type::TEXT,
        Ok(t) if t == Type::UNKNOWN => Type::TEXT,
        Ok(t) => t,
        Err(_) => Type::TEXT,
    }
}

/// Maps a parameter type declared by the client in Parse to the Arrow type the
/// engine should plan with. `None` lets the engine infer it.
pub fn arrow_type_for_pg(ty: &Type) -> Option<DataType> {
    let list = |dt: DataType| Some(DataType::new_list(dt, true));
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => {
            DataType::Utf8
        }
        Type::UUID => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::BOOL_ARRAY => return list(DataType::Boolean),
        Type::INT2_ARRAY => return list(DataType::Int16),
        Type::INT4_ARRAY => return list(DataType::Int32),
        Type::INT8_ARRAY => return list(DataType::Int64),
        Type::FLOAT4_ARRAY => return list(DataType::Float32),
        Type::FLOAT8_ARRAY => return list(DataType::Float64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => return list(DataType::Utf8),
        // NUMERIC's precision/scale and anything exotic are better inferred by
        // the planner from context.
        _ => return None,
    })
}

fn is_json_field(field: &Field) -> bool {
    freshet_engine::types::is_json(field) || is_nested_json_type(field.data_type())
}

/// Structs, maps and lists of them are model outputs; they go out as JSON.
fn is_nested_json_type(dt: &DataType) -> bool {
    match dt {
        DataType::Struct(_) | DataType::Map(_, _) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => {
            is_nested_json_type(f.data_type()) || matches!(f.data_type(), DataType::List(_))
        }
        _ => false,
    }
}

fn is_string_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Serializes each value of `array` as a JSON document (NULL stays NULL).
fn to_json_strings(field: &FieldRef, array: &dyn Array) -> WireResult<ArrayRef> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut encoder = make_encoder(field, array, &options).map_err(|e| WireError::Execution {
        sqlstate: "0A000",
        message: format!("cannot send column {} as json: {e}", field.name()),
    })?;
    let mut builder = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut buf = Vec::new();
    for idx in 0..array.len() {
        if array.is_null(idx) {
            builder.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(idx, &mut buf);
        builder.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(Arc::new(builder.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StructArray};
    use datafusion::arrow::datatypes::Fields;
    use std::collections::HashMap;

    #[test]
    fn struct_columns_become_json() {
        let fields = Fields::from(vec![
            Field::new("label", DataType::Utf8, true),
            Field::new("score", DataType::Int32, true),
        ]);
        let structs = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"])) as ArrayRef,
                Arc::new(Int32Array::from(vec![7])) as ArrayRef,
            ],
            None,
        );
        let schema = Arc::new(Schema::new(vec![Field::new(
            "p",
            DataType::Struct(fields),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(structs)]).unwrap();
        let wire = WireSchema::new(&schema, &Format::UnifiedText).unwrap();
        assert_eq!(wire.fields()[0].datatype(), &Type::JSON);
        let mut prepared = wire.prepare(&batch).unwrap();
        let text = prepared.field_text(0, 0, &mut BytesMut::new()).unwrap();
        assert_eq!(text.as_deref(), Some(&br#"{"label":"a","score":7}"#[..]));
    }

    #[test]
    fn json_extension_is_json() {
        let field = Arc::new(
            Field::new("j", DataType::Utf8, true).with_metadata(HashMap::from([(
                freshet_engine::types::EXTENSION_NAME.to_owned(),
                freshet_engine::types::JSON_EXTENSION.to_owned(),
            )])),
        );
        assert_eq!(pg_type_for_field(&field).0, Type::JSON);
    }

    #[test]
    fn declared_jsonb_and_varchar_are_described_as_declared() {
        let tagged = |sql_type: &str, json: bool| {
            let mut metadata = HashMap::from([(
                freshet_engine::types::SQL_TYPE_METADATA.to_owned(),
                sql_type.to_owned(),
            )]);
            if json {
                metadata.insert(
                    freshet_engine::types::EXTENSION_NAME.to_owned(),
                    freshet_engine::types::JSON_EXTENSION.to_owned(),
                );
            }
            Arc::new(Field::new("c", DataType::Utf8, true).with_metadata(metadata))
        };
        assert_eq!(pg_type_for_field(&tagged("jsonb", true)).0, Type::JSONB);
        assert_eq!(pg_type_for_field(&tagged("json", true)).0, Type::JSON);
        assert_eq!(
            pg_type_for_field(&tagged("varchar(20)", false)).0,
            Type::VARCHAR
        );
        assert_eq!(
            pg_type_for_field(&tagged("character varying", false)).0,
            Type::VARCHAR
        );
        assert_eq!(pg_type_for_field(&tagged("text", false)).0, Type::TEXT);
        // jsonb in binary carries the format's version byte.
        let schema = Schema::new(vec![tagged("jsonb", true)]);
        let wire = WireSchema::new(&schema, &Format::UnifiedBinary).unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(datafusion::arrow::array::StringArray::from(vec![
                r#"{"a":1}"#,
            ]))],
        )
        .unwrap();
        let mut prepared = wire.prepare(&batch).unwrap();
        let bytes = prepared.field_text(0, 0, &mut BytesMut::new()).unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"\x01{\"a\":1}"[..]));
    }

    #[test]
    fn wrong_format_count_is_an_error() {
        let format = Format::Individual(vec![0, 1]);
        assert!(format_for(&format, 0, 3).is_err());
    }
}
