//! # mmnet-core
//!
//! MMNet (Masked Memory Network, IEEE IoT Journal 2024), a semi-supervised anomaly detector:
//! an encoder maps a row to a latent query z, attention over a memory of K normal and L
//! anomaly prototypes (with hard shrinkage) gives weights w and a read-out z^, and a decoder
//! reconstructs the row. Training minimises reconstruction + mask + KL losses on a large
//! unlabeled set D_u plus a few labeled anomalies D_l; scoring uses the attention weights
//! (S_sum, S_KL) and optionally the reconstruction error.
//!
//! This crate holds the model, its hand-written forward/backward kernels on ndarray (checked
//! by finite differences), training, scoring, metrics, the evaluation protocol and the model
//! artifact. It knows nothing of Arrow, Kafka or async runtimes.

pub mod adam;
pub mod artifact;
pub mod ensemble;
pub mod error;
pub mod experiment;
pub mod explain;
pub mod kernel;
pub mod linear;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod network;
pub mod params;
pub mod profile;
pub mod protocol;
pub mod real;
pub mod scaler;
pub mod score;
pub mod select;
pub mod shrink;
pub mod softmax;
pub mod supervised;
pub mod train;
pub mod warm;

pub use error::{CoreError, Result};
pub use model::{Model, ScoredBatch, Threshold};
pub use params::{ModelParams, TrainParams};
pub use score::{ScoreConfig, ScoreVariant};
pub use train::{FitConfig, FitOptions, TrainData, TrainObserver, fit};
