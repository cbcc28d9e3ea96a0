//! Expands `mmnet_score(*)` and `mmnet_score(t.*)` into the model's feature columns.
//!
//! sqlparser turns `f(*)` into a wildcard argument that DataFusion 55 plans but cannot
//! execute ("Physical plan does not support logical expression Wildcard"). A
//! `FunctionRewrite` runs in the analyzer with the input schema, before type coercion, so it
//! can replace the wildcard by columns: exactly the model's features, looked up by name (extra
//! columns such as ids or timestamps are ignored; a missing feature is a planning error
//! naming it). The output column keeps the name `mmnet_score(*)`.
//!
//! The same rewrite pins every model call, wildcard or not, to the digest of the model it is
//! planned with (a trailing literal, see [`super::udf::DIGEST_PIN_PREFIX`]), so a process
//! that runs part of the query with another model refuses it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{
    Column, DFSchema, Result as DfResult, ScalarValue, TableReference, plan_err,
};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;

use super::udf::{SharedModel, digest_pin, scalar_pin};

/// Rewrites wildcard arguments of the UDFs of every registered model.
/// The map is shared with the [`super::ModelRegistry`] that registered it, so a model
/// registered or reloaded later is expanded with its own features.
#[derive(Debug, Default)]
pub struct ExpandModelWildcard {
    /// UDF name -> model whose features replace the wildcard.
    pub functions: Arc<std::sync::RwLock<HashMap<String, Arc<SharedModel>>>>,
}

/// The qualifier of a wildcard argument: `None` for `*`, `Some(t)` for `t.*`.
#[allow(deprecated)] // Expr::Wildcard is deprecated but is what sqlparser's `f(*)` produces.
fn wildcard_qualifier(e: &Expr) -> Option<Option<TableReference>> {
    match e {
        Expr::Wildcard { qualifier, .. } => Some(qualifier.clone()),
        _ => None,
    }
}

fn resolve(
    fname: &str,
    schema: &DFSchema,
    qualifier: &Option<TableReference>,
    feature: &str,
) -> DfResult<Column> {
    let candidates: Vec<Column> = schema
        .columns_with_unqualified_name(feature)
        .into_iter()
        .filter(|c| match qualifier {
            Some(q) => c.relation.as_ref().is_some_and(|r| r.resolved_eq(q)),
            None => true,
        })
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().expect("one candidate")),
        0 => {
            // Enough columns to spot a naming mismatch, not a wall of 100+ names.
            let columns = schema.columns();
            let mut available: Vec<String> =
                columns.iter().take(12).map(|c| c.flat_name()).collect();
            if columns.len() > 12 {
                available.push(format!("... {} more", columns.len() - 12));
            }
            plan_err!(
                "{fname}({}*): the model's feature `{feature}` is not a column of {} (columns: {})",
                qualifier
                    .as_ref()
                    .map_or(String::new(), |q| format!("{q}.")),
                qualifier
                    .as_ref()
                    .map_or("the input".to_string(), |q| format!("`{q}`")),
                available.join(", ")
            )
        }
        _ => plan_err!(
            "{fname}(*): feature `{feature}` is ambiguous ({}); qualify the wildcard, e.g. {fname}(t.*)",
            candidates
                .iter()
                .map(|c| c.flat_name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl FunctionRewrite for ExpandModelWildcard {
    fn name(&self) -> &str {
        "mmnet_expand_wildcard"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> DfResult<Transformed<Expr>> {
        let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
            return Ok(Transformed::no(expr));
        };
        let model = self
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(func.name())
            .cloned();
        let Some(model) = model else {
            return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                func,
                args,
            })));
        };
        let pinned = matches!(
            args.last(),
            Some(Expr::Literal(v, _)) if scalar_pin(Some(v)).is_some()
        );
        let quals: Vec<Option<Option<TableReference>>> =
            args.iter().map(wildcard_qualifier).collect();
        let mut args = if quals.iter().all(Option::is_none) {
            if pinned {
                return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args,
                })));
            }
            args
        } else {
            if args.len() != 1 {
                return plan_err!("{}(): a wildcard must be the only argument", func.name());
            }
            let qualifier = quals.into_iter().next().flatten().flatten();
            model
                .model
                .features
                .iter()
                .map(|f| resolve(func.name(), schema, &qualifier, f).map(Expr::Column))
                .collect::<DfResult<Vec<_>>>()?
        };
        args.push(Expr::Literal(
            ScalarValue::Utf8(Some(digest_pin(&model.digest))),
            None,
        ));
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
            func,
            args,
        })))
    }
}
