//! Rows/s of the scoring kernel as the Python binding calls it (`Model::score_columns` over
//! one f32 slice per feature, rayon across rows), for benches/python_score.py to print next
//! to the Python call on the same model and rows.
//!
//! usage: score_columns MODEL_DIR COLUMNS.f32 ROWS REPEATS
//! COLUMNS.f32: little-endian f32, column-major (feature 0's ROWS values, then feature 1's...).

use mmnet_core::kernel::Threads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        return Err("usage: score_columns MODEL_DIR COLUMNS.f32 ROWS REPEATS".into());
    }
    let model = mmnet_core::artifact::load(std::path::Path::new(&a[1]))?;
    let rows: usize = a[3].parse()?;
    let repeats: usize = a[4].parse()?;
    let bytes = std::fs::read(&a[2])?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let d = model.features.len();
    if values.len() != rows * d {
        return Err(format!("{} values, expected {rows} x {d}", values.len()).into());
    }
    let cols: Vec<&[f32]> = values.chunks_exact(rows).collect();
    model.score_columns(&cols, false, None, Threads::Rayon)?; // warm-up (packs the kernel)
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t0 = std::time::Instant::now();
        let s = model.score_columns(&cols, false, None, Threads::Rayon)?;
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(s);
    }
    println!(
        "{{\"rows\": {rows}, \"seconds\": {best}, \"rows_per_s\": {}}}",
        rows as f64 / best
    );
    Ok(())
}
