//! Adam with L2 weight decay added to the gradient (the semantics of `torch.optim.Adam`'s
//! `weight_decay`, which the reference MCM code uses), and bias correction.

use ndarray::Zip;

use crate::network::Weights;
use crate::params::TrainParams;
use crate::real::Real;

/// Adam state: first and second moments per parameter and the step count.
#[derive(Debug, Clone)]
pub struct Adam<F> {
    m: Weights<F>,
    v: Weights<F>,
    t: i32,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

/// Elements from which a tensor's update is split across threads.
const PARALLEL_FROM: usize = 16_384;

impl<F: Real> Adam<F> {
    /// Fresh state for parameters shaped like `like`.
    pub fn new(like: &Weights<F>, p: &TrainParams) -> Self {
        Adam {
            m: like.zeros_like(),
            v: like.zeros_like(),
            t: 0,
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.adam_eps,
            weight_decay: p.weight_decay,
        }
    }

    /// One update of `params` with gradients `grads` at learning rate `lr`.
    pub fn step(&mut self, params: &mut Weights<F>, grads: &Weights<F>, lr: f64) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        let (b1, b2) = (F::c(self.beta1), F::c(self.beta2));
        let (one_b1, one_b2) = (F::c(1.0 - self.beta1), F::c(1.0 - self.beta2));
        let wd = F::c(self.weight_decay);
        let step = F::c(lr / bc1);
        let inv_sqrt_bc2 = F::c(1.0 / bc2.sqrt());
        let eps = F::c(self.eps);
        let ps = params.tensors_mut();
        let gs = grads.tensors();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let update = |p: &mut F, &g: &F, m: &mut F, v: &mut F| {
            let g = g + wd * *p;
            *m = b1 * *m + one_b1 * g;
            *v = b2 * *v + one_b2 * g * g;
            *p -= step * *m / ((*v).sqrt() * inv_sqrt_bc2 + eps);
        };
        for (((p, g), m), v) in ps.into_iter().zip(gs).zip(ms).zip(vs) {
            let zip = Zip::from(p).and(g).and(m).and(v);
            // Large tensors on every core (the update is a fifth of a training step's serial
            // work otherwise); small ones are not worth the hand-off.
            if g.len() >= PARALLEL_FROM {
                zip.par_for_each(update);
            } else {
                zip.for_each(update);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// First step of Adam moves each parameter by exactly lr against the gradient's sign
    /// (m^/sqrt(v^) = g/|g|), which pins the bias correction.
    #[test]
    fn first_step_moves_by_learning_rate() {
        let one = array![[1.0f64, -2.0]];
        let mut w = Weights {
            enc1: one.clone(),
            enc2: one.clone(),
            memory: one.clone(),
            dec1: one.clone(),
            dec2: one.clone(),
        };
        let mut g = w.zeros_like();
        g.enc1 = array![[0.5, -3.0]];
        let p = TrainParams {
            weight_decay: 0.0,
            adam_eps: 1e-12,
            ..Default::default()
        };
        let mut adam = Adam::new(&w, &p);
        adam.step(&mut w, &g, 0.1);
        assert!((w.enc1[[0, 0]] - 0.9).abs() < 1e-9);
        assert!((w.enc1[[0, 1]] + 1.9).abs() < 1e-9);
        assert_eq!(w.enc2, one);
    }

    /// Adam minimises a quadratic: 0.5 * ||p||^2 has gradient p.
    #[test]
    fn converges_on_quadratic() {
        let start = array![[3.0f64, -2.0, 1.0]];
        let mut w = Weights {
            enc1: start.clone(),
            enc2: start.clone(),
            memory: start.clone(),
            dec1: start.clone(),
            dec2: start,
        };
        let mut adam = Adam::new(&w, &TrainParams::default());
        for _ in 0..3000 {
            let g = w.clone();
            adam.step(&mut w, &g, 0.01);
        }
        assert!(w.enc1.iter().all(|v| v.abs() < 1e-2), "{:?}", w.enc1);
    }
}
