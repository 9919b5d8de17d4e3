//! lockship's engine: a project's config, its base, the plan of layers, the build that carries
//! it out (cache, layers, image, outputs, smoke tests), and the `lock` command. It drives the
//! crates below it (lockship-oci, lockship-python, lockship-debian) and is the only place that
//! knows the crate-wide [`error::Error`] and its hints. See ARCHITECTURE.md.

pub mod builder;
pub mod cache_command;
pub mod cache_dir;
mod config_keys;
pub mod config_reference;
pub mod container_build;
pub mod dockerfile;
pub mod error;
mod hints;
pub mod image_commands;
pub mod image_diff;
pub mod image_source;
pub mod init_command;
pub mod inspect;
pub mod lock_command;
pub mod output;
pub mod plan;
pub mod project;
pub mod sbom;
pub mod smoke;
pub mod user;
