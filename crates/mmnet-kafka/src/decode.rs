//! Message payload -> feature rows, or the reason it cannot be scored.
//!
//! Two formats (schemas/): a JSON object keyed by feature name, one row per message; and an
//! Arrow IPC stream with one or more record batches, many rows per message. JSON is parsed
//! straight into the row buffer (no intermediate `Value` tree); keys that are not features,
//! such as ids or timestamps, are skipped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::Cursor;

use arrow::array::Array;
use arrow::ipc::reader::StreamReader;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::config::InputFormat;

/// Why a record went to the dead-letter topic; the `mmnet.dlq.reason` header and the
/// `reason` label of `mmnet_dead_letters_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// No payload, or an Arrow stream without rows.
    Empty,
    /// Larger than `input.max_message_bytes`.
    Oversized,
    /// Not valid JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A feature key is absent.
    MissingFeature,
    /// A feature is a string, boolean, array or object.
    NonNumeric,
    /// A feature is null.
    NullValue,
    /// A feature is NaN, infinite, or overflows f32.
    NonFinite,
    /// Not a readable Arrow IPC stream.
    InvalidArrow,
    /// An Arrow stream without a feature column, or with a non-numeric one.
    ArrowSchema,
    /// Scored, but the broker (or the producer's own limits) refused the score record:
    /// too large, an invalid timestamp. The dead letter names the input by its
    /// coordinates and carries no payload (the input is still on its topic).
    Rejected,
}

impl DeadReason {
    /// Every reason, for metric initialisation and docs.
    pub const ALL: [DeadReason; 11] = [
        DeadReason::Empty,
        DeadReason::Oversized,
        DeadReason::InvalidJson,
        DeadReason::NotAnObject,
        DeadReason::MissingFeature,
        DeadReason::NonNumeric,
        DeadReason::NullValue,
        DeadReason::NonFinite,
        DeadReason::InvalidArrow,
        DeadReason::ArrowSchema,
        DeadReason::Rejected,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Empty => "empty",
            DeadReason::Oversized => "oversized",
            DeadReason::InvalidJson => "invalid_json",
            DeadReason::NotAnObject => "not_an_object",
            DeadReason::MissingFeature => "missing_feature",
            DeadReason::NonNumeric => "non_numeric",
            DeadReason::NullValue => "null_value",
            DeadReason::NonFinite => "non_finite",
            DeadReason::InvalidArrow => "invalid_arrow",
            DeadReason::ArrowSchema => "arrow_schema",
            DeadReason::Rejected => "rejected",
        }
    }
}

/// A message (or some of its rows) that cannot be scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dead {
    /// Category.
    pub reason: DeadReason,
    /// What exactly is wrong, naming the field, column or row.
    pub detail: String,
    /// For Arrow messages whose other rows were scored: the rows that were not (0-based,
    /// over all batches of the stream). `None` = the whole message.
    pub rows: Option<Vec<usize>>,
}

impl Dead {
    fn whole(reason: DeadReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            rows: None,
        }
    }
}

/// What one message decoded to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Row index in the message of each row appended to the feature buffer.
    /// (Borrowed `[0]` for a JSON message: one row, nothing to allocate per message.)
    pub rows: Cow<'static, [usize]>,
    /// Set when the message, or some of its rows, cannot be scored.
    pub dead: Option<Dead>,
    /// The message was an Arrow IPC stream (score records then name their row).
    pub arrow: bool,
}

/// Maps payloads to rows of the model's features, in the model's order.
#[derive(Debug, Clone)]
pub struct Decoder {
    features: Vec<String>,
    index: HashMap<String, usize>,
    format: InputFormat,
    max_bytes: usize,
}

/// The first four bytes of an Arrow IPC stream message (the continuation marker).
const IPC_CONTINUATION: [u8; 4] = [0xff; 4];

impl Decoder {
    /// A decoder for a model with these feature names.
    pub fn new(features: &[String], format: InputFormat, max_bytes: usize) -> Self {
        let index = features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.clone(), i))
            .collect();
        Self {
            features: features.to_vec(),
            index,
            format,
            max_bytes,
        }
    }

    /// Feature index of a JSON key. Producers write keys in one order, usually the model's,
    /// so the feature after the previous match is tried first: one string compare instead of
    /// hashing the key (hashing was the top item in the decode profile).
    fn lookup(&self, key: &str, next: &mut usize) -> Option<usize> {
        let j = match self.features.get(*next) {
            Some(f) if f == key => *next,
            _ => *self.index.get(key)?,
        };
        *next = j + 1;
        Some(j)
    }

    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// Decodes one payload, appending its scorable rows (row-major, `width()` values each) to
    /// `out`. On a whole-message failure `out` is left as it was.
    pub fn decode(&self, payload: Option<&[u8]>, out: &mut Vec<f32>) -> Decoded {
        let bytes = match payload {
            None | Some([]) => return dead(DeadReason::Empty, "message has no payload"),
            Some(b) => b,
        };
        if bytes.len() > self.max_bytes {
            return dead(
                DeadReason::Oversized,
                format!(
                    "payload is {} bytes, more than input.max_message_bytes = {}",
                    bytes.len(),
                    self.max_bytes
                ),
            );
        }
        let arrow = match self.format {
            InputFormat::Arrow => true,
            InputFormat::Json => false,
            InputFormat::Auto => bytes.starts_with(&IPC_CONTINUATION),
        };
        if arrow {
            Decoded {
                arrow: true,
                ..self.decode_arrow(bytes, out)
            }
        } else {
            self.decode_json(bytes, out)
        }
    }

    fn decode_json(&self, bytes: &[u8], out: &mut Vec<f32>) -> Decoded {
        let d = self.width();
        let start = out.len();
        // NaN marks a feature not seen yet: JSON has no NaN, and a value that is not finite
        // as f32 fails the message anyway, so a NaN left after parsing is a missing key (no
        // per-message `seen` vector to allocate).
        out.resize(start + d, f32::NAN);
        let mut problem: Option<Dead> = None;
        let mut next = 0;
        let seed = RowSeed {
            decoder: self,
            next: &mut next,
            row: &mut out[start..],
            problem: &mut problem,
        };
        let mut de = sonic_rs::Deserializer::from_slice(bytes);
        let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
        let failure = match (parsed, problem) {
            (_, Some(p)) => Some(p),
            (Err(e), None) => Some(json_error(bytes, &e)),
            (Ok(()), None) => out[start..].iter().position(|v| v.is_nan()).map(|j| {
                Dead::whole(
                    DeadReason::MissingFeature,
                    format!("feature `{}` is missing", self.features[j]),
                )
            }),
        };
        match failure {
            Some(f) => {
                out.truncate(start);
                Decoded {
                    rows: Cow::Borrowed(&[]),
                    dead: Some(f),
                    arrow: false,
                }
            }
            None => Decoded {
                rows: Cow::Borrowed(&[0]),
                dead: None,
                arrow: false,
            },
        }
    }

    fn decode_arrow(&self, bytes: &[u8], out: &mut Vec<f32>) -> Decoded {
        let start = out.len();
        if let Err(e) = check_ipc_frames(bytes) {
            return dead(
                DeadReason::InvalidArrow,
                format!("not an Arrow IPC stream: {e}"),
            );
        }
        // arrow-ipc panics on some malformed batches (a buffer offset past the body slices
        // out of bounds: found by the `arrow_message` fuzz target). In the operator a panic
        // would stop it, and the replayed message stop it again after every restart: one
        // hostile message, a crash loop. Caught here, it is a dead letter like any other.
        let unwind = std::panic::AssertUnwindSafe(&mut *out);
        match std::panic::catch_unwind(move || {
            let out = unwind;
            self.decode_arrow_unguarded(bytes, out.0)
        }) {
            Ok(d) => d,
            Err(p) => {
                out.truncate(start);
                let msg = mmnet_arrow::read::panic_message(p.as_ref());
                dead(
                    DeadReason::InvalidArrow,
                    format!("malformed Arrow IPC stream (the reader failed: {msg})"),
                )
            }
        }
    }

    fn decode_arrow_unguarded(&self, bytes: &[u8], out: &mut Vec<f32>) -> Decoded {
        let start = out.len();
        let reader = match StreamReader::try_new(Cursor::new(bytes), None) {
            Ok(r) => r,
            Err(e) => {
                return dead(
                    DeadReason::InvalidArrow,
                    format!("not an Arrow IPC stream: {e}"),
                );
            }
        };
        let schema = reader.schema();
        let mut columns = Vec::with_capacity(self.width());
        for name in &self.features {
            let Ok(i) = schema.index_of(name) else {
                return dead(
                    DeadReason::ArrowSchema,
                    format!("feature column `{name}` is missing from the Arrow schema"),
                );
            };
            let dt = schema.field(i).data_type();
            if !mmnet_arrow::features::is_numeric(dt) {
                return dead(
                    DeadReason::ArrowSchema,
                    format!("feature column `{name}` has type {dt}, which is not numeric"),
                );
            }
            columns.push(i);
        }
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let mut base = 0;
        for batch in reader {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    out.truncate(start);
                    return dead(DeadReason::InvalidArrow, format!("Arrow IPC stream: {e}"));
                }
            };
            let arrays: Vec<&dyn Array> =
                columns.iter().map(|&c| batch.column(c).as_ref()).collect();
            let (x, valid) =
                match mmnet_arrow::features::arrays_to_features(&arrays, batch.num_rows()) {
                    Ok(v) => v,
                    Err(e) => {
                        out.truncate(start);
                        return dead(DeadReason::ArrowSchema, e.to_string());
                    }
                };
            for (i, row) in x.outer_iter().enumerate() {
                if valid[i] {
                    out.extend(row.iter());
                    rows.push(base + i);
                } else {
                    bad.push(base + i);
                }
            }
            base += batch.num_rows();
        }
        if base == 0 {
            return dead(DeadReason::Empty, "Arrow stream has no rows");
        }
        let dead = (!bad.is_empty()).then(|| Dead {
            reason: DeadReason::NonFinite,
            detail: format!(
                "{} of {base} rows have a null, NaN or infinite feature (first: row {})",
                bad.len(),
                bad[0]
            ),
            rows: Some(bad),
        });
        Decoded {
            rows: Cow::Owned(rows),
            dead,
            arrow: true,
        }
    }
}

/// Checks an IPC stream's framing against the bytes actually there, before Arrow's reader
/// sees it: every message's metadata and body length must fit in what is left. Arrow's
/// reader allocates what a length prefix claims before reading it, so four hostile bytes
/// claiming 1.7 GB cost a 1.7 GB zeroed allocation per message (found by the
/// `arrow_message` fuzz target); here such a message is a dead letter costing nothing.
pub fn check_ipc_frames(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut at = 0usize;
    let mut messages = 0usize;
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            return Ok(()); // a stream may end without its end-of-stream marker
        }
        let word =
            |b: &[u8]| -> Option<u32> { Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)) };
        let first = word(rest).ok_or("a truncated message length")?;
        // Current format: continuation marker, then the length; legacy: the length alone.
        let (len, header) = if first == 0xffff_ffff {
            (word(&rest[4..]).ok_or("a truncated message length")?, 8)
        } else {
            (first, 4)
        };
        if len == 0 {
            return Ok(()); // end-of-stream marker
        }
        let len = len as usize;
        let meta_end = header + len;
        if len > i32::MAX as usize || meta_end > rest.len() {
            return Err(format!(
                "message {messages} claims {len} bytes of metadata, {} bytes are left",
                rest.len().saturating_sub(header)
            ));
        }
        let msg = arrow::ipc::root_as_message(&rest[header..meta_end])
            .map_err(|e| format!("message {messages} has invalid metadata: {e}"))?;
        let body = msg.bodyLength();
        if body < 0 || body as u64 > (rest.len() - meta_end) as u64 {
            return Err(format!(
                "message {messages} claims a body of {body} bytes, {} bytes are left",
                rest.len() - meta_end
            ));
        }
        at += meta_end + body as usize;
        messages += 1;
    }
}

fn dead(reason: DeadReason, detail: impl Into<String>) -> Decoded {
    Decoded {
        rows: Cow::Borrowed(&[]),
        dead: Some(Dead::whole(reason, detail)),
        arrow: false,
    }
}

/// JSON has no non-finite numbers, so the parser rejects `NaN` and `Infinity` (which
/// Python's `json.dumps` writes) and literals beyond f64 such as `1e400` as syntax errors;
/// report those as non-finite values, the cause a user has to fix. The detail is the
/// parser's first line (its caret drawing would not fit a Kafka header).
fn json_error(bytes: &[u8], e: &sonic_rs::Error) -> Dead {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or_default();
    if e.is_syntax() {
        let at = e.offset().min(bytes.len());
        let from = bytes[..at]
            .iter()
            .rposition(|b| matches!(b, b':' | b',' | b'[' | b' '))
            .map_or(0, |p| p + 1);
        let len = bytes[from..]
            .iter()
            .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
            .unwrap_or(bytes.len() - from);
        let token = String::from_utf8_lossy(&bytes[from..from + len]);
        if token.parse::<f64>().is_ok_and(|x| !x.is_finite()) {
            return Dead::whole(
                DeadReason::NonFinite,
                format!("`{token}` at byte {from}: JSON has no non-finite numbers ({text})"),
            );
        }
    }
    Dead::whole(DeadReason::InvalidJson, format!("invalid JSON: {text}"))
}

/// Deserializes one JSON object into a row, by key.
struct RowSeed<'a> {
    decoder: &'a Decoder,
    /// Where the previous feature key was found + 1: the first guess for the next key.
    next: &'a mut usize,
    /// The row being filled; NaN where no key has been seen yet.
    row: &'a mut [f32],
    problem: &'a mut Option<Dead>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object keyed by feature name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let decoder = self.decoder;
        while let Some(found) = map.next_key_seed(KeySeed {
            decoder,
            next: &mut *self.next,
        })? {
            let Some(j) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let v: FeatureValue = map.next_value()?;
            if self.problem.is_some() {
                continue;
            }
            let key = &decoder.features[j];
            match v {
                FeatureValue::Number(x) if (x as f32).is_finite() => self.row[j] = x as f32,
                FeatureValue::Number(x) => {
                    *self.problem = Some(Dead::whole(
                        DeadReason::NonFinite,
                        format!("feature `{key}` = {x} is not finite as f32"),
                    ))
                }
                FeatureValue::Null => {
                    *self.problem = Some(Dead::whole(
                        DeadReason::NullValue,
                        format!("feature `{key}` is null"),
                    ))
                }
                FeatureValue::Other(kind) => {
                    *self.problem = Some(Dead::whole(
                        DeadReason::NonNumeric,
                        format!("feature `{key}` is {kind}, not a number"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_object("an array")
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object("a string")
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object("a number")
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object("a number")
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object("a number")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object("a boolean")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.not_object("null")
    }
}

/// Reads one object key straight into a feature index (`None`: not a feature). The key is
/// looked up where the parser holds it: deserializing it as a `String` or `Cow<str>` first
/// allocated once per key (serde's `Cow` is always owned), 12 % of the operator's batch
/// work in the `operator_batch` profile.
struct KeySeed<'a> {
    decoder: &'a Decoder,
    next: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a feature name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.decoder.lookup(key, self.next))
    }
}

impl RowSeed<'_> {
    fn not_object<E>(self, what: &str) -> Result<(), E> {
        *self.problem = Some(Dead::whole(
            DeadReason::NotAnObject,
            format!("payload is {what}, expected a JSON object keyed by feature name"),
        ));
        Ok(())
    }
}

/// A feature's JSON value, classified without allocating.
enum FeatureValue {
    Number(f64),
    Null,
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for FeatureValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FeatureValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v as f64))
            }
            fn visit_unit<E>(self) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Null)
            }
            fn visit_none<E>(self) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Other("a boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Other("a string"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FeatureValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FeatureValue::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeatureValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FeatureValue::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    fn decoder() -> Decoder {
        Decoder::new(&["a".into(), "b".into()], InputFormat::Auto, 100_000)
    }

    fn reason(payload: &[u8]) -> DeadReason {
        let mut out = Vec::new();
        let d = decoder().decode(Some(payload), &mut out);
        assert!(out.is_empty(), "rows kept for a dead message");
        d.dead.expect("expected a dead letter").reason
    }

    #[test]
    fn json_rows_by_name_ignoring_extra_keys() {
        let mut out = vec![9.0];
        let d = decoder().decode(
            Some(br#"{"id": "x-1", "b": 2, "nested": {"k": [1, 2]}, "a": 1.5e0}"#),
            &mut out,
        );
        assert_eq!(
            d,
            Decoded {
                rows: Cow::Borrowed(&[0]),
                dead: None,
                arrow: false
            }
        );
        assert_eq!(out, vec![9.0, 1.5, 2.0]);
    }

    /// Numbers are read as the standard library reads them (correctly rounded to f64, then
    /// to f32), whatever the notation: the SIMD parser's fast paths must not cost precision.
    #[test]
    fn json_numbers_parse_like_std() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..20_000 {
            let x = f64::from_bits(next());
            if !x.is_finite() || !(x as f32).is_finite() {
                continue;
            }
            let y = (next() % 2_000_000) as f64 / 1000.0 - 1000.0;
            let a = match i % 4 {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                2 => format!("{:.17e}", x as f32),
                _ => format!("{}", x as f32),
            };
            let b = format!("{y:.3}");
            let json = format!(r#"{{"a": {a}, "b": {b}}}"#);
            let mut out = Vec::new();
            let d = decoder().decode(Some(json.as_bytes()), &mut out);
            assert!(d.dead.is_none(), "{json}: {:?}", d.dead);
            let want = [
                a.parse::<f64>().unwrap() as f32,
                b.parse::<f64>().unwrap() as f32,
            ];
            assert_eq!(out, want, "{json}");
        }
    }

    #[test]
    fn json_failures_have_reasons() {
        assert_eq!(reason(b"{\"a\": 1"), DeadReason::InvalidJson);
        assert_eq!(reason(b"[1, 2]"), DeadReason::NotAnObject);
        assert_eq!(reason(b"3"), DeadReason::NotAnObject);
        assert_eq!(reason(br#"{"a": 1}"#), DeadReason::MissingFeature);
        assert_eq!(reason(br#"{"a": 1, "b": "2"}"#), DeadReason::NonNumeric);
        assert_eq!(reason(br#"{"a": 1, "b": null}"#), DeadReason::NullValue);
        assert_eq!(reason(br#"{"a": 1, "b": 1e300}"#), DeadReason::NonFinite);
        assert_eq!(reason(br#"{"a": 1, "b": NaN}"#), DeadReason::NonFinite);
        assert_eq!(
            reason(br#"{"a": -Infinity, "b": 1}"#),
            DeadReason::NonFinite
        );
        assert_eq!(reason(br#"{"a": 1, "b": 2} x"#), DeadReason::InvalidJson);
        // An escaped key is the same key.
        let mut out = Vec::new();
        let d = decoder().decode(Some(br#"{"\u0061": 1, "b": 2}"#), &mut out);
        assert!(d.dead.is_none(), "{:?}", d.dead);
        assert_eq!(out, [1.0, 2.0]);
        assert_eq!(reason(br#"{"a": 1, "b": 02}"#), DeadReason::InvalidJson);
        assert_eq!(reason(b"{\"a\": 1, \"b\xff\": 2}"), DeadReason::InvalidJson);
        assert_eq!(reason(br#"{"a": 1, "b": 1e400}"#), DeadReason::NonFinite);
        assert_eq!(reason(b""), DeadReason::Empty);
        assert_eq!(reason(&[b' '; 100_001]), DeadReason::Oversized);
        let mut out = Vec::new();
        let d = decoder().decode(None, &mut out);
        assert_eq!(d.dead.unwrap().reason, DeadReason::Empty);
    }

    #[test]
    fn detail_names_the_feature() {
        let mut out = Vec::new();
        let d = decoder().decode(Some(br#"{"a": 1, "b": "high"}"#), &mut out);
        assert!(d.dead.unwrap().detail.contains("`b`"));
        // Parser errors are one line (they go into a Kafka header) and say where.
        let d = decoder().decode(Some(br#"{"a": 1, "b": NaN}"#), &mut out);
        let detail = d.dead.unwrap().detail;
        assert!(detail.starts_with("`NaN` at byte 14"), "{detail}");
        assert!(!detail.contains('\n'), "{detail}");
        let d = decoder().decode(Some(br#"{"a": 1 "b": 2}"#), &mut out);
        let detail = d.dead.unwrap().detail;
        assert!(detail.contains("line 1 column"), "{detail}");
        assert!(!detail.contains('\n'), "{detail}");
    }

    fn ipc(batch: &RecordBatch) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        drop(w);
        buf
    }

    #[test]
    fn arrow_rows_cast_and_partial_dead_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("b", DataType::Int32, true),
            Field::new("a", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["p", "q", "r"])),
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(Float64Array::from(vec![0.5, 1.5, f64::NAN])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let d = decoder().decode(Some(&ipc(&batch)), &mut out);
        assert_eq!(d.rows, vec![0, 3]);
        assert_eq!(out, vec![0.5, 1.0, 0.5, 1.0]);
        let dead = d.dead.unwrap();
        assert_eq!(dead.reason, DeadReason::NonFinite);
        assert_eq!(dead.rows, Some(vec![1, 2, 4, 5]));
    }

    #[test]
    fn arrow_schema_errors() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![1.0])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        assert_eq!(reason(&ipc(&batch)), DeadReason::ArrowSchema);
        let only_a = batch.project(&[0]).unwrap();
        assert_eq!(reason(&ipc(&only_a)), DeadReason::ArrowSchema);
        let mut broken = ipc(&batch);
        broken.truncate(20);
        assert_eq!(reason(&broken), DeadReason::InvalidArrow);
    }

    /// A length prefix claiming more bytes than the message holds is refused before Arrow's
    /// reader would allocate what it claims.
    #[test]
    fn ipc_frames_must_fit_in_the_message() {
        let d = Decoder::new(&["a".to_string()], InputFormat::Arrow, 1 << 20);
        let mut hostile = vec![0xff, 0xff, 0xff, 0xff];
        hostile.extend_from_slice(&0x6800_0000u32.to_le_bytes());
        hostile.extend_from_slice(&[0u8; 64]);
        let mut out = Vec::new();
        let got = d.decode(Some(&hostile), &mut out);
        let dead = got.dead.unwrap();
        assert_eq!(dead.reason, DeadReason::InvalidArrow);
        assert!(
            dead.detail.contains("claims 1744830464 bytes"),
            "{}",
            dead.detail
        );
        assert!(check_ipc_frames(&[]).is_ok());
        assert!(check_ipc_frames(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_ok());
        assert!(check_ipc_frames(&[0xff, 0xff]).is_err());
    }
}
