//! Progress bars (indicatif) for training and scoring; hidden with `--quiet` or when stderr
//! is not a terminal (indicatif hides itself there).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mmnet_core::train::{Progress, TrainObserver};

/// Training progress: one bar over epochs, showing the losses and rows/s.
#[derive(Debug)]
pub struct TrainBar {
    bar: ProgressBar,
    /// (current run, total runs) when one bar follows several trainings.
    runs: Option<(usize, usize)>,
}

impl TrainBar {
    /// A bar over `epochs` epochs that follows `runs` trainings in a row.
    pub fn new(epochs: usize, quiet: bool, runs: usize) -> Self {
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
        let runs = (runs > 1).then_some((1, runs));
        if let Some((r, n)) = runs {
            bar.set_prefix(format!("training {r}/{n} "));
        }
        bar.enable_steady_tick(Duration::from_millis(500));
        TrainBar { bar, runs }
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
        if p.epoch + 1 == p.epochs
            && let Some((r, n)) = &mut self.runs
            && *r < *n
        {
            *r += 1;
            self.bar.set_prefix(format!("training {r}/{n} "));
            self.bar.set_position(0);
        }
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
