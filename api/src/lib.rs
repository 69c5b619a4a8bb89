//! Kan's shared contracts: the custom resources, the recall wire types, the bundle manifest, the
//! gateway routing config, and the pure validation and bucket-assignment rules every component
//! agrees on. No I/O lives here.

pub mod assignment;
pub mod bundle;
pub mod bundle_uri;
pub mod crd;
pub mod error;
pub mod events;
pub mod manifest;
pub mod routing;
pub mod validate;
pub mod wire;
pub mod worker_config;

pub use error::{ValidationError, ValidationErrors};

/// The API group of every Kan custom resource.
pub const GROUP: &str = "kan.dev";
/// The version of every Kan custom resource.
pub const VERSION: &str = "v1alpha1";
