//! Parquet tables of the generic export format, read with the `parquet` crate's record API (no
//! Arrow). Columns are found by name, so extra columns and any column order are fine; ids may be
//! strings or integers, timestamps Unix seconds as integers or Parquet timestamps/dates.
//! Errors name the file and the 1-based row (`file:row: problem`).

use std::fs::File;
use std::path::Path;

use parquet::basic::{LogicalType, TimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::{Type, TypePtr};

use super::{Dataset, push_interaction};
use crate::error::{Error, Result};

/// A Parquet file opened for reading, with its top-level column names.
pub(super) struct ParquetFile<'a> {
    path: &'a Path,
    reader: SerializedFileReader<File>,
}

impl<'a> ParquetFile<'a> {
    pub fn open(path: &'a Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| {
            Error::InvalidInput(format!(
                "{}: not a readable Parquet file: {e}",
                path.display()
            ))
        })?;
        Ok(ParquetFile { path, reader })
    }

    fn root(&self) -> &Type {
        self.reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
    }

    /// Top-level column names in file order.
    pub fn columns(&self) -> Vec<String> {
        self.root()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }

    fn field(&self, name: &str) -> Option<&TypePtr> {
        self.root().get_fields().iter().find(|f| f.name() == name)
    }

    /// The error for a required column the file lacks.
    pub fn missing(&self, name: &str) -> Error {
        Error::InvalidInput(format!(
            "{}: missing column `{name}` (columns: {})",
            self.path.display(),
            self.columns().join(", ")
        ))
    }

    fn err(&self, row: usize, problem: impl Into<String>) -> Error {
        Error::parse(self.path, row, problem)
    }

    /// A converted cell, or an error naming the row and the column.
    fn cell<T>(
        &self,
        row: usize,
        column: &str,
        value: std::result::Result<T, String>,
    ) -> Result<T> {
        value.map_err(|problem| self.err(row, format!("{column} {problem}")))
    }

    /// Calls `each` with the 1-based row number and the values of `columns` (in that order) of
    /// every row; the columns must exist.
    fn for_each_row(
        &self,
        columns: &[&str],
        mut each: impl FnMut(usize, Vec<Field>) -> Result<()>,
    ) -> Result<()> {
        let fields = columns
            .iter()
            .map(|c| self.field(c).cloned().ok_or_else(|| self.missing(c)))
            .collect::<Result<Vec<_>>>()?;
        let projection = Type::group_type_builder(self.root().name())
            .with_fields(fields)
            .build()
            .map_err(|e| self.err(1, format!("cannot select columns: {e}")))?;
        let rows = self
            .reader
            .get_row_iter(Some(projection))
            .map_err(|e| self.err(1, format!("cannot read rows: {e}")))?;
        for (n, row) in rows.enumerate() {
            let row: Row = row.map_err(|e| self.err(n + 1, format!("cannot decode: {e}")))?;
            each(
                n + 1,
                row.into_columns().into_iter().map(|(_, f)| f).collect(),
            )?;
        }
        Ok(())
    }

    /// Every row of the named columns as text (for the small side tables): nulls are empty,
    /// lists of strings are joined with `|` (the CSV category separator).
    pub fn text_rows(&self, columns: &[&str]) -> Result<Vec<(usize, Vec<String>)>> {
        let mut rows = Vec::new();
        self.for_each_row(columns, |n, fields| {
            let cells = fields
                .iter()
                .zip(columns)
                .map(|(f, c)| self.cell(n, c, text(f)))
                .collect::<Result<_>>()?;
            rows.push((n, cells));
            Ok(())
        })?;
        Ok(rows)
    }
}

/// Reads `interactions.parquet`: `user_id`, `item_id`, optional `timestamp` and `weight`.
pub(super) fn read_interactions(ds: &mut Dataset, path: &Path) -> Result<()> {
    let file = ParquetFile::open(path)?;
    let has = |c: &str| file.field(c).is_some();
    let mut columns = vec!["user_id", "item_id"];
    let t = has("timestamp").then(|| {
        columns.push("timestamp");
        columns.len() - 1
    });
    let w = has("weight").then(|| {
        columns.push("weight");
        columns.len() - 1
    });
    let unit = file
        .field("timestamp")
        .map_or(Unit::Seconds, |f| timestamp_unit(f));
    let rows = file.reader.metadata().file_metadata().num_rows();
    let mut out = Vec::with_capacity(usize::try_from(rows).unwrap_or(0));
    file.for_each_row(&columns, |n, f| {
        let user = file.cell(n, "user_id", id(&f[0]))?;
        let item = file.cell(n, "item_id", id(&f[1]))?;
        let ts = t
            .map(|t| file.cell(n, "timestamp", seconds(&f[t], unit)))
            .transpose()?
            .unwrap_or(0);
        let weight = w
            .map(|w| file.cell(n, "weight", weight(&f[w])))
            .transpose()?
            .unwrap_or(1.0);
        push_interaction(ds, &mut out, &user, &item, ts, weight);
        Ok(())
    })?;
    ds.interactions = out;
    Ok(())
}

/// Reads a column of equal-length float lists (one item vector per row) as a row-major matrix.
pub(super) fn read_vector_column(path: &Path, column: &str) -> Result<(usize, usize, Vec<f32>)> {
    let file = ParquetFile::open(path)?;
    let mut dim = None;
    let mut values = Vec::new();
    let mut rows = 0;
    file.for_each_row(&[column], |n, f| {
        let Field::ListInternal(list) = &f[0] else {
            return Err(file.err(
                n,
                format!("{column} is {}, expected a list of floats", kind(&f[0])),
            ));
        };
        let len = list.len();
        if *dim.get_or_insert(len) != len {
            return Err(file.err(
                n,
                format!(
                    "{column} has {len} values, but earlier rows have {}",
                    dim.unwrap_or(0)
                ),
            ));
        }
        for x in list.elements() {
            values.push(match x {
                Field::Float(x) => *x,
                Field::Double(x) => *x as f32,
                Field::Float16(x) => f32::from(*x),
                other => {
                    return Err(file.err(
                        n,
                        format!("{column} holds {}, expected floats", kind(other)),
                    ));
                }
            });
        }
        rows += 1;
        Ok(())
    })?;
    Ok((rows, dim.unwrap_or(0), values))
}

/// How an integer `timestamp` column counts time: plain integers are Unix seconds like the CSV
/// column; a Parquet timestamp in nanoseconds arrives as a plain integer from the record API.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    Seconds,
    Nanos,
}

fn timestamp_unit(column: &Type) -> Unit {
    match column.get_basic_info().logical_type_ref() {
        Some(LogicalType::Timestamp(t)) if matches!(t.unit, TimeUnit::NANOS) => Unit::Nanos,
        _ => Unit::Seconds,
    }
}

/// An id as text: strings as they are, integers in decimal (so `7` and `"7"` are the same id).
fn id(f: &Field) -> std::result::Result<String, String> {
    let s = match f {
        Field::Str(s) => s.trim().to_string(),
        Field::Bytes(b) => utf8(b.data())?.trim().to_string(),
        Field::Null => return Err("is null".into()),
        other => integer(other)
            .map(|n| n.to_string())
            .ok_or_else(|| format!("is {}, expected a string or an integer", kind(other)))?,
    };
    if s.is_empty() {
        return Err("is empty".into());
    }
    Ok(s)
}

/// A timestamp in Unix seconds (floored), from an integer, a Parquet timestamp or a date.
fn seconds(f: &Field, unit: Unit) -> std::result::Result<i64, String> {
    match f {
        Field::TimestampMillis(ms) => Ok(ms.div_euclid(1_000)),
        Field::TimestampMicros(us) => Ok(us.div_euclid(1_000_000)),
        Field::Date(days) => Ok(i64::from(*days) * 86_400),
        Field::Null => Err("is null".into()),
        other => match (integer(other), unit) {
            (Some(n), Unit::Seconds) => {
                i64::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
            (Some(n), Unit::Nanos) => i64::try_from(n.div_euclid(1_000_000_000))
                .map_err(|_| format!("{n} is out of range")),
            (None, _) => Err(format!(
                "is {}, expected an integer (Unix seconds), a timestamp or a date",
                kind(other)
            )),
        },
    }
}

fn weight(f: &Field) -> std::result::Result<f32, String> {
    let w = match f {
        Field::Float(x) => *x,
        Field::Double(x) => *x as f32,
        Field::Float16(x) => f32::from(*x),
        Field::Null => return Err("is null".into()),
        other => integer(other)
            .map(|n| n as f32)
            .ok_or_else(|| format!("is {}, expected a number", kind(other)))?,
    };
    if !w.is_finite() {
        return Err(format!("{w} is not finite"));
    }
    Ok(w)
}

fn integer(f: &Field) -> Option<i128> {
    Some(match *f {
        Field::Byte(n) => n.into(),
        Field::Short(n) => n.into(),
        Field::Int(n) => n.into(),
        Field::Long(n) => n.into(),
        Field::UByte(n) => n.into(),
        Field::UShort(n) => n.into(),
        Field::UInt(n) => n.into(),
        Field::ULong(n) => n.into(),
        _ => return None,
    })
}

/// A side-table cell as text; nulls are empty (unknown), lists of scalars are `|`-joined.
fn text(f: &Field) -> std::result::Result<String, String> {
    if let Some(n) = integer(f) {
        return Ok(n.to_string());
    }
    Ok(match f {
        Field::Null => String::new(),
        Field::Str(s) => s.trim().to_string(),
        Field::Bytes(b) => utf8(b.data())?.trim().to_string(),
        Field::Bool(b) => b.to_string(),
        Field::Float(x) => x.to_string(),
        Field::Double(x) => x.to_string(),
        Field::Float16(x) => x.to_string(),
        Field::Date(_) | Field::TimestampMillis(_) | Field::TimestampMicros(_) => {
            seconds(f, Unit::Seconds)?.to_string()
        }
        Field::ListInternal(list) => list
            .elements()
            .iter()
            .map(text)
            .collect::<std::result::Result<Vec<_>, _>>()?
            .join("|"),
        other => return Err(format!("is {}, expected text or a number", kind(other))),
    })
}

fn utf8(bytes: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "is binary, not UTF-8 text".to_string())
}

/// A short name of a value's type for error messages.
fn kind(f: &Field) -> &'static str {
    match f {
        Field::Null => "null",
        Field::Bool(_) => "a boolean",
        Field::Float(_) | Field::Double(_) | Field::Float16(_) => "a floating-point number",
        Field::Decimal(_) => "a decimal",
        Field::Str(_) => "a string",
        Field::Bytes(_) => "binary",
        Field::Date(_) => "a date",
        Field::TimeMillis(_) | Field::TimeMicros(_) => "a time of day",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "a timestamp",
        Field::Group(_) => "a struct",
        Field::ListInternal(_) => "a list",
        Field::MapInternal(_) => "a map",
        _ => "an integer",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::{Compression, ZstdLevel};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use crate::data::{Format, load};

    /// One column's values in file order; `None` is null.
    enum Col<'a> {
        Utf8(Vec<Option<&'a str>>),
        I64(Vec<Option<i64>>),
        I32(Vec<Option<i32>>),
        F64(Vec<Option<f64>>),
        /// A three-level `LIST` of strings.
        Utf8List(Vec<Vec<&'a str>>),
        /// A three-level `LIST` of doubles.
        F64List(Vec<Vec<f64>>),
    }

    /// Values and definition levels of an optional flat column.
    fn flat<T: Clone, V>(column: &[Option<T>], f: impl Fn(T) -> V) -> (Vec<V>, Vec<i16>) {
        let values = column.iter().flatten().cloned().map(f).collect();
        let defs = column.iter().map(|v| i16::from(v.is_some())).collect();
        (values, defs)
    }

    /// Writes one row group with the `parquet` crate's own writer, in the columns' order.
    fn write(path: &std::path::Path, schema: &str, columns: &[Col], compression: Compression) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(compression)
                .build(),
        );
        let file = std::fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        for column in columns {
            let mut w = group.next_column().unwrap().expect("schema has the column");
            match column {
                Col::Utf8(v) => {
                    let (values, defs) = flat(v, ByteArray::from);
                    w.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)
                        .unwrap();
                }
                Col::I64(v) => {
                    let (values, defs) = flat(v, |x| x);
                    w.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)
                        .unwrap();
                }
                Col::I32(v) => {
                    let (values, defs) = flat(v, |x| x);
                    w.typed::<Int32Type>()
                        .write_batch(&values, Some(&defs), None)
                        .unwrap();
                }
                Col::F64(v) => {
                    let (values, defs) = flat(v, |x| x);
                    w.typed::<DoubleType>()
                        .write_batch(&values, Some(&defs), None)
                        .unwrap();
                }
                Col::Utf8List(rows) => {
                    let (mut values, mut defs, mut reps) = (vec![], vec![], vec![]);
                    for row in rows {
                        if row.is_empty() {
                            defs.push(1);
                            reps.push(0);
                        }
                        for (i, s) in row.iter().enumerate() {
                            values.push(ByteArray::from(*s));
                            defs.push(3);
                            reps.push(i16::from(i > 0));
                        }
                    }
                    w.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), Some(&reps))
                        .unwrap();
                }
                Col::F64List(rows) => {
                    let (mut values, mut defs, mut reps) = (vec![], vec![], vec![]);
                    for row in rows {
                        for (i, x) in row.iter().enumerate() {
                            values.push(*x);
                            defs.push(3);
                            reps.push(i16::from(i > 0));
                        }
                    }
                    w.typed::<DoubleType>()
                        .write_batch(&values, Some(&defs), Some(&reps))
                        .unwrap();
                }
            }
            w.close().unwrap();
        }
        group.close().unwrap();
        writer.close().unwrap();
    }

    fn load_err(dir: &std::path::Path) -> String {
        load(dir, Format::Csv).unwrap_err().to_string()
    }

    const INTERACTIONS: &str = "message schema {
        OPTIONAL INT64 user_id;
        OPTIONAL BYTE_ARRAY item_id (UTF8);
        OPTIONAL INT64 timestamp (TIMESTAMP(MILLIS,true));
        OPTIONAL DOUBLE weight;
        OPTIONAL BYTE_ARRAY note (UTF8);
    }";

    #[test]
    fn parquet_tables_load_like_their_csv_counterparts_and_mix_with_csv() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            &d.join("interactions.parquet"),
            INTERACTIONS,
            &[
                Col::I64(vec![Some(1), Some(2), Some(1)]),
                Col::Utf8(vec![Some("a"), Some("b"), Some("b")]),
                Col::I64(vec![Some(10_999), Some(20_000), Some(30_000)]),
                Col::F64(vec![Some(1.0), Some(2.5), Some(1.0)]),
                Col::Utf8(vec![None, Some("ignored"), None]),
            ],
            Compression::SNAPPY,
        );
        write(
            &d.join("items.parquet"),
            "message schema {
                OPTIONAL BYTE_ARRAY item_id (UTF8);
                OPTIONAL group categories (LIST) {
                    REPEATED group list { OPTIONAL BYTE_ARRAY element (UTF8); }
                }
                OPTIONAL BYTE_ARRAY title (UTF8);
            }",
            &[
                Col::Utf8(vec![Some("a"), Some("b"), Some("unused")]),
                Col::Utf8List(vec![vec!["news", "sport"], vec!["music"], vec![]]),
                Col::Utf8(vec![Some("A"), None, Some("U")]),
            ],
            Compression::ZSTD(ZstdLevel::default()),
        );
        write(
            &d.join("users.parquet"),
            "message schema {
                OPTIONAL INT64 user_id;
                OPTIONAL BYTE_ARRAY region (UTF8);
                OPTIONAL INT32 age;
            }",
            &[
                Col::I64(vec![Some(1), Some(2)]),
                Col::Utf8(vec![Some("SH"), None]),
                Col::I32(vec![Some(31), Some(45)]),
            ],
            Compression::UNCOMPRESSED,
        );
        std::fs::write(d.join("social.csv"), "user_id,friend_id\n1,2\n1,ghost\n").unwrap();

        let ds = load(d, Format::Csv).unwrap();
        assert_eq!(ds.users.ids(), ["1", "2"]);
        assert_eq!(ds.items.ids(), ["a", "b"]);
        let rows: Vec<_> = ds
            .interactions
            .iter()
            .map(|i| (i.user, i.item, i.ts, i.weight))
            .collect();
        assert_eq!(rows, [(0, 0, 10, 1.0), (1, 1, 20, 2.5), (0, 1, 30, 1.0)]);
        assert_eq!(ds.category_names, ["news", "sport", "music"]);
        assert_eq!(ds.item_categories, [vec![0, 1], vec![2]]);
        assert_eq!(ds.item_titles, [Some("A".to_string()), None]);
        assert_eq!(ds.user_attrs["region"], [Some("SH".to_string()), None]);
        assert_eq!(
            ds.user_attrs["age"],
            [Some("31".to_string()), Some("45".to_string())]
        );
        assert_eq!(ds.social_edges, [(0, 1)]);
    }

    #[test]
    fn nanosecond_timestamps_dates_and_missing_optional_columns_are_understood() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("interactions.parquet"),
            "message schema {
                OPTIONAL BYTE_ARRAY user_id (UTF8);
                OPTIONAL INT32 item_id;
                OPTIONAL INT64 timestamp (TIMESTAMP(NANOS,true));
            }",
            &[
                Col::Utf8(vec![Some("u"), Some("v")]),
                Col::I32(vec![Some(7), Some(8)]),
                Col::I64(vec![Some(1_700_000_000_123_456_789), Some(-1)]),
            ],
            Compression::UNCOMPRESSED,
        );
        let ds = load(dir.path(), Format::Csv).unwrap();
        assert_eq!(ds.items.ids(), ["7", "8"]);
        let ts: Vec<_> = ds.interactions.iter().map(|i| (i.ts, i.weight)).collect();
        assert_eq!(ts, [(1_700_000_000, 1.0), (-1, 1.0)], "floored to seconds");

        write(
            &dir.path().join("interactions.parquet"),
            "message schema { OPTIONAL INT32 user_id; OPTIONAL INT32 item_id; OPTIONAL INT32 timestamp (DATE); }",
            &[
                Col::I32(vec![Some(1)]),
                Col::I32(vec![Some(2)]),
                Col::I32(vec![Some(2)]),
            ],
            Compression::UNCOMPRESSED,
        );
        let ds = load(dir.path(), Format::Csv).unwrap();
        assert_eq!(ds.interactions[0].ts, 2 * 86_400, "a date is its midnight");
    }

    #[test]
    fn a_missing_id_column_is_named_with_the_columns_the_file_has() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("interactions.parquet"),
            "message schema { OPTIONAL INT64 user_id; OPTIONAL INT64 item; }",
            &[Col::I64(vec![Some(1)]), Col::I64(vec![Some(2)])],
            Compression::UNCOMPRESSED,
        );
        let err = load_err(dir.path());
        assert!(
            err.contains("interactions.parquet: missing column `item_id` (columns: user_id, item)"),
            "{err}"
        );
    }

    #[test]
    fn a_floating_point_id_names_the_file_row_and_type() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("interactions.parquet"),
            "message schema { OPTIONAL DOUBLE user_id; OPTIONAL INT64 item_id; }",
            &[Col::F64(vec![Some(1.5)]), Col::I64(vec![Some(2)])],
            Compression::UNCOMPRESSED,
        );
        let err = load_err(dir.path());
        assert!(
            err.contains(
                "interactions.parquet:1: user_id is a floating-point number, expected a string or an integer"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_null_id_names_the_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("interactions.parquet"),
            INTERACTIONS,
            &[
                Col::I64(vec![Some(1), Some(2), Some(3)]),
                Col::Utf8(vec![Some("a"), None, Some("c")]),
                Col::I64(vec![Some(1), Some(2), Some(3)]),
                Col::F64(vec![Some(1.0), Some(1.0), Some(1.0)]),
                Col::Utf8(vec![None, None, None]),
            ],
            Compression::UNCOMPRESSED,
        );
        let err = load_err(dir.path());
        assert!(
            err.contains("interactions.parquet:2: item_id is null"),
            "{err}"
        );
    }

    #[test]
    fn a_text_timestamp_and_an_infinite_weight_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("interactions.parquet"),
            "message schema { OPTIONAL INT64 user_id; OPTIONAL INT64 item_id; OPTIONAL BYTE_ARRAY timestamp (UTF8); }",
            &[
                Col::I64(vec![Some(1)]),
                Col::I64(vec![Some(2)]),
                Col::Utf8(vec![Some("yesterday")]),
            ],
            Compression::UNCOMPRESSED,
        );
        let err = load_err(dir.path());
        assert!(
            err.contains("interactions.parquet:1: timestamp is a string, expected an integer"),
            "{err}"
        );

        write(
            &dir.path().join("interactions.parquet"),
            "message schema { OPTIONAL INT64 user_id; OPTIONAL INT64 item_id; OPTIONAL DOUBLE weight; }",
            &[
                Col::I64(vec![Some(1), Some(1)]),
                Col::I64(vec![Some(2), Some(3)]),
                Col::F64(vec![Some(1.0), Some(f64::INFINITY)]),
            ],
            Compression::UNCOMPRESSED,
        );
        let err = load_err(dir.path());
        assert!(
            err.contains("interactions.parquet:2: weight inf is not finite"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_and_a_table_in_both_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("interactions.parquet"),
            "user_id,item_id\n1,2\n",
        )
        .unwrap();
        let err = load_err(dir.path());
        assert!(err.contains("not a readable Parquet file"), "{err}");

        std::fs::write(
            dir.path().join("interactions.csv"),
            "user_id,item_id\n1,2\n",
        )
        .unwrap();
        let err = load_err(dir.path());
        assert!(
            err.contains("both interactions.csv and interactions.parquet"),
            "{err}"
        );
    }

    const VECTORS: &str = "message schema {
        optional group vectors (LIST) { repeated group list { optional double element; } }
    }";

    #[test]
    fn a_column_of_float_lists_reads_as_a_matrix_and_a_ragged_row_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.parquet");
        let rows = vec![vec![1.0, 0.0], vec![0.6, 0.8]];
        write(
            &path,
            VECTORS,
            &[Col::F64List(rows)],
            Compression::UNCOMPRESSED,
        );
        let (n, dim, values) = crate::data::read_vector_column(&path, "vectors").unwrap();
        assert_eq!((n, dim, values), (2, 2, vec![1.0, 0.0, 0.6, 0.8]));
        let e = crate::data::read_vector_column(&path, "embedding")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing column `embedding`"), "{e}");

        let ragged = vec![vec![1.0, 0.0], vec![0.6, 0.8, 0.0]];
        write(
            &path,
            VECTORS,
            &[Col::F64List(ragged)],
            Compression::UNCOMPRESSED,
        );
        let e = crate::data::read_vector_column(&path, "vectors")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("v.parquet:2: vectors has 3 values, but earlier rows have 2"),
            "{e}"
        );
    }
}
