//! Writes every target's seeds to DIR/<target>/seed-N: the starting corpus `make fuzz`
//! gives AFL++. Usage: `cargo run -p mmnet-fuzz --example write_seeds -- DIR`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "fuzz/seeds".into());
    for t in mmnet_fuzz::TARGETS {
        let d = dir.join(t.name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for (i, s) in mmnet_fuzz::seeds::seeds(t.name).iter().enumerate() {
            let p = d.join(format!("seed-{i}"));
            std::fs::write(&p, s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}
