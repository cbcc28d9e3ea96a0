//! One Python exception for everything mmnet refuses, carrying the CLI's message.

use pyo3::PyErr;

pyo3::create_exception!(
    _mmnet,
    MmnetError,
    pyo3::exceptions::PyValueError,
    "Bad input, a bad model or a failed training: the message names what is wrong (file, column, row), as the CLI's does."
);

/// The error as a Python exception with the same message the CLI prints.
pub fn to_py(e: impl std::fmt::Display) -> PyErr {
    MmnetError::new_err(e.to_string())
}
