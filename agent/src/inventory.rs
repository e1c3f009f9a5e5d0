//! The cluster as graylane sees it: pods, services and their graylane annotations, as one
//! immutable [`Snapshot`] fed by a source (standalone files today).

pub mod accounts;
mod annotations;
mod bounds;
pub mod data_lanes;
mod error;
mod files;
mod kernel_view;
pub mod kube;
pub mod languages;
mod model;
pub mod pattern;
mod pod_cgroup;
pub mod policy;
mod report;
pub mod resilience;
mod sanity;
mod workload;
mod yaml;

pub use error::{FieldError, InventoryError};
pub use files::{FileSource, load_path, load_str, load_str_on};
pub use kernel_view::{CaptureConfig, ClusterIps, KernelView};
pub use languages::Export;
#[cfg(test)]
pub use model::TargetPort;
pub use model::{Pod, ServicePort, Snapshot};
pub use sanity::NodeFacts;
pub use workload::workload;
