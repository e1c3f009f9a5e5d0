//! Two nodes: two sandboxes (each its own netns, agent, cgroup subtree and pin dir) whose
//! node namespaces are linked and routed to each other, sharing one inventory (each node's
//! file lists the other's pods with their `spec.nodeName` and `status.hostIP`) and one
//! lane-hint key.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{AgentOptions, PodSpec, Privileged, Sandbox, ServiceSpec, pod::Pod};

pub struct Cluster {
    pub nodes: [Sandbox; 2],
    key: PathBuf,
}

impl Cluster {
    pub fn new(p: &Privileged) -> anyhow::Result<Self> {
        let nodes = [Sandbox::on_node(p, 0)?, Sandbox::on_node(p, 1)?];
        nodes[0].link_to(&nodes[1])?;
        let key = nodes[0].scratch().join("peer.key");
        std::fs::write(&key, "a cluster key of at least sixteen bytes\n")?;
        Ok(Self { nodes, key })
    }

    /// The shared hint key's file (`--peer-key-file`).
    pub fn key_file(&self) -> &std::path::Path {
        &self.key
    }

    pub fn node(&mut self, index: usize) -> &mut Sandbox {
        &mut self.nodes[index]
    }

    /// Adds a pod on node `index`.
    pub fn add_pod(&mut self, index: usize, spec: PodSpec) -> anyhow::Result<&mut Pod> {
        self.nodes[index].add_pod(spec)
    }

    /// Adds a service to every node's inventory.
    pub fn add_service(&mut self, svc: ServiceSpec) {
        for n in &mut self.nodes {
            n.add_service(svc.clone());
        }
    }

    /// Adds a document to every node's inventory.
    pub fn add_document(&mut self, yaml: &str) {
        for n in &mut self.nodes {
            n.add_document(yaml);
        }
    }

    /// Writes each node's inventory: its pods and the other node's.
    pub fn write_inventories(&mut self) -> anyhow::Result<()> {
        let peers = [self.nodes[1].as_peers(), self.nodes[0].as_peers()];
        for (n, peers) in self.nodes.iter_mut().zip(peers) {
            n.set_peers(peers);
            n.write_inventory()?;
        }
        Ok(())
    }

    /// Starts both agents (`--node-name`, the shared `--peer-key-file`, and `opts`).
    pub fn start_agents(&mut self, opts: &AgentOptions) -> anyhow::Result<()> {
        self.write_inventories()?;
        let key = self.key.to_str().context("key path")?.to_owned();
        for n in &mut self.nodes {
            let mut o = opts.clone();
            o.args.extend(["--node-name".into(), n.node_name(), "--peer-key-file".into(), key.clone()]);
            n.start_agent(&o)?;
        }
        Ok(())
    }

    /// Both agents' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- node-0 ---\n{}\n--- node-1 ---\n{}",
            self.nodes[0].agent_log(),
            self.nodes[1].agent_log()
        )
    }
}
