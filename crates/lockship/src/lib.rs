//! lockship: slim, reproducible container images for Python projects, built from their lock file
//! with no Docker daemon. See ARCHITECTURE.md for the data flow and module boundaries.

pub mod build;
pub mod debian;
pub mod download;
pub mod error;
pub mod interrupt;
pub mod net;
pub mod oci;
pub mod output;
pub mod plan;
pub mod project;
pub mod python;
pub mod relock;
pub mod scratch;
pub mod smoke;
pub mod user;
