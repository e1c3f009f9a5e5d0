//! The cluster as graylane sees it: pods, services and their graylane annotations, as one
//! immutable [`Snapshot`] fed by a source (standalone files today).

mod annotations;
mod error;
mod files;
mod kernel_view;
pub mod kube;
mod model;
mod pod_cgroup;
pub mod policy;
pub mod resilience;
mod yaml;

pub use error::InventoryError;
pub use files::{FileSource, load_path, load_str};
pub use kernel_view::{CaptureConfig, KernelView};
#[cfg(test)]
pub use model::TargetPort;
pub use model::{Pod, ServicePort, Snapshot};
