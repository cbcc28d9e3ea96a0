//! What the operator writes: score records (schemas/score.schema.json, or Arrow IPC) and
//! dead-letter headers.

use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use serde::Serialize;

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Row within an Arrow IPC message (absent for JSON input, one row per message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
}

/// The model that scored a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRef<'a> {
    /// `model.name` from the configuration.
    pub name: &'a str,
    /// SHA-256 of the model's weights and manifest (`mmnet_core::artifact::model_digest`).
    pub digest: &'a str,
}

/// One score record (schemas/score.schema.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRecord<'a> {
    /// Input coordinates: every input offset can be accounted for.
    pub source: Source<'a>,
    /// The input key as UTF-8, or null (no key, or see `key_base64`).
    pub key: Option<&'a str>,
    /// The input key base64-encoded, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// Input message timestamp (ms since the epoch), if it had one.
    pub timestamp: Option<i64>,
    /// The model's configured score (higher = more anomalous).
    pub mmnet_score: f32,
    /// Attention mass on normal memory items (paper's S_sum).
    pub s_sum: f32,
    /// KL divergence of the attention from uniform (paper's S_KL).
    pub s_kl: f32,
    /// `mmnet_score > threshold`.
    pub is_anomaly: bool,
    /// Which model.
    pub model: ModelRef<'a>,
    /// Why the record scored as it did (`output.explain = true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<ExplainRef<'a>>,
    /// The shadow model's verdict on the same row (`model.shadow_path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowRef<'a>>,
}

/// The `shadow` object of a score record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowRef<'a> {
    /// The shadow model's weights digest.
    pub digest: &'a str,
    /// Its `mmnet_score` (its own configured score).
    pub mmnet_score: f32,
    /// `mmnet_score > its own threshold`.
    pub is_anomaly: bool,
}

/// The shadow model's scores of one input message's rows.
#[derive(Debug, Clone, Copy)]
pub struct ShadowScores<'a> {
    /// Its digest.
    pub digest: &'a str,
    /// `mmnet_score` per row.
    pub score: &'a [f32],
    /// Anomaly flag per row.
    pub is_anomaly: &'a [bool],
}

/// The `explain` object of a score record (a view of an `mmnet_core` explanation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainRef<'a> {
    /// Most attended memory items, highest weight first.
    pub memory: &'a [mmnet_core::explain::MemoryAttention],
    /// Features with the largest share of the reconstruction error, largest first.
    pub features: &'a [mmnet_core::explain::FeatureContribution],
}

impl<'a> From<&'a mmnet_core::explain::Explanation> for ExplainRef<'a> {
    fn from(e: &'a mmnet_core::explain::Explanation) -> Self {
        ExplainRef {
            memory: &e.memory,
            features: &e.features,
        }
    }
}

/// Splits a key into its JSON fields: UTF-8 text, or base64 when it is binary.
pub fn key_fields(key: Option<&[u8]>) -> (Option<&str>, Option<String>) {
    match key {
        None => (None, None),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => (Some(s), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(k)),
            ),
        },
    }
}

/// Schema of Arrow score output: the JSON record's fields, flattened (with the shadow
/// model's `shadow_mmnet_score`, `shadow_is_anomaly`, `shadow_model_digest` when one runs).
pub fn arrow_schema(shadow: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("source_topic", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("source_row", DataType::UInt32, false),
        Field::new("timestamp", DataType::Int64, true),
        Field::new("mmnet_score", DataType::Float32, false),
        Field::new("s_sum", DataType::Float32, false),
        Field::new("s_kl", DataType::Float32, false),
        Field::new("is_anomaly", DataType::Boolean, false),
        Field::new("model_name", DataType::Utf8, false),
        Field::new("model_digest", DataType::Utf8, false),
    ];
    if shadow {
        fields.push(Field::new("shadow_mmnet_score", DataType::Float32, false));
        fields.push(Field::new("shadow_is_anomaly", DataType::Boolean, false));
        fields.push(Field::new("shadow_model_digest", DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

/// Scores of the rows of one input message.
#[derive(Debug, Clone, Copy)]
pub struct RowScores<'a> {
    /// Row index in the message.
    pub rows: &'a [usize],
    /// `mmnet_score` per row.
    pub score: &'a [f32],
    /// S_sum per row.
    pub s_sum: &'a [f32],
    /// S_KL per row.
    pub s_kl: &'a [f32],
    /// Anomaly flag per row.
    pub is_anomaly: &'a [bool],
    /// Explanation per row, when configured.
    pub explain: Option<&'a [mmnet_core::explain::Explanation]>,
    /// The shadow model's scores, when one runs.
    pub shadow: Option<ShadowScores<'a>>,
}

/// One Arrow IPC stream holding the scores of one input message's rows.
pub fn arrow_message(
    source: &Source<'_>,
    timestamp: Option<i64>,
    model: &ModelRef<'_>,
    s: RowScores<'_>,
) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let n = s.rows.len();
    let mut columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(StringArray::from(vec![source.topic; n])),
        Arc::new(Int32Array::from(vec![source.partition; n])),
        Arc::new(Int64Array::from(vec![source.offset; n])),
        Arc::new(UInt32Array::from_iter_values(
            s.rows.iter().map(|&r| r as u32),
        )),
        Arc::new(Int64Array::from(vec![timestamp; n])),
        Arc::new(Float32Array::from(s.score.to_vec())),
        Arc::new(Float32Array::from(s.s_sum.to_vec())),
        Arc::new(Float32Array::from(s.s_kl.to_vec())),
        Arc::new(BooleanArray::from(s.is_anomaly.to_vec())),
        Arc::new(StringArray::from(vec![model.name; n])),
        Arc::new(StringArray::from(vec![model.digest; n])),
    ];
    if let Some(sh) = s.shadow {
        columns.push(Arc::new(Float32Array::from(sh.score.to_vec())));
        columns.push(Arc::new(BooleanArray::from(sh.is_anomaly.to_vec())));
        columns.push(Arc::new(StringArray::from(vec![sh.digest; n])));
    }
    let batch = RecordBatch::try_new(arrow_schema(s.shadow.is_some()), columns)?;
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

/// Header names on dead letters. The payload is the original message's, byte for byte;
/// the original headers are kept and these are added.
pub mod dlq_header {
    /// Reason, e.g. `missing_feature` (see `DeadReason::as_str`).
    pub const REASON: &str = "mmnet.dlq.reason";
    /// Human-readable error naming the field, column or row.
    pub const ERROR: &str = "mmnet.dlq.error";
    /// Input topic.
    pub const TOPIC: &str = "mmnet.source.topic";
    /// Input partition (decimal).
    pub const PARTITION: &str = "mmnet.source.partition";
    /// Input offset (decimal).
    pub const OFFSET: &str = "mmnet.source.offset";
    /// Rows of an Arrow message that were not scored (comma-separated); absent when the
    /// whole message was not scored.
    pub const ROWS: &str = "mmnet.dlq.rows";
    /// Digest of the model that rejected it.
    pub const MODEL_DIGEST: &str = "mmnet.model.digest";
    /// Present when the dead letter's payload (the input) was dropped because the broker
    /// refused the letter with it: the broker's error. The input is still on its topic.
    pub const PAYLOAD_DROPPED: &str = "mmnet.dlq.payload_dropped";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_record_matches_schema_fields() {
        let (key, key_base64) = key_fields(Some(b"dev-7"));
        let r = ScoreRecord {
            source: Source {
                topic: "t",
                partition: 2,
                offset: 41,
                row: None,
            },
            key,
            key_base64,
            timestamp: Some(1700000000000),
            mmnet_score: 0.25,
            s_sum: -0.5,
            s_kl: 1.0,
            is_anomaly: false,
            model: ModelRef {
                name: "m",
                digest: "ab",
            },
            explain: None,
            shadow: None,
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "source": {"topic": "t", "partition": 2, "offset": 41},
                "key": "dev-7", "timestamp": 1700000000000i64,
                "mmnet_score": 0.25, "s_sum": -0.5, "s_kl": 1.0, "is_anomaly": false,
                "model": {"name": "m", "digest": "ab"}
            })
        );
    }

    /// Every emitted field is in schemas/score.schema.json and every required one is emitted,
    /// at each level: the schema cannot drift from the code.
    #[test]
    fn json_record_follows_the_shipped_schema() {
        fn check(value: &serde_json::Value, schema: &serde_json::Value, at: &str) {
            let props = schema["properties"].as_object().unwrap();
            let obj = value.as_object().unwrap();
            for k in obj.keys() {
                assert!(props.contains_key(k), "{at}{k} is not in the schema");
            }
            for r in schema["required"].as_array().unwrap() {
                assert!(
                    obj.contains_key(r.as_str().unwrap()),
                    "{at}{r} required but missing"
                );
            }
            for (k, v) in obj {
                if v.is_object() {
                    check(v, &props[k], &format!("{at}{k}."));
                }
                if let Some(items) = v.as_array() {
                    assert!(!items.is_empty(), "{at}{k}: test with a non-empty array");
                    for (i, item) in items.iter().enumerate() {
                        check(item, &props[k]["items"], &format!("{at}{k}[{i}]."));
                    }
                }
            }
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../schemas/score.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        use mmnet_core::explain::{Explanation, FeatureContribution, MemoryAttention, MemoryPart};
        let explanation = Explanation {
            mmnet_score: 1.0,
            is_anomaly: true,
            s_sum: 0.1,
            s_kl: 2.0,
            mse: 0.5,
            memory: vec![MemoryAttention {
                item: 40,
                part: MemoryPart::Anomaly,
                weight: 0.9,
            }],
            features: vec![FeatureContribution {
                feature: "bytes".into(),
                value: 1e6,
                reconstruction: 812.0,
                share: 0.7,
            }],
        };
        let shadow = ShadowRef {
            digest: "e",
            mmnet_score: 0.5,
            is_anomaly: false,
        };
        for (key, row, explain, shadow) in [
            (Some(&b"k"[..]), None, None, None),
            (
                Some(&[0xffu8][..]),
                Some(3),
                Some(ExplainRef::from(&explanation)),
                Some(shadow),
            ),
        ] {
            let (key, key_base64) = key_fields(key);
            let r = ScoreRecord {
                source: Source {
                    topic: "t",
                    partition: 0,
                    offset: 1,
                    row,
                },
                key,
                key_base64,
                timestamp: None,
                mmnet_score: 1.0,
                s_sum: 0.0,
                s_kl: 0.0,
                is_anomaly: true,
                model: ModelRef {
                    name: "m",
                    digest: "d",
                },
                explain,
                shadow,
            };
            check(&serde_json::to_value(&r).unwrap(), &schema, "");
        }
    }

    #[test]
    fn binary_keys_are_base64() {
        assert_eq!(key_fields(Some(&[0xff, 0x00])), (None, Some("/wA=".into())));
        assert_eq!(key_fields(None), (None, None));
    }

    #[test]
    fn arrow_message_round_trips() {
        let src = Source {
            topic: "t",
            partition: 1,
            offset: 5,
            row: None,
        };
        let model = ModelRef {
            name: "m",
            digest: "d",
        };
        let shadow = ShadowScores {
            digest: "e",
            score: &[3.0, 4.0],
            is_anomaly: &[true, true],
        };
        for sh in [None, Some(shadow)] {
            let bytes = arrow_message(
                &src,
                None,
                &model,
                RowScores {
                    rows: &[0, 2],
                    score: &[1.0, 2.0],
                    s_sum: &[0.1, 0.2],
                    s_kl: &[0.3, 0.4],
                    is_anomaly: &[false, true],
                    explain: None,
                    shadow: sh,
                },
            )
            .unwrap();
            let mut r =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                    .unwrap();
            let b = r.next().unwrap().unwrap();
            assert_eq!(b.schema(), arrow_schema(sh.is_some()));
            assert_eq!(b.num_rows(), 2);
            let rows = b.column(3).as_any().downcast_ref::<UInt32Array>().unwrap();
            assert_eq!(rows.values().to_vec(), vec![0, 2]);
            if sh.is_some() {
                let s = b.column_by_name("shadow_mmnet_score").unwrap();
                let s = s.as_any().downcast_ref::<Float32Array>().unwrap();
                assert_eq!(s.values().to_vec(), vec![3.0, 4.0]);
            }
        }
    }
}
