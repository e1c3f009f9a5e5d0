//! graylane's real-kernel test sandbox.
//!
//! A [`Sandbox`] is a node network namespace with the agent in it, and pods: each a network
//! namespace with a veth to the node and a cgroup of its own under the sandbox's cgroup.
//! Pods get a blackhole route for the service range, so a connect the kernel did not redirect
//! fails inside the pod. Everything is removed on drop, even after a panic, and resources
//! left by a killed test run are swept on the next start.

mod admin;
mod agent;
mod cgroup;
mod cluster;
pub mod demo;
mod mariadb;
mod names;
mod netns;
mod pod;
mod privilege;
mod process;
mod rabbitmq;
mod redis;
mod sandbox;
mod stats;
mod sweep;
mod wait;

pub use admin::Admin;
pub use agent::{Agent, AgentOptions, binary};
pub use cluster::Cluster;
pub use mariadb::MariaDb;
pub use pod::{Pod, PodSpec};
pub use privilege::{Privileged, privileged};
pub use process::{Spawned, cpu_seconds, processes, stat_fields, usage};
pub use rabbitmq::RabbitMq;
pub use redis::Redis;
pub use sandbox::{NODE_IP6, PeerPod, SERVICE_CIDR, SERVICE_CIDR6, Sandbox, ServiceSpec, WEB_VIP};
pub use stats::binomial_bounds;
pub use wait::wait_for;

/// Path of a fixture script under `tests/fixtures/`.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}
