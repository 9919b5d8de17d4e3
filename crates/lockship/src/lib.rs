//! lockship: slim, reproducible container images for Python projects, built from their lock file
//! with no Docker daemon. See ARCHITECTURE.md for the data flow and module boundaries.

pub mod oci;

pub mod python;
