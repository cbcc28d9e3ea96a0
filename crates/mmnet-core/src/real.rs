//! The float type the kernels are generic over.
//!
//! Models train and score in `f32`; the gradient checks run the very same kernels in `f64`
//! so finite differences are accurate enough to catch a wrong backward pass.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A float the model kernels can run on (`f32` in production, `f64` in gradient checks).
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// Converts an `f64` constant (a hyperparameter) into this type.
    fn c(v: f64) -> Self;
}

impl Real for f32 {
    #[inline]
    fn c(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline]
    fn c(v: f64) -> Self {
        v
    }
}
