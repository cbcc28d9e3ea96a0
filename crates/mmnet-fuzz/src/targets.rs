//! The fuzz targets. A panic inside one is a bug in mmnet (or a dependency it must guard).

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use mmnet_core::artifact::{
    Manifest, parse_manifest, weights_data_bytes, weights_from_safetensors,
};
use mmnet_kafka::OperatorConfig;
use mmnet_kafka::config::InputFormat;
use mmnet_kafka::decode::Decoder;

/// A named target.
#[derive(Debug)]
pub struct Target {
    /// Directory name under fuzz/seeds and fuzz/regressions, and the afl binary's name.
    pub name: &'static str,
    /// Runs the decoder on the bytes; panics only on a bug.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "json_message",
        run: json_message,
    },
    Target {
        name: "arrow_message",
        run: arrow_message,
    },
    Target {
        name: "manifest",
        run: manifest,
    },
    Target {
        name: "safetensors",
        run: safetensors,
    },
    Target {
        name: "operator_config",
        run: operator_config,
    },
    Target {
        name: "csv_table",
        run: csv_table,
    },
    Target {
        name: "parquet_table",
        run: parquet_table,
    },
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The model the seeds and decoders are built for: the committed fixture model of
/// mmnet-core's artifact tests (a real `mmnet train` output).
pub fn fixture_manifest() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mmnet-core/tests/fixtures/model-v1/manifest.json");
        let text = std::fs::read_to_string(&p).expect("fixture manifest");
        parse_manifest(&p, &text).expect("fixture manifest parses")
    })
}

fn decoder(format: InputFormat) -> &'static Decoder {
    static J: OnceLock<Decoder> = OnceLock::new();
    static A: OnceLock<Decoder> = OnceLock::new();
    let cell = if format == InputFormat::Json { &J } else { &A };
    // 1 MiB: the size limit check is itself under test (inputs above it are dead letters).
    cell.get_or_init(|| Decoder::new(&fixture_manifest().features, format, 1 << 20))
}

/// What the operator relies on from a decoded message: whole rows only, one row index per
/// row, a dead reason whenever rows are missing.
fn check_decoded(d: &Decoder, data: &[u8]) {
    let mut out = vec![7.0f32; 3]; // a previous message's rows, which must stay untouched
    let decoded = d.decode(Some(data), &mut out);
    assert_eq!(
        &out[..3],
        &[7.0; 3],
        "decode changed rows it did not append"
    );
    let appended = out.len() - 3;
    assert_eq!(
        appended,
        decoded.rows.len() * d.width(),
        "appended values are not whole rows"
    );
    if decoded.rows.is_empty() {
        assert!(decoded.dead.is_some(), "nothing decoded and no dead reason");
    }
    assert!(
        out[3..].iter().all(|v| v.is_finite()),
        "a non-finite value reached the scorer"
    );
}

/// A JSON message (`[input] format = "json"`).
pub fn json_message(data: &[u8]) {
    check_decoded(decoder(InputFormat::Json), data);
}

/// An Arrow IPC stream message (`[input] format = "arrow"`).
pub fn arrow_message(data: &[u8]) {
    check_decoded(decoder(InputFormat::Arrow), data);
}

/// A model manifest (`manifest.json`). When it parses, every size it declares must be one
/// the loader can compute without overflow.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = parse_manifest(Path::new("fuzz/manifest.json"), text) {
        let bytes = weights_data_bytes(m.features.len(), &m.model);
        assert!(bytes.is_some(), "a parsed manifest's tensor size overflows");
    }
}

/// A weights file (`weights.safetensors`) for the fixture model's shapes.
pub fn safetensors(data: &[u8]) {
    let m = fixture_manifest();
    if let Ok(w) = weights_from_safetensors(
        Path::new("fuzz/weights.safetensors"),
        data,
        m.features.len(),
        &m.model,
    ) {
        assert!(w.enc1.iter().all(|v| v.is_finite()));
    }
}

/// A pipeline file (`mmnet kafka --config`). `${VAR}` expansion reads the environment, and
/// validation looks at files it names (CA bundles): both only read.
pub fn operator_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = OperatorConfig::from_toml(text) {
        let _ = c.validate();
    }
}

/// A table file read the way `mmnet score`/`train` read one: the reader, then mmnet's own
/// feature extraction over the fixture model's columns.
fn table(data: &[u8], ext: &str) {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
    }
    DIR.with(|dir| {
        let path = dir.path().join(format!("input.{ext}"));
        let mut f = std::fs::File::create(&path).expect("temp file");
        f.write_all(data).expect("write");
        drop(f);
        let Ok(reader) = mmnet_arrow::read::open(&path, None, 1024) else {
            return;
        };
        let schema = reader.schema.clone();
        let spec = mmnet_arrow::features::DatasetSpec {
            label_column: "label".into(),
            features: Some(fixture_manifest().features.clone()),
            ..Default::default()
        };
        if let Ok(ds) =
            mmnet_arrow::features::dataset_from_batches(&path, &schema, reader.batches, &spec)
        {
            assert!(ds.x.iter().all(|v| v.is_finite()), "non-finite feature");
        }
    });
}

/// A CSV file.
pub fn csv_table(data: &[u8]) {
    table(data, "csv");
}

/// A Parquet file.
pub fn parquet_table(data: &[u8]) {
    table(data, "parquet");
}
