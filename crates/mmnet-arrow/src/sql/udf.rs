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

/// What a pinned call carries as its last argument: the digest of the model the query was
/// planned with, as `mmnet-model:sha256:<hex>`.
///
/// Functions travel by name between the processes of a cluster (the client plans, the
/// scheduler re-plans, executors run), and each process loads its own model. The `*`
/// rewrite (wildcard.rs) appends this literal to every model call where the query is
/// planned, so any process whose model differs refuses to plan or run it (naming both
/// digests) instead of scoring with another model version. It is never a feature: features
/// are numeric, this is a string with a fixed prefix.
pub const DIGEST_PIN_PREFIX: &str = "mmnet-model:sha256:";

/// The pin literal for `digest`.
pub fn digest_pin(digest: &str) -> String {
    format!("{DIGEST_PIN_PREFIX}{digest}")
}

/// The digest in a pin literal, if `s` is one.
pub fn pinned_digest(s: &str) -> Option<&str> {
    s.strip_prefix(DIGEST_PIN_PREFIX)
}

/// A model shared by its UDFs and wildcard rewrite; loaded once, never per batch.
#[derive(Debug)]
pub struct SharedModel {
    /// The model.
    pub model: Model,
    /// SHA-256 of its weights: identity for `Eq`/`Hash` of the UDFs.
    pub digest: String,
}

impl SharedModel {
    /// Shares `model`, with its digest computed once.
    pub fn new(model: Model) -> crate::Result<Arc<Self>> {
        let digest = mmnet_core::artifact::model_digest(&model)?;
        Ok(Arc::new(SharedModel { model, digest }))
    }
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

impl ModelUdf {
    /// Refuses a query planned with another model than the one this process serves.
    fn check_pin(&self, pinned: &str) -> DfResult<()> {
        if pinned == self.model.digest {
            return Ok(());
        }
        plan_err!(
            "{}(): model digest mismatch: the query was planned with model sha256 {pinned}, but \
             this process (pid {}) serves sha256 {}; start the client, the scheduler and every \
             executor with the same model directory",
            self.name,
            std::process::id(),
            self.model.digest
        )
    }
}

/// The pinned digest of a call's last argument, from its planning-time constant.
pub(crate) fn scalar_pin(v: Option<&datafusion::common::ScalarValue>) -> Option<&str> {
    use datafusion::common::ScalarValue;
    match v {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => pinned_digest(s),
        _ => None,
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
        let mut arg_fields = args.arg_fields;
        if let Some(pin) = scalar_pin(args.scalar_arguments.last().copied().flatten()) {
            self.check_pin(pin)?;
            arg_fields = &arg_fields[..arg_fields.len() - 1];
        }
        if arg_fields.len() != features.len() {
            let shown: Vec<&str> = features.iter().take(8).map(String::as_str).collect();
            return plan_err!(
                "{}() takes the model's {} features in order ({}{}), got {} argument(s); write {}(*) to pass them by name",
                self.name,
                features.len(),
                shown.join(", "),
                if features.len() > 8 { ", ..." } else { "" },
                arg_fields.len(),
                self.name
            );
        }
        for (i, f) in arg_fields.iter().enumerate() {
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
        let mut values = &args.args[..];
        if let Some(ColumnarValue::Scalar(v)) = values.last()
            && let Some(pin) = scalar_pin(Some(v))
        {
            // Checked again where the rows are scored: an executor deserialises the plan
            // with its own model behind the function's name.
            self.check_pin(pin)
                .map_err(|e| DataFusionError::Execution(e.strip_backtrace()))?;
            values = &values[..values.len() - 1];
        }
        let arrays = ColumnarValue::values_to_arrays(values)?;
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
