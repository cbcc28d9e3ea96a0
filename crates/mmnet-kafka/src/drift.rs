//! Drift signals over a window of recent batches, against the serving model's training
//! profile (`mmnet_core::profile`): the PSI of `mmnet_score`, the flagged rate, and rows with
//! a feature outside its training range. Each batch brings its own histogram
//! ([`BatchDrift`], computed while it is scored); the window adds and drops whole batches.

use std::collections::VecDeque;

use mmnet_core::profile::{BINS, psi};

use crate::metrics::Metrics;

/// One batch's contribution, computed by the scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchDrift {
    /// Digest of the model that scored the batch (a swap restarts the window).
    pub digest: String,
    /// Scored rows per training-decile bin of `mmnet_score`.
    pub bins: [u64; BINS],
    /// Rows flagged `is_anomaly`.
    pub flagged: u64,
    /// Rows scored.
    pub rows: u64,
    /// Rows with the feature outside its training range, for features where that happened.
    pub out_of_range: Vec<(String, u64)>,
}

/// The window behind `mmnet_score_psi` and `mmnet_flagged_ratio`.
#[derive(Debug)]
pub struct DriftWindow {
    window_rows: usize,
    max_features: usize,
    digest: String,
    batches: VecDeque<([u64; BINS], u64, u64)>,
    bins: [u64; BINS],
    flagged: u64,
    rows: u64,
    named: Vec<String>,
}

impl DriftWindow {
    /// A window of about `window_rows` rows; `max_features` features get their own series.
    pub fn new(window_rows: usize, max_features: usize) -> Self {
        Self {
            window_rows,
            max_features,
            digest: String::new(),
            batches: VecDeque::new(),
            bins: [0; BINS],
            flagged: 0,
            rows: 0,
            named: Vec::new(),
        }
    }

    /// Adds a batch, drops the oldest batches beyond the window, and updates the metrics.
    pub fn observe(&mut self, b: &BatchDrift, metrics: &Metrics) {
        if b.digest != self.digest {
            // Another model, another profile: its PSI starts from its own traffic.
            self.digest.clone_from(&b.digest);
            self.batches.clear();
            self.bins = [0; BINS];
            self.flagged = 0;
            self.rows = 0;
        }
        self.batches.push_back((b.bins, b.flagged, b.rows));
        for (t, x) in self.bins.iter_mut().zip(&b.bins) {
            *t += x;
        }
        self.flagged += b.flagged;
        self.rows += b.rows;
        while self.batches.len() > 1
            && self.rows - self.batches.front().map_or(0, |f| f.2) >= self.window_rows as u64
        {
            if let Some((bins, flagged, rows)) = self.batches.pop_front() {
                for (t, x) in self.bins.iter_mut().zip(&bins) {
                    *t -= x;
                }
                self.flagged -= flagged;
                self.rows -= rows;
            }
        }
        if let Some(p) = psi(&self.bins) {
            metrics.score_psi.set(p);
        }
        if self.rows > 0 {
            metrics
                .flagged_ratio
                .set(self.flagged as f64 / self.rows as f64);
        }
        for (feature, n) in &b.out_of_range {
            let label = if self.named.contains(feature) {
                feature.clone()
            } else if self.named.len() < self.max_features {
                self.named.push(feature.clone());
                feature.clone()
            } else {
                "_other".to_string()
            };
            metrics
                .out_of_range
                .get_or_create(&vec![("feature", label)])
                .inc_by(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(digest: &str, bin: usize, rows: u64, flagged: u64) -> BatchDrift {
        let mut bins = [0; BINS];
        bins[bin] = rows;
        BatchDrift {
            digest: digest.into(),
            bins,
            flagged,
            rows,
            out_of_range: vec![],
        }
    }

    #[test]
    fn window_slides_and_restarts_on_a_new_model() {
        let m = Metrics::new();
        let mut w = DriftWindow::new(1000, 2);
        // Training-like: 100 rows in each bin.
        for bin in 0..BINS {
            w.observe(&batch("a", bin, 100, 1), &m);
        }
        assert!(m.score_psi.get() < 1e-9, "{}", m.score_psi.get());
        assert!((m.flagged_ratio.get() - 0.01).abs() < 1e-12);
        // A shift: everything lands in the top bin; the old batches slide out.
        for _ in 0..10 {
            w.observe(&batch("a", 9, 100, 50), &m);
        }
        assert!(m.score_psi.get() > 1.0, "{}", m.score_psi.get());
        assert!((m.flagged_ratio.get() - 0.5).abs() < 1e-12);
        // A swap restarts the window from the new model's traffic.
        w.observe(&batch("b", 3, 100, 0), &m);
        assert_eq!(w.rows, 100);
        assert_eq!(m.flagged_ratio.get(), 0.0);
    }

    #[test]
    fn out_of_range_series_are_capped() {
        let m = Metrics::new();
        let mut w = DriftWindow::new(1000, 2);
        let mut b = batch("a", 0, 10, 0);
        b.out_of_range = vec![("x".into(), 3), ("y".into(), 2), ("z".into(), 1)];
        w.observe(&b, &m);
        w.observe(&b, &m);
        let text = m.render();
        assert!(
            text.contains("mmnet_out_of_range_total{feature=\"x\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("mmnet_out_of_range_total{feature=\"y\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("mmnet_out_of_range_total{feature=\"_other\"} 2"),
            "{text}"
        );
        assert!(!text.contains("feature=\"z\""), "{text}");
    }
}
