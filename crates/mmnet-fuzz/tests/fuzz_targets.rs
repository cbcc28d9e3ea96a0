//! The fuzz targets as property tests (the short pass `make test` runs; `make fuzz` runs the
//! same targets coverage-guided). Per target: arbitrary bytes, then structure-aware
//! mutations of valid seeds (bit flips, byte sets, inserted "interesting" tokens, deletions,
//! truncations, splices), then every input a fuzzer ever found (fuzz/regressions/).
//! `MMNET_FUZZ_CASES` sets the cases per strategy (default 1000).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;

use mmnet_fuzz::seeds::seeds;
use mmnet_fuzz::targets::by_name;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Values that sit on the edges decoders get wrong: overflowing numbers, NaN spellings,
/// empty containers, huge lengths in little-endian, Arrow's continuation marker, TOML and
/// `${VAR}` syntax.
const TOKENS: &[&[u8]] = &[
    b"1e309",
    b"-1e309",
    b"NaN",
    b"null",
    b"18446744073709551616",
    b"-0",
    b"\"\"",
    b"{}",
    b"[]",
    b"4294967295",
    b"${HOME}",
    b"${",
    b"[security]\nprotocol = \"sasl_ssl\"\n",
    b"\"\\u0000\"",
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    &[0, 0, 0, 0],
    b"PAR1",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Token(usize, usize),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Token(p, t)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..256)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn mutate(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for m in muts {
        let at = |p: usize, d: &Vec<u8>| if d.is_empty() { 0 } else { p % (d.len() + 1) };
        match *m {
            Mutation::Flip(p, b) if !d.is_empty() => {
                let i = p % d.len();
                d[i] ^= 1 << b;
            }
            Mutation::Set(p, v) if !d.is_empty() => {
                let i = p % d.len();
                d[i] = v;
            }
            Mutation::Token(p, t) => {
                let i = at(p, &d);
                d.splice(i..i, TOKENS[t].iter().copied());
            }
            Mutation::Delete(p, n) if !d.is_empty() => {
                let i = p % d.len();
                let j = (i + n).min(d.len());
                d.drain(i..j);
            }
            Mutation::Truncate(p) => {
                let i = at(p, &d);
                d.truncate(i);
            }
            Mutation::Splice(a, b, n) if !d.is_empty() => {
                // Copy a run of the input elsewhere in it (repeats structure: fields,
                // record batches, tensors).
                let src = a % d.len();
                let n = n.min(d.len() - src);
                let chunk: Vec<u8> = d[src..src + n].to_vec();
                let dst = at(b, &d);
                d.splice(dst..dst, chunk);
            }
            _ => {}
        }
    }
    d
}

fn cases() -> u32 {
    std::env::var("MMNET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// An input that takes longer than this is a failure (a hang or an allocation far beyond
/// the input's size); it is saved for the regression directory.
const SLOW: std::time::Duration = std::time::Duration::from_secs(2);

fn fuzz(name: &str) {
    let target = by_name(name).unwrap();
    let inner = target.run;
    let run = move |d: &[u8]| {
        let t = std::time::Instant::now();
        inner(d);
        let took = t.elapsed();
        if took > SLOW {
            let p = std::env::temp_dir().join(format!("mmnet-fuzz-slow-{name}-{}", d.len()));
            let _ = std::fs::write(&p, d);
            panic!(
                "{name}: one input of {} bytes took {took:?} (saved to {})",
                d.len(),
                p.display()
            );
        }
    };
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "{name} has no seeds");
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let t = std::time::Instant::now();
    TestRunner::new(config.clone())
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |d| {
            run(&d);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}, arbitrary bytes: {e}"));
    TestRunner::new(config)
        .run(
            &(0..seeds.len(), prop::collection::vec(mutation(), 1..8)),
            |(i, muts)| {
                run(&mutate(&seeds[i], &muts));
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{name}, mutated seeds: {e}"));
    // Every input a fuzzer ever found for this target.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(name);
    let mut replayed = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            run(&std::fs::read(e.path()).unwrap());
            replayed += 1;
        }
    }
    eprintln!(
        "{name}: {} cases in {:.1} s, {replayed} regressions replayed",
        2 * cases(),
        t.elapsed().as_secs_f64()
    );
}

macro_rules! targets {
    ($($name:ident),*) => {
        $(#[test] fn $name() { fuzz(stringify!($name)); })*
    };
}

targets!(
    json_message,
    arrow_message,
    manifest,
    safetensors,
    operator_config,
    csv_table,
    parquet_table
);

/// Seeds reach deep: each is a valid input its decoder accepts, so mutations start inside
/// the format rather than at its first check.
#[test]
fn seeds_are_valid_inputs() {
    use mmnet_kafka::config::InputFormat;
    use mmnet_kafka::decode::Decoder;
    let m = mmnet_fuzz::targets::fixture_manifest();
    let json = Decoder::new(&m.features, InputFormat::Json, 1 << 20);
    let mut out = Vec::new();
    let d = json.decode(Some(&seeds("json_message")[0]), &mut out);
    assert!(d.dead.is_none() && d.rows.len() == 1, "{d:?}");
    let arrow = Decoder::new(&m.features, InputFormat::Arrow, 1 << 20);
    let d = arrow.decode(Some(&seeds("arrow_message")[0]), &mut out);
    assert!(d.dead.is_none() && d.rows.len() == 3, "{d:?}");
    let text = String::from_utf8(seeds("manifest")[0].clone()).unwrap();
    mmnet_core::artifact::parse_manifest(Path::new("m"), &text).unwrap();
    mmnet_core::artifact::weights_from_safetensors(
        Path::new("w"),
        &seeds("safetensors")[0],
        m.features.len(),
        &m.model,
    )
    .unwrap();
    for s in seeds("operator_config") {
        mmnet_kafka::OperatorConfig::from_toml(std::str::from_utf8(&s).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, ext) in [("csv_table", "csv"), ("parquet_table", "parquet")] {
        let p = dir.path().join(format!("t.{ext}"));
        std::fs::write(&p, &seeds(name)[0]).unwrap();
        let spec = mmnet_arrow::features::DatasetSpec {
            label_column: "label".into(),
            features: Some(m.features.clone()),
            ..Default::default()
        };
        let ds = mmnet_arrow::features::load_dataset(&p, &spec).unwrap();
        assert_eq!(ds.x.nrows(), 6, "{name}");
    }
}
