//! The model being served, and swapping it while the stream runs.
//!
//! Every batch takes one snapshot of the serving [`Scorer`] when it starts
//! ([`Serving::current`]) and is decoded, scored and encoded with it alone, so a swap lands
//! between batches: no record is scored by a half-loaded model, and each score record's
//! `model.digest` names the model that scored it. Batches are prepared one after another,
//! so per partition the digests change exactly once per swap and never go back.
//!
//! A reload (SIGHUP, or `[model] watch`) loads the model named by the configured path *now*
//! (a flipped symlink or a directory replaced by rename is followed) off the scoring path,
//! checks it, and only then swaps; a model that fails to load or does not fit the input
//! leaves the old one serving, logged and counted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};

use crate::batch::{Scorer, Shadow};
use crate::config::OperatorConfig;
use crate::decode::Decoder;
use crate::drift::{BatchDrift, DriftWindow};
use crate::error::{OperatorError, Result};
use crate::metrics::Metrics;

/// The scorer every new batch uses.
#[derive(Debug)]
pub struct Serving {
    current: RwLock<Arc<Scorer>>,
    drift: Mutex<DriftWindow>,
}

impl Serving {
    /// Serving `scorer`, with drift signals over `window_rows` rows (see [`DriftWindow`]).
    pub fn new(scorer: Scorer, window_rows: usize, max_features: usize) -> Self {
        Self {
            current: RwLock::new(Arc::new(scorer)),
            drift: Mutex::new(DriftWindow::new(window_rows, max_features)),
        }
    }

    /// Adds a scored batch's drift signals to the window and updates the metrics.
    pub fn observe_drift(&self, b: &BatchDrift, metrics: &Metrics) {
        self.drift
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(b, metrics);
    }

    /// The scorer for the next batch.
    pub fn current(&self) -> Arc<Scorer> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value is
        // still a whole scorer.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, s: Arc<Scorer>) -> Arc<Scorer> {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *g, s)
    }
}

/// `model` with the configured `[model] precision`, if one is set.
fn with_precision(model: mmnet_core::Model, cfg: &OperatorConfig) -> mmnet_core::Model {
    match cfg.model.precision {
        Some(p) => model.with_precision(p),
        None => model,
    }
}

/// Loads the model at `path` (and the shadow, if configured) into a scorer with the
/// operator's settings.
pub fn load_scorer(cfg: &OperatorConfig, path: &Path) -> Result<Scorer> {
    let model = with_precision(mmnet_core::artifact::load(path)?, cfg);
    let digest = mmnet_core::artifact::model_digest(&model)?;
    let shadow = match &cfg.model.shadow_path {
        Some(p) => Some(load_shadow(p, &model.features, cfg)?),
        None => None,
    };
    Ok(Scorer {
        decoder: Decoder::new(
            &model.features,
            cfg.input.format,
            cfg.input.max_message_bytes,
        ),
        model,
        digest,
        name: cfg.model.name.clone(),
        threshold: cfg.model.threshold,
        format: cfg.output.format,
        has_dlq: cfg.kafka.dlq_topic.is_some(),
        explain: cfg.output.explain.then_some((
            cfg.output.explain_top_memory,
            cfg.output.explain_top_features,
        )),
        shadow,
        drift: cfg.drift.window_rows > 0,
    })
}

/// A shadow model reads the rows the served model decodes: every feature it needs must be
/// one of the served model's.
fn load_shadow(path: &Path, served: &[String], cfg: &OperatorConfig) -> Result<Shadow> {
    let model = with_precision(mmnet_core::artifact::load(path)?, cfg);
    let digest = mmnet_core::artifact::model_digest(&model)?;
    let columns =
        feature_positions(&model.features, served).map_err(|f| OperatorError::Config {
            what: "model.shadow_path".into(),
            reason: format!(
                "the shadow model at {} needs feature `{f}`, which the served model does not read",
                path.display()
            ),
        })?;
    Ok(Shadow {
        model,
        digest,
        columns,
    })
}

/// Where each of `wanted` sits in `have`, or the first one missing.
fn feature_positions(
    wanted: &[String],
    have: &[String],
) -> std::result::Result<Vec<usize>, String> {
    wanted
        .iter()
        .map(|f| have.iter().position(|h| h == f).ok_or_else(|| f.clone()))
        .collect()
}

/// What `path` names right now: the resolved directory and the manifest's bytes. Changes
/// when a symlink is flipped, a directory replaced, or a model written in place.
pub fn fingerprint(path: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let resolved = std::fs::canonicalize(path).ok()?;
    let manifest = if resolved.is_dir() {
        resolved.join(mmnet_core::artifact::MANIFEST_FILE)
    } else {
        resolved.clone()
    };
    Some((resolved, std::fs::read(manifest).ok()?))
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `[model] watch` saw the path change.
    Watch,
}

/// Reloads the model from `cfg.model.path` and swaps it in if it loads and fits; otherwise
/// the old one keeps serving. Blocking (loads files): call it off the async runtime.
pub fn reload(cfg: &OperatorConfig, serving: &Serving, metrics: &Metrics, why: Trigger) {
    let path = cfg.model.path.clone().unwrap_or_default();
    let old = serving.current();
    let result = load_scorer(cfg, &path).and_then(|new| {
        // The input carries the served model's features (producers were built for it): a
        // model needing another one would dead-letter every record.
        feature_positions(&new.model.features, &old.model.features)
            .map(|_| new)
            .map_err(|f| OperatorError::Config {
                what: "model.path".into(),
                reason: format!(
                    "the new model needs feature `{f}`, which the input (the serving model's features) does not carry"
                ),
            })
    });
    match result {
        Ok(new) if new.digest == old.digest && shadow_digest(&new) == shadow_digest(&old) => {
            info!(trigger = ?why, digest = %old.digest, "model reload: unchanged");
            metrics
                .model_reloads
                .get_or_create(&vec![("result", "unchanged")])
                .inc();
        }
        Ok(new) => {
            let (digest, shadow) = (new.digest.clone(), shadow_digest(&new).map(str::to_string));
            let prev = serving.swap(Arc::new(new));
            metrics.set_model(&cfg.model.name, &prev.digest, &digest);
            metrics
                .model_reloads
                .get_or_create(&vec![("result", "ok")])
                .inc();
            info!(trigger = ?why, from = %prev.digest, to = %digest, shadow = ?shadow, path = %path.display(), "model swapped");
        }
        Err(e) => {
            metrics
                .model_reloads
                .get_or_create(&vec![("result", "failed")])
                .inc();
            warn!(trigger = ?why, error = %e, serving = %old.digest, "model reload failed; the old model keeps serving");
        }
    }
}

fn shadow_digest(s: &Scorer) -> Option<&str> {
    s.shadow.as_ref().map(|x| x.digest.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_name_the_missing_feature() {
        let have: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(
            feature_positions(&["c".into(), "a".into()], &have),
            Ok(vec![2, 0])
        );
        assert_eq!(
            feature_positions(&["a".into(), "z".into()], &have),
            Err("z".to_string())
        );
    }

    #[test]
    fn fingerprint_follows_symlinks_and_contents() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for (dir, text) in [(&a, "1"), (&b, "2")] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("manifest.json"), text).unwrap();
        }
        let link = d.path().join("current");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let fa = fingerprint(&link).unwrap();
        assert_eq!(fingerprint(&link), Some(fa.clone()));
        // Flip the symlink atomically (rename over it), as a roll-out does.
        let tmp = d.path().join("tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        let fb = fingerprint(&link).unwrap();
        assert_ne!(fa, fb);
        // Rewritten in place: the manifest's bytes differ.
        std::fs::write(b.join("manifest.json"), "3").unwrap();
        assert_ne!(fingerprint(&link).unwrap(), fb);
        assert_eq!(fingerprint(&d.path().join("missing")), None);
    }
}
