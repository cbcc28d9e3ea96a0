//! Finite-difference checks (central differences, f64) of every hand-written backward pass:
//! linear, ReLU, softmax, shrinkage + renormalisation, read-out, each loss term and the
//! whole loss of eq. 11 with respect to every parameter tensor.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use mmnet_core::linear::{linear_backward, linear_forward, relu_backward_inplace, relu_inplace};
use mmnet_core::loss::{
    kl_loss, kl_loss_backward, mask_loss, mask_loss_backward, rec_loss, rec_loss_backward,
    reconstruction_error,
};
use mmnet_core::network::{Weights, backward, forward_train, loss};
use mmnet_core::params::{MaskStrategy, ModelParams};
use mmnet_core::shrink::{shrink_backward, shrink_forward};
use mmnet_core::softmax::{softmax_backward, softmax_inplace};
use ndarray::{Array2, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-6;

fn rand_mat(rng: &mut ChaCha8Rng, r: usize, c: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn((r, c), || rng.random_range(-scale..scale))
}

/// Numerical gradient of `f` with respect to every element of `x`.
fn numeric_grad(x: &Array2<f64>, mut f: impl FnMut(&Array2<f64>) -> f64) -> Array2<f64> {
    let mut g = Array2::zeros(x.raw_dim());
    let mut xp = x.clone();
    for idx in 0..x.len() {
        let (r, c) = (idx / x.ncols(), idx % x.ncols());
        let orig = xp[[r, c]];
        xp[[r, c]] = orig + H;
        let up = f(&xp);
        xp[[r, c]] = orig - H;
        let down = f(&xp);
        xp[[r, c]] = orig;
        g[[r, c]] = (up - down) / (2.0 * H);
    }
    g
}

/// Asserts analytic and numeric gradients agree: |a - n| <= atol + rtol * max(|a|, |n|).
fn assert_close(what: &str, analytic: &Array2<f64>, numeric: &Array2<f64>) {
    assert_eq!(analytic.shape(), numeric.shape(), "{what}: shapes");
    let mut worst = 0.0f64;
    Zip::from(analytic).and(numeric).for_each(|&a, &n| {
        let err = (a - n).abs() / (1e-6 + a.abs().max(n.abs()));
        worst = worst.max(err.min((a - n).abs() / 1e-6));
        assert!(
            (a - n).abs() <= 1e-6 + 1e-4 * a.abs().max(n.abs()),
            "{what}: analytic {a} vs numeric {n}"
        );
    });
    // The gradient must not be trivially zero, or the check proves nothing.
    assert!(
        analytic.iter().any(|v| v.abs() > 1e-8),
        "{what}: gradient is all zero"
    );
}

/// A fixed random projection turns a matrix output into a scalar loss.
fn project(y: &Array2<f64>, r: &Array2<f64>) -> f64 {
    (y * r).sum()
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = rand_mat(&mut rng, 5, 7, 1.0);
    let w = rand_mat(&mut rng, 4, 7, 1.0);
    let r = rand_mat(&mut rng, 5, 4, 1.0);
    let mut dw = Array2::zeros(w.raw_dim());
    let dx = linear_backward(x.view(), w.view(), r.view(), &mut dw);
    assert_close(
        "dW",
        &dw,
        &numeric_grad(&w, |w| project(&linear_forward(x.view(), w.view()), &r)),
    );
    assert_close(
        "dx",
        &dx,
        &numeric_grad(&x, |x| project(&linear_forward(x.view(), w.view()), &r)),
    );
}

#[test]
fn relu_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let a = rand_mat(&mut rng, 6, 5, 1.0);
    let r = rand_mat(&mut rng, 6, 5, 1.0);
    let f = |a: &Array2<f64>| {
        let mut h = a.clone();
        relu_inplace(&mut h);
        project(&h, &r)
    };
    let mut h = a.clone();
    relu_inplace(&mut h);
    let mut d = r.clone();
    relu_backward_inplace(h.view(), d.view_mut());
    assert_close("relu", &d, &numeric_grad(&a, f));
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let logits = rand_mat(&mut rng, 4, 8, 3.0);
    let r = rand_mat(&mut rng, 4, 8, 1.0);
    let f = |l: &Array2<f64>| {
        let mut w = l.clone();
        softmax_inplace(&mut w);
        project(&w, &r)
    };
    let mut w = logits.clone();
    softmax_inplace(&mut w);
    let d = softmax_backward(w.view(), r.view());
    assert_close("softmax", &d, &numeric_grad(&logits, f));
}

#[test]
fn shrink_and_renormalise_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Peaky logits so that some weights fall below the threshold (the zero branch) and
    // others stay above it; entries within 1e-4 of the kink are nudged away from it.
    let g = 0.02;
    let mut logits = rand_mat(&mut rng, 6, 10, 4.0);
    softmax_inplace(&mut logits);
    let mut w = logits.mapv(|v| if (v - g).abs() < 1e-4 { v + 3e-4 } else { v });
    for mut row in w.rows_mut() {
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    assert!(w.iter().any(|&v| v < g) && w.iter().any(|&v| v > g));
    let r = rand_mat(&mut rng, 6, 10, 1.0);
    let f = |w: &Array2<f64>| project(&shrink_forward(w.view(), g, 1e-12).w_hat, &r);
    let s = shrink_forward(w.view(), g, 1e-12);
    let d = shrink_backward(w.view(), &s, r.view(), g, 1e-12);
    assert_close("shrink", &d, &numeric_grad(&w, f));
    // A larger eps exercises the eps terms of the derivative.
    let f = |w: &Array2<f64>| project(&shrink_forward(w.view(), g, 1e-3).w_hat, &r);
    let s = shrink_forward(w.view(), g, 1e-3);
    let d = shrink_backward(w.view(), &s, r.view(), g, 1e-3);
    assert_close("shrink eps", &d, &numeric_grad(&w, f));
}

#[test]
fn readout_backward_matches_finite_differences() {
    // z^ = w^ M is a linear layer with weight M^T: dM = w^T dz^, dw^ = dz^ M^T.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w_hat = rand_mat(&mut rng, 4, 6, 1.0);
    let m = rand_mat(&mut rng, 6, 3, 1.0);
    let r = rand_mat(&mut rng, 4, 3, 1.0);
    let dm = w_hat.t().dot(&r);
    let dw = r.dot(&m.t());
    assert_close(
        "readout dM",
        &dm,
        &numeric_grad(&m, |m| project(&w_hat.dot(m), &r)),
    );
    assert_close(
        "readout dw",
        &dw,
        &numeric_grad(&w_hat, |w| project(&w.dot(&m), &r)),
    );
}

#[test]
fn loss_terms_backward_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = rand_mat(&mut rng, 6, 5, 1.0);
    let x_hat = rand_mat(&mut rng, 6, 5, 1.0);
    let labeled = [false, true, false, true, true, false];
    // Margin 5: every labeled row inside the margin; margin 1.6: some outside (zero branch).
    for margin in [5.0, 1.6] {
        let err = reconstruction_error(x.view(), x_hat.view());
        let d = rec_loss_backward(x.view(), x_hat.view(), &err, &labeled, margin);
        let n = numeric_grad(&x_hat, |xh| {
            rec_loss(&reconstruction_error(x.view(), xh.view()), &labeled, margin)
        });
        assert_close(&format!("L_rec margin {margin}"), &d, &n);
    }
    let mut w = rand_mat(&mut rng, 6, 8, 2.0);
    softmax_inplace(&mut w);
    let k = 4;
    let mut d = Array2::zeros(w.raw_dim());
    mask_loss_backward(d.view_mut(), &labeled, k, 1.0);
    assert_close(
        "L_mask",
        &d,
        &numeric_grad(&w, |w| mask_loss(w.view(), &labeled, k)),
    );
    let mut d = Array2::zeros(w.raw_dim());
    kl_loss_backward(d.view_mut(), w.view(), 1e-12, 1.0);
    assert_close("L_KL", &d, &numeric_grad(&w, |w| kl_loss(w.view(), 1e-12)));
}

#[test]
fn whole_loss_backward_matches_finite_differences() {
    for mask in [MaskStrategy::Soft, MaskStrategy::Hard, MaskStrategy::None] {
        check_whole_loss(mask);
    }
}

/// The training forward pass (with its masking) and the whole loss of eq. 11 against
/// central differences, for one masking strategy.
fn check_whole_loss(mask: MaskStrategy) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let p = ModelParams {
        mask,
        hidden_dim: 9,
        latent_dim: 5,
        memory_normal: 4,
        memory_anomaly: 4,
        // Larger loss weights than the defaults, so every term visibly moves the gradient.
        lambda_kl: 0.05,
        margin: 2.0,
        ..Default::default()
    };
    let d = 6;
    let mut weights: Weights<f64> = Weights::init(d, &p, &mut rng);
    // A sharper memory spreads the attention so the shrinkage has active and dead entries.
    weights.memory.mapv_inplace(|v| v * 4.0);
    let x = Array2::from_shape_simple_fn((8, d), || rng.random_range(0.0..1.0));
    let labeled = [false, false, true, false, true, false, true, false];
    let fw = forward_train(&weights, x.view(), &labeled, &p);
    let mut grads = weights.zeros_like();
    backward(&weights, x.view(), &labeled, &fw, &p, &mut grads);
    let names = mmnet_core::network::TENSOR_NAMES;
    for (i, name) in names.iter().enumerate() {
        let base = weights.tensors()[i].clone();
        let n = numeric_grad(&base, |t| {
            let mut w2 = weights.clone();
            *w2.tensors_mut()[i] = t.clone();
            loss(&forward_train(&w2, x.view(), &labeled, &p), &labeled, &p).total
        });
        assert_close(
            &format!("whole loss ({}) d{name}", mask.name()),
            grads.tensors()[i],
            &n,
        );
    }
}
