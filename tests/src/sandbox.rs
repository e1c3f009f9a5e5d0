//! The sandbox: a node netns running the agent, pods around it, and the inventory file.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};

use crate::{
    Privileged,
    admin::Admin,
    agent::{Agent, AgentOptions, AgentPaths, binary},
    cgroup::{Cgroup, cgroup2_mount},
    names::Names,
    netns::NetNs,
    pod::{Pod, PodSpec},
    process::{Spawned, run},
    sweep::{remove_pins, sweep},
};

/// Service VIPs come from here; pods blackhole it, so only a redirect can reach a service.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// IPv6 service VIPs come from here (blackholed in pods too).
pub const SERVICE_CIDR6: &str = "fd00:96::/112";
/// The node's address inside the node netns: the proxy listens here.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The node's IPv6 address: the IPv6 proxy listens here.
pub const NODE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
/// Pods' next hop: the node side of every veth.
const GATEWAY: &str = "169.254.1.1";
const GATEWAY6: &str = "fd00:169::1";
const BPFFS: &str = "/sys/fs/bpf";

/// A service in the inventory.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub name: String,
    pub vip: Ipv4Addr,
    /// An IPv6 cluster IP too (dual-stack service).
    pub vip6: Option<Ipv6Addr>,
    /// (port, targetPort, name)
    pub ports: Vec<(u16, u16, Option<String>)>,
    pub selector: Vec<(String, String)>,
}

impl ServiceSpec {
    pub fn new(name: &str, vip: Ipv4Addr) -> Self {
        Self { name: name.into(), vip, vip6: None, ports: Vec::new(), selector: Vec::new() }
    }
    pub fn vip6(mut self, vip6: Ipv6Addr) -> Self {
        self.vip6 = Some(vip6);
        self
    }
    pub fn port(mut self, port: u16, target: u16) -> Self {
        self.ports.push((port, target, None));
        self
    }
    /// A port with a name, which carries the protocol hint (`http`, `grpc`, `tcp-…`).
    pub fn named_port(mut self, port: u16, target: u16, name: &str) -> Self {
        self.ports.push((port, target, Some(name.into())));
        self
    }
    pub fn select(mut self, k: &str, v: &str) -> Self {
        self.selector.push((k.into(), v.into()));
        self
    }
}

pub struct Sandbox {
    // Drop order: agent, pods (processes, cgroups, netns), then the node and the rest.
    agent: Option<Agent>,
    pods: Vec<Pod>,
    services: Vec<ServiceSpec>,
    /// Extra YAML documents (TrafficPolicy, TrafficLabelRule, …).
    documents: Vec<String>,
    /// Processes in the node netns besides the agent (e.g. a peer proxy).
    node_procs: Vec<Spawned>,
    node: NetNs,
    cgroup: Cgroup,
    pin_dir: PathBuf,
    dir: tempfile::TempDir,
    names: Names,
}

impl Sandbox {
    pub fn new(_: &Privileged) -> anyhow::Result<Self> {
        let mount = cgroup2_mount()?;
        sweep(&mount, Path::new(BPFFS));
        let names = Names::fresh();
        let dir = tempfile::Builder::new().prefix(&format!("{}-", names.id)).tempdir()?;
        let cgroup = Cgroup::create(mount.join(&names.id))?;
        let node = NetNs::create(&names.node_netns())?;
        node.ip(&["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"])?;
        node.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
        node.ip(&["-6", "addr", "add", &format!("{NODE_IP6}/128"), "dev", "lo", "nodad"])?;
        tune_tcp(&node)?;
        let pin_dir = PathBuf::from(BPFFS).join(&names.id);
        Ok(Self {
            agent: None,
            pods: Vec::new(),
            services: Vec::new(),
            documents: Vec::new(),
            node_procs: Vec::new(),
            node,
            cgroup,
            pin_dir,
            dir,
            names,
        })
    }

    /// Adds a pod: a netns with a veth to the node and a cgroup, or inventory-only if remote.
    pub fn add_pod(&mut self, spec: PodSpec) -> anyhow::Result<&mut Pod> {
        let index = self.pods.len();
        if let Some(ip) = spec.remote_ip {
            let ip6 = pod_ip6(index);
            self.pods.push(Pod {
                spec,
                ip,
                ip6,
                cgroup_rel: None,
                procs: Vec::new(),
                cgroup: None,
                netns: None,
            });
            return self.pods.last_mut().context("pod");
        }
        let ip = Ipv4Addr::new(10, 244, 0, 10 + index as u8);
        let netns = NetNs::create(&self.names.pod_netns(index))?;
        let veth = self.names.veth(index);
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns.name])?;
        run("ip", &["link", "set", &veth, "netns", &self.node.name])?;
        self.node.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", &veth])?;
        self.node.ip(&["link", "set", &veth, "up"])?;
        self.node.ip(&["route", "add", &format!("{ip}/32"), "dev", &veth])?;
        netns.ip(&["link", "set", "eth0", "up"])?;
        netns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        netns.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"])?;
        netns.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"])?;
        netns.ip(&["route", "add", "blackhole", SERVICE_CIDR])?;
        let ip6 = pod_ip6(index);
        self.node.ip(&["-6", "addr", "add", &format!("{GATEWAY6}/128"), "dev", &veth, "nodad"])?;
        self.node.ip(&["-6", "route", "add", &format!("{ip6}/128"), "dev", &veth])?;
        netns.ip(&["-6", "addr", "add", &format!("{ip6}/128"), "dev", "eth0", "nodad"])?;
        netns.ip(&["-6", "route", "add", GATEWAY6, "dev", "eth0"])?;
        netns.ip(&["-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0"])?;
        netns.ip(&["-6", "route", "add", "blackhole", SERVICE_CIDR6])?;
        tune_tcp(&netns)?;
        let rel = format!("pod-{}", spec.name);
        let cgroup = Cgroup::create(self.cgroup.path.join(&rel))?;
        self.pods.push(Pod {
            spec,
            ip,
            ip6,
            cgroup_rel: Some(rel),
            procs: Vec::new(),
            cgroup: Some(cgroup),
            netns: Some(netns),
        });
        self.pods.last_mut().context("pod")
    }

    /// Deletes pod `old` (its processes and cgroup) and gives its IP and network namespace
    /// to a new pod `spec` with a cgroup of its own, as a cluster reusing a pod IP would;
    /// rewrites the inventory.
    pub fn reuse_ip(&mut self, old: &str, spec: PodSpec) -> anyhow::Result<&mut Pod> {
        let index = self.pods.iter().position(|p| p.name() == old).context("no such pod")?;
        let rel = format!("pod-{}", spec.name);
        let cgroup = Cgroup::create(self.cgroup.path.join(&rel))?;
        let pod = &mut self.pods[index];
        pod.procs.clear();
        pod.cgroup = Some(cgroup);
        pod.cgroup_rel = Some(rel);
        pod.spec = spec;
        self.write_inventory()?;
        Ok(&mut self.pods[index])
    }

    pub fn add_service(&mut self, svc: ServiceSpec) {
        self.services.push(svc);
    }

    /// Adds a YAML document to the inventory (a TrafficPolicy, a TrafficLabelRule, …).
    pub fn add_document(&mut self, yaml: &str) {
        self.documents.push(yaml.trim().to_owned());
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name() == name).unwrap_or_else(|| panic!("no pod {name}"))
    }

    pub fn pod_mut(&mut self, name: &str) -> &mut Pod {
        self.pods.iter_mut().find(|p| p.name() == name).unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// Sets (or with `None` removes) an annotation and rewrites the inventory.
    pub fn annotate(&mut self, pod: &str, key: &str, value: Option<&str>) -> anyhow::Result<()> {
        let spec = &mut self.pod_mut(pod).spec;
        spec.annotations.retain(|(k, _)| k != key);
        if let Some(v) = value {
            spec.annotations.push((key.into(), v.into()));
        }
        self.write_inventory()
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.path().join("inventory").join("cluster.yaml")
    }

    /// Writes every pod and service as Kubernetes YAML (atomically: write, then rename).
    pub fn write_inventory(&self) -> anyhow::Result<()> {
        let mut y = String::new();
        for p in &self.pods {
            let _ = writeln!(
                y,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: default",
                p.name()
            );
            y.push_str("  labels:\n");
            for (k, v) in &p.spec.labels {
                let _ = writeln!(y, "    {k}: {v:?}");
            }
            y.push_str("  annotations:\n");
            if let Some(rel) = &p.cgroup_rel {
                let _ = writeln!(y, "    graylane.io/cgroup: {rel:?}");
            }
            for (k, v) in &p.spec.annotations {
                let _ = writeln!(y, "    {k}: {v:?}");
            }
            let _ = writeln!(y, "status:\n  podIP: {}\n  podIPs:\n  - ip: {}\n  - ip: {}", p.ip, p.ip, p.ip6);
        }
        for s in &self.services {
            let _ = writeln!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: default\nspec:\n  clusterIP: {}\n  clusterIPs: [{}{}]\n  selector:",
                s.name,
                s.vip,
                s.vip,
                s.vip6.map(|v| format!(", \"{v}\"")).unwrap_or_default()
            );
            for (k, v) in &s.selector {
                let _ = writeln!(y, "    {k}: {v:?}");
            }
            y.push_str("  ports:\n");
            for (port, target, name) in &s.ports {
                let _ = writeln!(y, "  - port: {port}\n    targetPort: {target}");
                if let Some(name) = name {
                    let _ = writeln!(y, "    name: {name}");
                }
            }
        }
        for doc in &self.documents {
            let _ = writeln!(y, "---\n{doc}");
        }
        let path = self.inventory_path();
        let parent = path.parent().context("inventory dir")?;
        std::fs::create_dir_all(parent)?;
        let tmp = self.dir.path().join("cluster.yaml.tmp");
        std::fs::write(&tmp, y)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        SocketAddr::from((NODE_IP, 15001))
    }

    /// An HTTP client for `127.0.0.1:port` inside the node netns (e.g. a fake API server).
    pub fn node_http(&self, port: u16) -> Admin {
        Admin { netns: self.node.path(), addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// The agent's Prometheus endpoint (`:15090/metrics`) inside the node netns.
    pub fn metrics(&self) -> Admin {
        self.node_http(15090)
    }

    pub fn admin(&self) -> Admin {
        Admin { netns: self.node.path(), addr: SocketAddr::from(([127, 0, 0, 1], 15000)) }
    }

    pub fn cgroup_root(&self) -> &Path {
        &self.cgroup.path
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Starts an agent process on this sandbox's node, pins and inventory, logging to the
    /// next `agent-<n>.log`.
    fn spawn_agent(&self, opts: &AgentOptions) -> anyhow::Result<Agent> {
        let n = self
            .dir
            .path()
            .read_dir()?
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
            .count();
        let paths = AgentPaths {
            inventory: &self.inventory_path(),
            cgroup_root: &self.cgroup.path,
            pin_dir: &self.pin_dir,
            proxy_addr: &self.proxy_addr().to_string(),
            proxy_addr6: &SocketAddr::from((NODE_IP6, 15001)).to_string(),
            log: self.dir.path().join(format!("agent-{n}.log")),
        };
        Agent::start(&self.node, &paths, opts)
    }

    /// Writes the inventory and starts the agent, waiting until `/readyz` answers 200.
    pub fn start_agent(&mut self, opts: &AgentOptions) -> anyhow::Result<Duration> {
        self.write_inventory()?;
        let started = Instant::now();
        let mut agent = self.spawn_agent(opts)?;
        let admin = self.admin();
        loop {
            if matches!(admin.get("/readyz"), Ok((200, _))) {
                break;
            }
            if agent.exited() || started.elapsed() > Duration::from_secs(20) {
                bail!("agent did not become ready:\n{}", agent.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = started.elapsed();
        self.agent = Some(agent);
        Ok(took)
    }

    /// A hitless restart: starts a new agent beside the running one (both bind with
    /// `SO_REUSEPORT`), waits until it listens, then SIGTERMs the old one and waits while it
    /// drains. Returns how long the new one took to listen and the old one to exit.
    pub fn replace_agent(&mut self, opts: &AgentOptions) -> anyhow::Result<(Duration, Duration)> {
        let mut old = self.agent.take().context("no agent running")?;
        let started = Instant::now();
        let mut new = self.spawn_agent(opts)?;
        // Listening on both families: the kernel now sends new connects to either agent.
        while new.log_text().matches("proxy listening").count() < 2 {
            if new.exited() || started.elapsed() > Duration::from_secs(20) {
                bail!("new agent did not start listening:\n{}", new.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let listening = started.elapsed();
        let draining = Instant::now();
        old.terminate();
        let drained = draining.elapsed();
        self.agent = Some(new);
        Ok((listening, drained))
    }

    pub fn agent(&mut self) -> anyhow::Result<&mut Agent> {
        self.agent.as_mut().ok_or_else(|| anyhow!("no agent running"))
    }

    /// Kills the agent with SIGKILL and forgets it (its pins stay).
    pub fn kill_agent(&mut self) -> anyhow::Result<()> {
        let mut agent = self.agent.take().context("no agent")?;
        agent.kill9();
        Ok(())
    }

    /// `graylane agent --uninstall` on this sandbox's pins.
    pub fn uninstall(&self) -> anyhow::Result<String> {
        let out = std::process::Command::new(binary()?)
            .args(["agent", "--uninstall", "--pin-dir"])
            .arg(&self.pin_dir)
            .env("RUST_BACKTRACE", "0")
            .output()?;
        anyhow::ensure!(out.status.success(), "uninstall: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Names of programs attached to the sandbox cgroup, by attach type (bpftool's view).
    pub fn attached(&self) -> anyhow::Result<Vec<(String, String)>> {
        let out = std::process::Command::new("bpftool")
            .args(["-j", "cgroup", "show"])
            .arg(&self.cgroup.path)
            .output()
            .context("bpftool (install it: cargo xtask setup)")?;
        anyhow::ensure!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["attach_type"].as_str().unwrap_or("").to_owned(),
                            e["name"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// What the node netns' `index`-th process (see [`Sandbox::spawn_node`]) printed.
    pub fn node_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{index}.log"))).unwrap_or_default()
    }

    /// The agent's log (for failure messages).
    pub fn agent_log(&self) -> String {
        self.agent.as_ref().map(Agent::log_text).unwrap_or_default()
    }

    /// Routes `ip` on the node to `pod`'s veth (as a misconfigured or hostile network might).
    pub fn route_to_pod(&self, ip: Ipv4Addr, pod: &str) -> anyhow::Result<()> {
        let index = self.pods.iter().position(|p| p.name() == pod).context("no such pod")?;
        self.node.ip(&["route", "replace", &format!("{ip}/32"), "dev", &self.names.veth(index)])
    }

    /// Starts a long-running process in the node netns (killed on drop); returns its pid.
    pub fn spawn_node(&mut self, program: &str, args: &[&str]) -> anyhow::Result<u32> {
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!("--net={}", self.node.path().display())).arg("--").arg(program).args(args);
        let log = self.dir.path().join(format!("node-{}.log", self.node_procs.len()));
        let proc = Spawned::spawn(cmd, program, Some(&log))?;
        let pid = proc.pid().context("pid")?;
        self.node_procs.push(proc);
        Ok(pid)
    }

    /// Runs a command in the node netns to completion (e.g. `iptables`).
    pub fn node_exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        self.node.exec(program, args)
    }

    /// A scratch folder that lives as long as the sandbox.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup directory of a pod.
    pub fn pod_cgroup(&self, pod: &str) -> PathBuf {
        self.cgroup.path.join(format!("pod-{pod}"))
    }
}

/// Node-like TCP settings: reuse TIME_WAIT ports for new connects and use the wide port
/// range, so bounded connection storms do not run out of ephemeral ports.
fn tune_tcp(ns: &NetNs) -> anyhow::Result<()> {
    ns.exec("sysctl", &["-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535"])?;
    Ok(())
}

/// Pod `index`'s IPv6 address.
fn pod_ip6(index: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x244, 0, 0, 0, 0, 0, 10 + index as u16)
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill9();
        }
        self.node_procs.clear();
        self.pods.clear();
        remove_pins(&self.pin_dir);
    }
}
