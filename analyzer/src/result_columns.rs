//! Typed, by-name access to the columns of a query result, whatever physical
//! type DataFusion chose for them (strings may come back dictionary-encoded,
//! plain or as views; integers of any width are widened once per batch).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt64Type};
use arrow::error::ArrowError;

/// Shares one `Arc<str>` per distinct string across batches, so events
/// carry names without allocating.
#[derive(Default)]
pub struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.into(), a.clone());
        a
    }
}

/// A string column: each distinct value interned once per batch.
pub struct Strs {
    /// Row -> index into `values` (null: null). The dictionary's own keys
    /// when the column is `Dictionary(Int32, Utf8)`, as events are: no copy.
    keys: Int32Array,
    values: Vec<Arc<str>>,
}

impl Strs {
    pub fn new(col: &ArrayRef, interner: &mut Interner) -> Result<Self, ArrowError> {
        if let DataType::Dictionary(_, _) = col.data_type() {
            let dict = cast(
                col,
                &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            )?;
            let dict = dict.as_dictionary::<Int32Type>();
            let values = dict.values().as_string::<i32>();
            let values = (0..values.len())
                .map(|i| interner.get(values.value(i)))
                .collect();
            return Ok(Self {
                keys: dict.keys().clone(),
                values,
            });
        }
        let plain = cast(col, &DataType::Utf8)?;
        let plain = plain.as_string::<i32>();
        let mut local: HashMap<&str, i32> = HashMap::new();
        let mut values = Vec::new();
        let keys = plain
            .iter()
            .map(|v| {
                v.map(|s| {
                    *local.entry(s).or_insert_with(|| {
                        values.push(interner.get(s));
                        values.len() as i32 - 1
                    })
                })
            })
            .collect();
        Ok(Self { keys, values })
    }

    #[inline]
    pub fn get(&self, row: usize) -> Option<&Arc<str>> {
        self.key(row).map(|k| &self.values[k as usize])
    }

    /// Row -> index into [`Strs::values`] (None: null).
    #[inline]
    pub fn key(&self, row: usize) -> Option<u32> {
        self.keys.is_valid(row).then(|| self.keys.value(row) as u32)
    }

    /// The distinct values of this batch: a per-value decision is made once
    /// per batch, not once per row.
    pub fn values(&self) -> &[Arc<str>] {
        &self.values
    }
}

/// An integer column widened to u64 once per batch by Arrow's cast kernel
/// (no copy when it is u64 already), read row by row without building a
/// `Vec<Option<u64>>`: the trace engines read a dozen columns per event.
pub struct U64Col(arrow::array::UInt64Array);

impl U64Col {
    pub fn new(batch: &RecordBatch, name: &str) -> Result<Self, ArrowError> {
        let col = cast(column(batch, name)?, &DataType::UInt64)?;
        Ok(Self(col.as_primitive::<UInt64Type>().clone()))
    }

    #[inline]
    pub fn get(&self, row: usize) -> Option<u64> {
        self.0.is_valid(row).then(|| self.0.value(row))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values (null rows read as 0).
    pub fn values(&self) -> &[u64] {
        self.0.values()
    }
}

/// An integer column widened to u64 (nulls kept).
pub fn u64s(batch: &RecordBatch, name: &str) -> Result<Vec<Option<u64>>, ArrowError> {
    let col = cast(column(batch, name)?, &DataType::UInt64)?;
    Ok(col.as_primitive::<UInt64Type>().iter().collect())
}

/// An integer column widened to i64 (nulls kept).
pub fn i64s(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, ArrowError> {
    let col = cast(column(batch, name)?, &DataType::Int64)?;
    Ok(col.as_primitive::<Int64Type>().iter().collect())
}

pub fn bools(batch: &RecordBatch, name: &str) -> Result<Vec<bool>, ArrowError> {
    let col = column(batch, name)?;
    Ok(col
        .as_boolean_opt()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not boolean")))?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect())
}

pub fn strs(batch: &RecordBatch, name: &str, interner: &mut Interner) -> Result<Strs, ArrowError> {
    Strs::new(column(batch, name)?, interner)
}

pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("query result has no column {name}")))
}
