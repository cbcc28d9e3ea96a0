//! Progress bars (indicatif) for training and scoring; hidden with `--quiet` or when stderr
//! is not a terminal (indicatif hides itself there).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mmnet_core::train::{Progress, TrainObserver};

/// Training progress: one bar over epochs, showing the losses and rows/s.
#[derive(Debug)]
pub struct TrainBar {
    bar: ProgressBar,
}

impl TrainBar {
    /// A bar over `epochs` epochs, with `prefix` (e.g. "run 3/10").
    pub fn new(epochs: usize, quiet: bool, prefix: &str) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(epochs as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}epoch {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} | {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix} ")
        });
        bar.enable_steady_tick(Duration::from_millis(500));
        TrainBar { bar }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn show(&self, p: &Progress) {
        let rps = p.rows_done as f64 / p.epoch_seconds.max(1e-9);
        self.bar.set_message(format!(
            "loss {:.4} (rec {:.4} mask {:.4} kl {:.2}) | {:.0} rows/s",
            p.loss.total, p.loss.rec, p.loss.mask, p.loss.kl, rps
        ));
    }
}

impl TrainObserver for TrainBar {
    fn on_batch(&mut self, p: &Progress) {
        self.show(p);
    }

    fn on_epoch(&mut self, p: &Progress) {
        self.show(p);
        self.bar.set_position((p.epoch + 1) as u64);
    }
}

/// A bar over rows (length known for Parquet/NPZ, a spinner for CSV).
pub fn rows_bar(total: Option<usize>, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "scoring [{bar:30}] {human_pos}/{human_len} rows {per_sec} {elapsed_precise} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}
