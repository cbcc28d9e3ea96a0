//! DataFusion scalar UDFs backed by a loaded model: `<name>_score`, `<name>_s_sum`,
//! `<name>_s_kl`, `<name>_is_anomaly` (with the default name `mmnet`: `mmnet_score`, ...).
//!
//! Arguments are the model's features *in the model's order*; `mmnet_score(*)` is expanded to
//! exactly those columns, by name, by [`super::wildcard::ExpandModelWildcard`]. Any numeric
//! argument type is accepted and cast to f32 inside (the wildcard expansion runs before type
//! coercion, so arguments arrive uncoerced). A row with a NULL, NaN or infinite feature gets a
//! NULL result: SQL semantics, and one bad row never fails the query.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float32Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use mmnet_core::Model;
use mmnet_core::kernel::Threads;

use crate::features::{f32_columns, is_numeric, value_slices};

/// An error of mmnet's own, as DataFusion carries foreign errors.
fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Which quantity a UDF returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdfKind {
    /// The model's configured `mmnet_score`.
    Score,
    /// Raw S_sum.
    SSum,
    /// Raw S_KL.
    SKl,
    /// `mmnet_score > threshold`.
    IsAnomaly,
}

impl UdfKind {
    /// All kinds, in registration order.
    pub const ALL: [UdfKind; 4] = [
        UdfKind::Score,
        UdfKind::SSum,
        UdfKind::SKl,
        UdfKind::IsAnomaly,
    ];

    /// Suffix after the model name.
    pub fn suffix(self) -> &'static str {
        match self {
            UdfKind::Score => "score",
            UdfKind::SSum => "s_sum",
            UdfKind::SKl => "s_kl",
            UdfKind::IsAnomaly => "is_anomaly",
        }
    }
}

/// A model shared by its UDFs and wildcard rewrite; loaded once, never per batch.
#[derive(Debug)]
pub struct SharedModel {
    /// The model.
    pub model: Model,
    /// SHA-256 of its weights: identity for `Eq`/`Hash` of the UDFs.
    pub digest: String,
}

/// One UDF over one model.
#[derive(Debug, Clone)]
pub struct ModelUdf {
    name: String,
    kind: UdfKind,
    model: Arc<SharedModel>,
    signature: Signature,
}

impl ModelUdf {
    /// The UDF `<prefix>_<kind>` over `model`.
    pub fn new(prefix: &str, kind: UdfKind, model: Arc<SharedModel>) -> Self {
        ModelUdf {
            name: format!("{prefix}_{}", kind.suffix()),
            kind,
            model,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl PartialEq for ModelUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.model.digest == other.model.digest
    }
}
impl Eq for ModelUdf {}
impl Hash for ModelUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.kind.hash(state);
        self.model.digest.hash(state);
    }
}

impl ScalarUDFImpl for ModelUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            UdfKind::IsAnomaly => DataType::Boolean,
            _ => DataType::Float32,
        })
    }

    /// Checks arity and argument types at planning time, naming the offending argument.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let features = &self.model.model.features;
        // The SQL planner asks for the return type while the argument is still the `*` of
        // `mmnet_score(*)` (a Null-typed field named `*` or `t.*`); the analyzer expands it
        // later (wildcard.rs) and the checks below then run on the real columns.
        if let [f] = args.arg_fields
            && f.data_type().is_null()
            && (f.name() == "*" || f.name().ends_with(".*"))
        {
            return Ok(Arc::new(Field::new(
                &self.name,
                self.return_type(&[])?,
                true,
            )));
        }
        if args.arg_fields.len() != features.len() {
            let shown: Vec<&str> = features.iter().take(8).map(String::as_str).collect();
            return plan_err!(
                "{}() takes the model's {} features in order ({}{}), got {} argument(s); write {}(*) to pass them by name",
                self.name,
                features.len(),
                shown.join(", "),
                if features.len() > 8 { ", ..." } else { "" },
                args.arg_fields.len(),
                self.name
            );
        }
        for (i, f) in args.arg_fields.iter().enumerate() {
            if !is_numeric(f.data_type()) && !f.data_type().is_null() {
                return plan_err!(
                    "{}(): argument {} (`{}`, for feature `{}`) has type {}, which is not numeric",
                    self.name,
                    i + 1,
                    f.name(),
                    features[i],
                    f.data_type()
                );
            }
        }
        let dt = self.return_type(&[])?;
        Ok(Arc::new(Field::new(&self.name, dt, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if arrays.len() != self.model.model.input_dim() {
            return exec_err!("{}(): wrong argument count {}", self.name, arrays.len());
        }
        let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        let (cols, valid) = f32_columns(&refs, rows).map_err(external)?;
        let slices = value_slices(&cols);
        // DataFusion already runs `target_partitions` streams at once, one per tokio worker;
        // each scores its own batches where it runs. Handing a batch to rayon would block the
        // worker until both cores finish it, leaving that stream's next decode waiting
        // (measured with 1M rows over Parquet: see docs/BENCHMARKS.md). A session asked for
        // one partition gets the batch spread over rayon's threads instead.
        let threads = if args.config_options.execution.target_partitions > 1 {
            Threads::Caller
        } else {
            Threads::Rayon
        };
        let scored = self
            .model
            .model
            .score_columns(&slices, false, None, threads)
            .map_err(external)?;
        let floats = |v: &[f32]| -> ArrayRef {
            Arc::new(
                v.iter()
                    .zip(&valid)
                    .map(|(&s, &ok)| ok.then_some(s))
                    .collect::<Float32Array>(),
            )
        };
        let out: ArrayRef = match self.kind {
            UdfKind::Score => floats(&scored.score),
            UdfKind::SSum => floats(&scored.raw.s_sum),
            UdfKind::SKl => floats(&scored.raw.s_kl),
            UdfKind::IsAnomaly => Arc::new(
                scored
                    .is_anomaly
                    .iter()
                    .zip(&valid)
                    .map(|(&a, &ok)| ok.then_some(a))
                    .collect::<BooleanArray>(),
            ),
        };
        Ok(ColumnarValue::Array(out))
    }
}
