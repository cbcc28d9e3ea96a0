//! # mmnet for Python
//!
//! The native module `mmnet._mmnet` behind the `mmnet` Python package (python/mmnet): the
//! same engine as the CLI, over Arrow data handed in through the Arrow PyCapsule interface
//! (pyarrow, polars, pandas) without copies. The Python layer adds the scikit-learn/PyOD
//! vocabulary (`decision_function`, `predict`) and Spark; everything that touches data or
//! models is here, so the CLI and Python agree to the bit.
//!
//! Depends on mmnet-core and mmnet-arrow's file I/O only (no DataFusion, no rdkafka), so a
//! wheel builds in minutes.

use pyo3::prelude::*;

mod error;
mod input;
mod model;
mod train;

/// The extension module.
#[pymodule]
fn _mmnet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MmnetError", m.py().get_type::<error::MmnetError>())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::experiment, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
