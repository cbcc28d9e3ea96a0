//! SQL surface: `mmnet_score(*)` expansion (plain, aliased, in WHERE / ORDER BY /
//! subqueries), explicit arguments, type casts, NULL/NaN handling, missing columns, several
//! models, and equality with the core scorer.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int32Array,
    StringArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use mmnet_arrow::sql::{ModelRegistry, register_table};
use mmnet_core::{FitConfig, Model, ModelParams, TrainData, TrainParams, fit};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 300;

fn train(features: &[&str], seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = features.len();
    let u = Array2::from_shape_simple_fn((400, d), || rng.random_range(0.0f32..10.0));
    let l = Array2::from_shape_simple_fn((10, d), || rng.random_range(20.0f32..30.0));
    let f: Vec<String> = features.iter().map(|s| s.to_string()).collect();
    fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: l.view(),
        },
        &FitConfig {
            model: ModelParams {
                hidden_dim: 32,
                latent_dim: 16,
                ..Default::default()
            }
            .with_memory_size(8),
            train: TrainParams {
                epochs: 2,
                batch_size: 128,
                seed,
                ..Default::default()
            },
            ..Default::default()
        },
        &mut mmnet_core::train::Silent,
    )
    .unwrap()
}

/// `readings`: id (utf8), c (decimal), a (int32), ts (uint8), b (float64): the features
/// a, b, c out of order, with other columns around them and three different numeric types.
fn readings() -> (RecordBatch, Array2<f32>) {
    let a: Vec<i32> = (0..N as i32).map(|i| i % 11).collect();
    let b: Vec<f64> = (0..N).map(|i| (i as f64 * 0.37) % 9.0).collect();
    let c: Vec<i128> = (0..N as i128).map(|i| (i * 731) % 2500).collect(); // 2 decimals: 0..25
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("c", DataType::Decimal128(10, 2), false),
        Field::new("a", DataType::Int32, false),
        Field::new("ts", DataType::UInt8, false),
        Field::new("b", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..N).map(|i| format!("r{i}")),
        )),
        Arc::new(
            Decimal128Array::from(c.clone())
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(Int32Array::from(a.clone())),
        Arc::new(UInt8Array::from_iter_values((0..N).map(|i| i as u8))),
        Arc::new(Float64Array::from(b.clone())),
    ];
    let x = Array2::from_shape_fn((N, 3), |(i, j)| match j {
        0 => a[i] as f32,
        1 => b[i] as f32,
        _ => c[i] as f32 / 100.0,
    });
    (RecordBatch::try_new(schema, cols).unwrap(), x)
}

async fn session(models: &[(&str, Model)]) -> SessionContext {
    let ctx = SessionContext::new();
    let mut reg = ModelRegistry::default();
    for (name, m) in models {
        reg.register(&ctx, name, m.clone()).unwrap();
    }
    let (batch, _) = readings();
    let t = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
    ctx.register_table("readings", Arc::new(t)).unwrap();
    ctx
}

/// A session with `m` as `mmnet` and table `t` = `batches`, in one partition (in order).
fn session_with_table(m: &Model, batches: Vec<RecordBatch>) -> SessionContext {
    let ctx = SessionContext::new();
    ModelRegistry::default()
        .register(&ctx, "mmnet", m.clone())
        .unwrap();
    let schema = batches[0].schema();
    let t = MemTable::try_new(schema, vec![batches]).unwrap();
    ctx.register_table("t", Arc::new(t)).unwrap();
    ctx
}

async fn floats(ctx: &SessionContext, sql: &str) -> Vec<Option<f32>> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<Float32Array>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i)))
        })
        .collect()
}

/// `EXPLAIN sql` as text.
async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string()
}

async fn plan_error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("`{sql}` succeeded"),
        },
    }
}

#[tokio::test]
async fn wildcard_scores_equal_the_core_scorer() {
    let m = train(&["a", "b", "c"], 1);
    let ctx = session(&[("mmnet", m.clone())]).await;
    let (_, x) = readings();
    let core = m.score(x.view(), false, None).unwrap();
    let sql = floats(&ctx, "SELECT mmnet_score(*) FROM readings").await;
    assert_eq!(sql.len(), N);
    for (s, c) in sql.iter().zip(&core.score) {
        assert_eq!(s.unwrap(), *c);
    }
    let s_sum = floats(&ctx, "SELECT mmnet_s_sum(*) FROM readings").await;
    let s_kl = floats(&ctx, "SELECT mmnet_s_kl(r.*) FROM readings AS r").await;
    for i in 0..N {
        assert_eq!(s_sum[i].unwrap(), core.raw.s_sum[i]);
        assert_eq!(s_kl[i].unwrap(), core.raw.s_kl[i]);
    }
    // The output column keeps the name the user wrote.
    let df = ctx
        .sql("SELECT mmnet_score(*) FROM readings")
        .await
        .unwrap();
    assert_eq!(df.schema().field(0).name(), "mmnet_score(*)");
    // is_anomaly agrees with the threshold.
    let batches = ctx
        .sql("SELECT mmnet_is_anomaly(*) FROM readings")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let flags = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    assert_eq!(flags.value(0), core.is_anomaly[0]);
    let n_flag = batches
        .iter()
        .map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .true_count()
        })
        .sum::<usize>();
    assert_eq!(n_flag, core.is_anomaly.iter().filter(|&&f| f).count());
}

#[tokio::test]
async fn explicit_arguments_in_model_order() {
    let m = train(&["a", "b", "c"], 2);
    let ctx = session(&[("mmnet", m.clone())]).await;
    let star = floats(&ctx, "SELECT mmnet_score(*) FROM readings").await;
    let explicit = floats(&ctx, "SELECT mmnet_score(a, b, c) FROM readings").await;
    assert_eq!(star, explicit);
    let err = plan_error(&ctx, "SELECT mmnet_score(a, b) FROM readings").await;
    assert!(
        err.contains("takes the model's 3 features in order (a, b, c), got 2"),
        "{err}"
    );
    let err = plan_error(&ctx, "SELECT mmnet_score(a, id, c) FROM readings").await;
    assert!(
        err.contains("argument 2 (`id`, for feature `b`) has type Utf8"),
        "{err}"
    );
}

#[tokio::test]
async fn where_order_by_and_subqueries() {
    let m = train(&["a", "b", "c"], 3);
    let ctx = session(&[("mmnet", m.clone())]).await;
    let (_, x) = readings();
    let core = m.score(x.view(), false, None).unwrap();
    let mut sorted = core.score.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = floats(
        &ctx,
        "SELECT mmnet_score(*) FROM readings ORDER BY mmnet_score(*) DESC LIMIT 5",
    )
    .await;
    assert_eq!(
        top.iter().map(|v| v.unwrap()).collect::<Vec<_>>(),
        sorted[..5].to_vec()
    );
    // A cut strictly between two scores, as SQL compares the f32 scores with an f64 literal.
    let cut = (f64::from(sorted[20]) + f64::from(sorted[21])) / 2.0;
    let above = floats(
        &ctx,
        &format!("SELECT mmnet_score(*) FROM readings WHERE mmnet_score(*) > {cut}"),
    )
    .await;
    assert_eq!(above.len(), 21); // sorted[0..=20]
    assert_eq!(
        above.len(),
        core.score.iter().filter(|&&s| f64::from(s) > cut).count()
    );
    let sub = floats(
        &ctx,
        &format!("SELECT s FROM (SELECT id, mmnet_score(r.*) AS s FROM readings r) WHERE s > {cut} ORDER BY s DESC"),
    )
    .await;
    let mut expected: Vec<f32> = above.iter().map(|v| v.unwrap()).collect();
    expected.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(sub.iter().map(|v| v.unwrap()).collect::<Vec<_>>(), expected);
    // An IN subquery using the score.
    let ids = ctx
        .sql(&format!("SELECT count(*) FROM readings WHERE id IN (SELECT id FROM readings WHERE mmnet_score(*) > {cut})"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = ids[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n as usize, above.len());
}

#[tokio::test]
async fn missing_feature_is_a_planning_error_naming_it() {
    let m = train(&["a", "b", "zeta"], 4);
    let ctx = session(&[("mmnet", m)]).await;
    let err = plan_error(&ctx, "SELECT mmnet_score(*) FROM readings").await;
    assert!(
        err.contains("feature `zeta` is not a column of the input"),
        "{err}"
    );
    assert!(err.contains("readings.a"), "lists the columns: {err}");
    let err = plan_error(&ctx, "SELECT mmnet_score(r.*) FROM readings r").await;
    assert!(err.contains("`zeta` is not a column of `r`"), "{err}");
}

#[tokio::test]
async fn null_and_non_finite_features_give_null_scores() {
    let m = train(&["a", "b"], 5);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float32, true),
        Field::new("b", DataType::Float64, true),
    ]));
    let a = Float32Array::from(vec![Some(1.0), None, Some(f32::NAN), Some(2.0), Some(3.0)]);
    let b = Float64Array::from(vec![
        Some(1.0),
        Some(1.0),
        Some(1.0),
        Some(f64::INFINITY),
        Some(4.0),
    ]);
    let batch = RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap();
    let ctx = session_with_table(&m, vec![batch]);
    let s = floats(&ctx, "SELECT mmnet_score(*) FROM t").await;
    assert!(s[0].is_some() && s[4].is_some());
    assert_eq!(&s[1..4], &[None, None, None]);
    let x = Array2::from_shape_vec((1, 2), vec![3.0f32, 4.0]).unwrap();
    assert_eq!(
        s[4].unwrap(),
        m.score(x.view(), false, None).unwrap().score[0]
    );
}

/// Batch after batch in one stream: a larger batch, then a smaller one with missing values,
/// then a larger one again each score only their own rows (nothing carried over from the
/// batch before, whatever the UDF reuses between calls).
#[tokio::test]
async fn consecutive_batches_of_different_sizes_score_their_own_rows() {
    let m = train(&["a", "b"], 6);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float32, true),
        Field::new("b", DataType::Float32, true),
    ]));
    let rows: [Vec<(Option<f32>, Option<f32>)>; 3] = [
        (0..7).map(|i| (Some(9.0 + i as f32), Some(-3.0))).collect(),
        vec![
            (Some(0.5), None),
            (Some(0.25), Some(0.75)),
            (None, Some(1.0)),
        ],
        (0..6).map(|i| (Some(i as f32 * 0.1), Some(0.2))).collect(),
    ];
    let batches: Vec<RecordBatch> = rows
        .iter()
        .map(|r| {
            let a = Float32Array::from(r.iter().map(|p| p.0).collect::<Vec<_>>());
            let b = Float32Array::from(r.iter().map(|p| p.1).collect::<Vec<_>>());
            RecordBatch::try_new(schema.clone(), vec![Arc::new(a), Arc::new(b)]).unwrap()
        })
        .collect();
    let ctx = session_with_table(&m, batches);
    let got = floats(&ctx, "SELECT mmnet_score(*) FROM t").await;
    let all: Vec<(Option<f32>, Option<f32>)> = rows.concat();
    assert_eq!(got.len(), all.len());
    for (i, (&(a, b), g)) in all.iter().zip(&got).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                let x = Array2::from_shape_vec((1, 2), vec![a, b]).unwrap();
                let want = m.score(x.view(), false, None).unwrap().score[0];
                assert_eq!(*g, Some(want), "row {i}");
            }
            _ => assert_eq!(*g, None, "row {i}"),
        }
    }
}

#[tokio::test]
async fn several_models_under_their_own_names() {
    let m1 = train(&["a", "b", "c"], 6);
    let m2 = train(&["b", "c"], 7);
    let ctx = session(&[("mmnet", m1.clone()), ("netflow", m2.clone())]).await;
    let batches = ctx
        .sql("SELECT mmnet_score(*) AS s1, netflow_score(*) AS s2, netflow_s_sum(b, c) AS s3 FROM readings")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (_, x) = readings();
    let c1 = m1.score(x.view(), false, None).unwrap();
    let c2 = m2
        .score(x.slice(ndarray::s![.., 1..]), false, None)
        .unwrap();
    let col = |i: usize| {
        batches[0]
            .column(i)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .clone()
    };
    assert_eq!(col(0).value(7), c1.score[7]);
    assert_eq!(col(1).value(7), c2.score[7]);
    assert_eq!(col(2).value(7), c2.raw.s_sum[7]);
    let mut reg = ModelRegistry::default();
    assert!(reg.register(&ctx, "Bad-Name", m1.clone()).is_err());
}

#[tokio::test]
async fn parquet_table_on_shipped_data_matches_core() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/spambase.parquet");
    let ds = mmnet_arrow::load_dataset(
        &path,
        &mmnet_arrow::DatasetSpec {
            label_column: "label".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let feats: Vec<&str> = ds.features.iter().map(String::as_str).collect();
    let m = train(&feats, 8);
    let ctx = SessionContext::new();
    ModelRegistry::default()
        .register(&ctx, "mmnet", m.clone())
        .unwrap();
    register_table(&ctx, "spam", path.to_str().unwrap())
        .await
        .unwrap();
    let s = floats(&ctx, "SELECT mmnet_score(*) FROM spam").await;
    let core = m.score(ds.x.view(), false, None).unwrap();
    assert_eq!(s.len(), core.score.len());
    for (a, b) in s.iter().zip(&core.score) {
        assert_eq!(a.unwrap(), *b);
    }
    // Projection pushdown: the scan reads the features, not every column.
    let text = explain(&ctx, "SELECT mmnet_score(*) FROM spam").await;
    assert!(
        text.contains("DataSourceExec") && !text.contains("label"),
        "{text}"
    );
}

/// Every model call is pinned to the digest of the model it was planned with; a process
/// serving another model refuses it, naming both digests (what stops a cluster from mixing
/// model versions).
#[tokio::test]
async fn model_calls_are_pinned_to_the_planning_models_digest() {
    let m1 = train(&["a", "b", "c"], 2);
    let m2 = train(&["a", "b", "c"], 3);
    let d1 = mmnet_core::artifact::model_digest(&m1).unwrap();
    let d2 = mmnet_core::artifact::model_digest(&m2).unwrap();
    assert_ne!(d1, d2);
    let ctx = session(&[("mmnet", m1.clone())]).await;
    // The rewrite adds the pin to wildcard and explicit calls alike.
    let text = explain(
        &ctx,
        "SELECT mmnet_score(*), mmnet_is_anomaly(a, b, c) FROM readings",
    )
    .await;
    let pin = mmnet_arrow::sql::udf::digest_pin(&d1);
    assert!(text.matches(&pin).count() >= 2, "{text}");
    // A query that carries its own (matching) pin scores as before; the output name is the
    // one the user wrote.
    let star = floats(&ctx, "SELECT mmnet_score(*) FROM readings").await;
    let pinned = floats(
        &ctx,
        &format!("SELECT mmnet_score(a, b, c, '{pin}') FROM readings"),
    )
    .await;
    assert_eq!(star, pinned);
    let names = ctx
        .sql("SELECT mmnet_score(*) FROM readings")
        .await
        .unwrap()
        .schema()
        .field(0)
        .name()
        .clone();
    assert_eq!(names, "mmnet_score(*)");
    // Planned elsewhere with m2: this process (serving m1) refuses, naming both digests.
    let other = mmnet_arrow::sql::udf::digest_pin(&d2);
    let err = plan_error(
        &ctx,
        &format!("SELECT mmnet_score(a, b, c, '{other}') FROM readings"),
    )
    .await;
    assert!(err.contains("model digest mismatch"), "{err}");
    assert!(err.contains(&d1) && err.contains(&d2), "{err}");
    // A string that is not a pin is an ordinary (wrong) argument.
    let err = plan_error(&ctx, "SELECT mmnet_score(a, b, c, 'x') FROM readings").await;
    assert!(err.contains("got 4 argument(s)"), "{err}");
}

/// A directory of Parquet files with hive-style partitions is one table: every row once,
/// the partition as a column, scores equal to the core scorer's.
#[tokio::test]
async fn a_partitioned_parquet_directory_is_one_table() {
    use parquet::arrow::ArrowWriter;
    let m = train(&["a", "b", "c"], 4);
    let (batch, x) = readings();
    let dir = tempfile::tempdir().unwrap();
    for (k, (start, len)) in [(0usize, 100usize), (100, 120), (220, 80)]
        .iter()
        .enumerate()
    {
        let part = dir.path().join(format!("day=2026-11-{:02}", 28 + k));
        std::fs::create_dir_all(&part).unwrap();
        let f = std::fs::File::create(part.join(format!("part-{k}.parquet"))).unwrap();
        let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch.slice(*start, *len)).unwrap();
        w.close().unwrap();
    }
    // A stray file that is not Parquet is not part of the table.
    std::fs::write(dir.path().join("README.txt"), "not a table").unwrap();
    let ctx = SessionContext::new();
    ModelRegistry::default()
        .register(&ctx, "mmnet", m.clone())
        .unwrap();
    register_table(&ctx, "r", dir.path().to_str().unwrap())
        .await
        .unwrap();
    let batches = ctx
        .sql("SELECT id, mmnet_score(*) AS s, CAST(day AS VARCHAR) AS day FROM r ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let core = m.score(x.view(), false, None).unwrap();
    let mut seen = 0;
    for b in &batches {
        // DataFusion reads Parquet strings as Utf8View.
        let ids = arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let s = b.column(1).as_any().downcast_ref::<Float32Array>().unwrap();
        let day = arrow::compute::cast(b.column(2), &DataType::Utf8).unwrap();
        let day = day.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let row: usize = ids.value(i)[1..].parse().unwrap();
            assert_eq!(s.value(i), core.score[row], "row {row}");
            let want = if row < 100 {
                28
            } else if row < 220 {
                29
            } else {
                30
            };
            assert_eq!(day.value(i), format!("2026-11-{want}"));
            seen += 1;
        }
    }
    assert_eq!(seen, N);
    // An empty directory is an error naming it.
    let empty = tempfile::tempdir().unwrap();
    let e = register_table(&ctx, "e", empty.path().to_str().unwrap())
        .await
        .expect_err("empty dir");
    assert!(e.to_string().contains("holds no .parquet file"), "{e}");
}
