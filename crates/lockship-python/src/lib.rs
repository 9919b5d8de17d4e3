//! The Python half of lockship: lock files, the target interpreter's tags and markers, wheel
//! choice, downloads into the cache, and wheel installation into a virtual environment tree.
//! Nothing here knows about registries or manifests.

pub mod app;
pub mod app_patch;
pub mod bytecode;
pub mod credentials;
pub mod fetch;
pub mod index;
pub mod install;
pub mod lock;
pub mod lock_tool;
pub mod native;
pub mod probe;
pub mod pyproject;
pub mod select;
pub mod simple_html;
pub mod target;
pub mod uv;
pub mod wheel;
