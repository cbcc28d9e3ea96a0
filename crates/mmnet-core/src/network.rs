//! The MMNet network: encoder -> memory addressing with shrinkage -> decoder (paper
//! Section III-C/D), its forward pass with the activations the backward pass needs, and the
//! hand-written backward pass of the whole loss (eq. 11).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand::distr::{Distribution, Uniform};

use crate::linear::{
    linear_backward, linear_backward_weight, linear_forward, relu_backward_inplace, relu_inplace,
};
use crate::loss::{
    LossParts, foreign_part, kl_loss, kl_loss_backward, mask_loss, mask_loss_backward, rec_loss,
    rec_loss_backward, reconstruction_error,
};
use crate::params::{MaskStrategy, ModelParams};
use crate::real::Real;
use crate::shrink::{Shrunk, shrink_backward, shrink_forward};
use crate::softmax::{softmax_backward, softmax_inplace};

/// Tensor names in the safetensors file, in a fixed order. They match a PyTorch module
/// `encoder = Sequential(Linear, ReLU, Linear)`, `memory`, `decoder = Sequential(...)`.
pub const TENSOR_NAMES: [&str; 5] = [
    "encoder.0.weight",
    "encoder.2.weight",
    "memory",
    "decoder.0.weight",
    "decoder.2.weight",
];

/// The learnable parameters. Linear weights are `out x in` (PyTorch layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<F> {
    /// Encoder layer 1, `hidden x input`.
    pub enc1: Array2<F>,
    /// Encoder layer 2, `latent x hidden`.
    pub enc2: Array2<F>,
    /// Memory M, `(K + L) x latent`; rows `..K` are M_u, rows `K..` are M_l.
    pub memory: Array2<F>,
    /// Decoder layer 1, `hidden x latent`.
    pub dec1: Array2<F>,
    /// Decoder layer 2, `input x hidden`.
    pub dec2: Array2<F>,
}

/// Expected `[rows, cols]` of each tensor, in [`TENSOR_NAMES`] order.
pub fn tensor_shapes(input_dim: usize, p: &ModelParams) -> [[usize; 2]; 5] {
    [
        [p.hidden_dim, input_dim],
        [p.latent_dim, p.hidden_dim],
        [p.memory_size(), p.latent_dim],
        [p.hidden_dim, p.latent_dim],
        [input_dim, p.hidden_dim],
    ]
}

impl<F: Real> Weights<F> {
    /// Random initialisation: Linear layers as PyTorch's default (U(-1/sqrt(in), 1/sqrt(in))),
    /// the memory with Xavier uniform (paper Sec. III-D).
    pub fn init<R: Rng>(input_dim: usize, p: &ModelParams, rng: &mut R) -> Self {
        let shapes = tensor_shapes(input_dim, p);
        let mut uniform = |[r, c]: [usize; 2], bound: f64| {
            let dist = Uniform::new_inclusive(-bound, bound).expect("bound is finite and > 0");
            Array2::from_shape_simple_fn((r, c), || F::c(dist.sample(rng)))
        };
        let kaiming = |[_, c]: [usize; 2]| 1.0 / (c as f64).sqrt();
        let xavier = |[r, c]: [usize; 2]| (6.0 / (r + c) as f64).sqrt();
        Weights {
            enc1: uniform(shapes[0], kaiming(shapes[0])),
            enc2: uniform(shapes[1], kaiming(shapes[1])),
            memory: uniform(shapes[2], xavier(shapes[2])),
            dec1: uniform(shapes[3], kaiming(shapes[3])),
            dec2: uniform(shapes[4], kaiming(shapes[4])),
        }
    }

    /// All-zero tensors of the same shapes (gradient accumulators, Adam moments).
    pub fn zeros_like(&self) -> Self {
        Weights {
            enc1: Array2::zeros(self.enc1.raw_dim()),
            enc2: Array2::zeros(self.enc2.raw_dim()),
            memory: Array2::zeros(self.memory.raw_dim()),
            dec1: Array2::zeros(self.dec1.raw_dim()),
            dec2: Array2::zeros(self.dec2.raw_dim()),
        }
    }

    /// Number of input features.
    pub fn input_dim(&self) -> usize {
        self.enc1.ncols()
    }

    /// The tensors in [`TENSOR_NAMES`] order.
    pub fn tensors(&self) -> [&Array2<F>; 5] {
        [&self.enc1, &self.enc2, &self.memory, &self.dec1, &self.dec2]
    }

    /// The tensors in [`TENSOR_NAMES`] order, mutably.
    pub fn tensors_mut(&mut self) -> [&mut Array2<F>; 5] {
        [
            &mut self.enc1,
            &mut self.enc2,
            &mut self.memory,
            &mut self.dec1,
            &mut self.dec2,
        ]
    }

    /// Converts every tensor to another float type.
    pub fn cast<G: Real>(&self) -> Weights<G> {
        let c = |a: &Array2<F>| a.mapv(|v| G::c(v.to_f64().unwrap_or(f64::NAN)));
        Weights {
            enc1: c(&self.enc1),
            enc2: c(&self.enc2),
            memory: c(&self.memory),
            dec1: c(&self.dec1),
            dec2: c(&self.dec2),
        }
    }

    /// Sets every element to zero.
    pub fn fill_zero(&mut self) {
        for t in self.tensors_mut() {
            t.fill(F::zero());
        }
    }
}

/// Activations of one forward pass, kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Forward<F> {
    /// Encoder hidden layer after ReLU, `B x hidden`.
    pub h1: Array2<F>,
    /// Latent query z, `B x C`.
    pub z: Array2<F>,
    /// Pre-shrink attention w = softmax(z M^T), `B x (K+L)`; feeds L_mask, L_KL and scores.
    pub w: Array2<F>,
    /// Post-shrink, renormalised attention and its norms.
    pub shrunk: Shrunk<F>,
    /// Read-out z^ = w^ M, `B x C`.
    pub z_hat: Array2<F>,
    /// Decoder hidden layer after ReLU, `B x hidden`.
    pub h3: Array2<F>,
    /// Reconstruction x^, `B x D`.
    pub x_hat: Array2<F>,
    /// Reconstruction error e_i, one per row.
    pub err: Vec<F>,
}

/// Encoder and addressing. With `hard = Some((labeled, k))` row i addresses only its own
/// part of the memory (items k.. when `labeled[i]`, else ..k): the other part's logits
/// become -inf before the softmax, so its weights are exactly 0 and so is their gradient.
fn addressing<F: Real>(
    w: &Weights<F>,
    x: ArrayView2<F>,
    hard: Option<(&[bool], usize)>,
) -> (Array2<F>, Array2<F>, Array2<F>) {
    let mut h1 = linear_forward(x, w.enc1.view());
    relu_inplace(&mut h1);
    let z = linear_forward(h1.view(), w.enc2.view());
    let mut att = linear_forward(z.view(), w.memory.view());
    if let Some((labeled, k)) = hard {
        for (mut row, &lab) in att.axis_iter_mut(ndarray::Axis(0)).zip(labeled) {
            let other = foreign_part(lab, k, row.len());
            row.slice_mut(ndarray::s![other])
                .into_iter()
                .for_each(|v| *v = F::neg_infinity());
        }
    }
    softmax_inplace(&mut att);
    (h1, z, att)
}

/// The full forward pass, as in scoring: every row addresses all K + L items.
pub fn forward<F: Real>(w: &Weights<F>, x: ArrayView2<F>, p: &ModelParams) -> Forward<F> {
    forward_train(w, x, &[], p)
}

/// The forward pass of training. Under [`MaskStrategy::Hard`] row i addresses only its own
/// part of the memory (M_l when `labeled[i]`, else M_u; see `addressing`). Otherwise (or
/// with an empty `labeled`) this is [`forward`].
pub fn forward_train<F: Real>(
    w: &Weights<F>,
    x: ArrayView2<F>,
    labeled: &[bool],
    p: &ModelParams,
) -> Forward<F> {
    let hard =
        (p.mask == MaskStrategy::Hard && !labeled.is_empty()).then_some((labeled, p.memory_normal));
    let (h1, z, att) = addressing(w, x, hard);
    let shrunk = shrink_forward(att.view(), p.shrink_threshold, p.shrink_eps);
    let z_hat = shrunk.w_hat.dot(&w.memory);
    let mut h3 = linear_forward(z_hat.view(), w.dec1.view());
    relu_inplace(&mut h3);
    let x_hat = linear_forward(h3.view(), w.dec2.view());
    let err = reconstruction_error(x, x_hat.view());
    Forward {
        h1,
        z,
        w: att,
        shrunk,
        z_hat,
        h3,
        x_hat,
        err,
    }
}

/// Loss of a forward pass (eq. 11). `labeled[i]` is l_i.
pub fn loss<F: Real>(fw: &Forward<F>, labeled: &[bool], p: &ModelParams) -> LossParts {
    let rec = rec_loss(&fw.err, labeled, p.margin)
        .to_f64()
        .unwrap_or(f64::NAN);
    let mask = mask_loss(fw.w.view(), labeled, p.memory_normal)
        .to_f64()
        .unwrap_or(f64::NAN);
    let kl = kl_loss(fw.w.view(), p.log_guard)
        .to_f64()
        .unwrap_or(f64::NAN);
    LossParts {
        rec,
        mask,
        kl,
        total: p.total_loss(rec, mask, kl),
    }
}

/// Backward pass of the whole loss: writes dL/dθ into `grads` (overwriting).
pub fn backward<F: Real>(
    w: &Weights<F>,
    x: ArrayView2<F>,
    labeled: &[bool],
    fw: &Forward<F>,
    p: &ModelParams,
    grads: &mut Weights<F>,
) {
    grads.fill_zero();
    // Decoder.
    let dx_hat = rec_loss_backward(x, fw.x_hat.view(), &fw.err, labeled, p.margin);
    let mut dh3 = linear_backward(fw.h3.view(), w.dec2.view(), dx_hat.view(), &mut grads.dec2);
    relu_backward_inplace(fw.h3.view(), dh3.view_mut());
    let dz_hat = linear_backward(fw.z_hat.view(), w.dec1.view(), dh3.view(), &mut grads.dec1);
    // Read-out z^ = w^ M.
    let dw_hat = dz_hat.dot(&w.memory.t());
    ndarray::linalg::general_mat_mul(
        F::one(),
        &fw.shrunk.w_hat.t(),
        &dz_hat,
        F::one(),
        &mut grads.memory,
    );
    // Shrinkage, then the losses that read the pre-shrink weights directly.
    let mut dw = shrink_backward(
        fw.w.view(),
        &fw.shrunk,
        dw_hat.view(),
        p.shrink_threshold,
        p.shrink_eps,
    );
    mask_loss_backward(
        dw.view_mut(),
        labeled,
        p.memory_normal,
        F::c(p.mask.effective_lambda_mask(p.lambda_mask)),
    );
    kl_loss_backward(dw.view_mut(), fw.w.view(), p.log_guard, F::c(p.lambda_kl));
    // Softmax and addressing d = z M^T.
    let dd = softmax_backward(fw.w.view(), dw.view());
    let dz = linear_backward(fw.z.view(), w.memory.view(), dd.view(), &mut grads.memory);
    // Encoder.
    let mut dh1 = linear_backward(fw.h1.view(), w.enc2.view(), dz.view(), &mut grads.enc2);
    relu_backward_inplace(fw.h1.view(), dh1.view_mut());
    linear_backward_weight(x, dh1.view(), &mut grads.enc1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hard_mask_confines_each_row_to_its_part_in_training_only() {
        let p = ModelParams {
            hidden_dim: 8,
            latent_dim: 4,
            memory_normal: 3,
            memory_anomaly: 5,
            mask: MaskStrategy::Hard,
            ..Default::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let w: Weights<f64> = Weights::init(6, &p, &mut rng);
        let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i * 7 + j) % 5) as f64 / 5.0);
        let labeled = [false, true, false, true];
        let fw = forward_train(&w, x.view(), &labeled, &p);
        for (row, &lab) in fw.w.rows().into_iter().zip(&labeled) {
            let (mu, ml) = (row.slice(ndarray::s![..3]), row.slice(ndarray::s![3..]));
            let (own, other) = if lab { (ml, mu) } else { (mu, ml) };
            assert!(other.iter().all(|&v| v == 0.0), "{row}");
            assert!((own.sum() - 1.0).abs() < 1e-12);
        }
        // Scoring never masks.
        let scored = forward(&w, x.view(), &p);
        assert!(scored.w.iter().all(|&v| v > 0.0));
    }
}
