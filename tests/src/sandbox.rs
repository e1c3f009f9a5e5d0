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
    process::{Spawned, in_pod, run},
    sweep::{remove_pins, sweep},
};

/// A kubeconfig for the in-test API server (`fake_apiserver.py` on 127.0.0.1:6443).
const FAKE_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: 'http://127.0.0.1:6443'}}]\n\
users: [{name: fake, user: {token: fake}}]\ncontexts: [{name: fake, context: {cluster: fake, user: fake}}]\ncurrent-context: fake\n";

/// Service VIPs come from here; pods blackhole it, so only a redirect can reach a service.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// IPv6 service VIPs come from here (blackholed in pods too).
pub const SERVICE_CIDR6: &str = "fd00:96::/112";
/// The first node's IPv6 address: the IPv6 proxy listens here (node `n`: `::1+n`; its
/// IPv4 address is `10.200.0.(1+n)`).
pub const NODE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
/// The link between two nodes' netns: `.1` on the first node, `.2` on the second.
const LINK_NET: [u8; 3] = [10, 201, 0];
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
    /// The Kubernetes namespace (`None`: `default`).
    pub namespace: Option<String>,
}

impl ServiceSpec {
    pub fn new(name: &str, vip: Ipv4Addr) -> Self {
        Self { name: name.into(), vip, vip6: None, ports: Vec::new(), selector: Vec::new(), namespace: None }
    }
    /// In Kubernetes namespace `ns` instead of `default`.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
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

/// A pod of another node, as this node's inventory lists it.
#[derive(Clone, Debug)]
pub struct PeerPod {
    pub spec: PodSpec,
    pub ip: Ipv4Addr,
    pub cgroup_rel: Option<String>,
    pub node: String,
    pub host_ip: Ipv4Addr,
}

pub struct Sandbox {
    // Drop order: agent, pods (processes, cgroups, netns), then the node and the rest.
    agent: Option<Agent>,
    pods: Vec<Pod>,
    /// Other nodes' pods (a cluster's), listed in this node's inventory.
    peers: Vec<PeerPod>,
    /// This node's number in its cluster (0 alone): its addresses and pod subnet.
    index: u8,
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

/// The `web` service of [`Sandbox::web`].
pub const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

impl Sandbox {
    pub fn new(p: &Privileged) -> anyhow::Result<Self> {
        Self::on_node(p, 0)
    }

    /// The smallest mesh: a `client` pod, a `web` pod serving HTTP on 8080 and the `web`
    /// service in front of it at [`WEB_VIP`]:80. No agent yet.
    pub fn web(p: &Privileged) -> anyhow::Result<Self> {
        let mut sb = Self::new(p)?;
        sb.add_pod(PodSpec::new("client"))?;
        sb.add_pod(PodSpec::new("web").label("app", "web"))?.serve_http(8080)?;
        sb.add_service(ServiceSpec::new("web", WEB_VIP).named_port(80, 8080, "http").select("app", "web"));
        Ok(sb)
    }

    /// Node number `index` of a cluster: node IP `10.200.0.(1+index)`, pods in
    /// `10.244.index.0/24`.
    pub fn on_node(_: &Privileged, index: u8) -> anyhow::Result<Self> {
        let node_ip = Ipv4Addr::new(10, 200, 0, 1 + index);
        let node_ip6 = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1 + u16::from(index));
        let mount = cgroup2_mount()?;
        sweep(&mount, Path::new(BPFFS));
        let names = Names::fresh();
        let dir = tempfile::Builder::new().prefix(&format!("{}-", names.id)).tempdir()?;
        let cgroup = Cgroup::create(mount.join(&names.id))?;
        let node = NetNs::create(&names.node_netns())?;
        node.ip(&["addr", "add", &format!("{node_ip}/32"), "dev", "lo"])?;
        node.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
        node.ip(&["-6", "addr", "add", &format!("{node_ip6}/128"), "dev", "lo", "nodad"])?;
        tune_tcp(&node)?;
        let pin_dir = PathBuf::from(BPFFS).join(&names.id);
        Ok(Self {
            agent: None,
            pods: Vec::new(),
            peers: Vec::new(),
            index,
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
            let ip6 = pod_ip6(self.index, index);
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
        let ip = Ipv4Addr::new(10, 244, self.index, 10 + index as u8);
        let ip6 = pod_ip6(self.index, index);
        let netns = self.wire(index, ip, ip6)?;
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

    /// Pod `index`'s network namespace, wired to the node with its addresses and routes.
    fn wire(&self, index: usize, ip: Ipv4Addr, ip6: Ipv6Addr) -> anyhow::Result<NetNs> {
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
        self.node.ip(&["-6", "addr", "add", &format!("{GATEWAY6}/128"), "dev", &veth, "nodad"])?;
        self.node.ip(&["-6", "route", "add", &format!("{ip6}/128"), "dev", &veth])?;
        netns.ip(&["-6", "addr", "add", &format!("{ip6}/128"), "dev", "eth0", "nodad"])?;
        netns.ip(&["-6", "route", "add", GATEWAY6, "dev", "eth0"])?;
        netns.ip(&["-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0"])?;
        netns.ip(&["-6", "route", "add", "blackhole", SERVICE_CIDR6])?;
        tune_tcp(&netns)?;
        Ok(netns)
    }

    /// Recreates pod `name`'s sandbox as a container runtime restart does: its processes
    /// end, its network namespace goes (its veth first: the agent may hold the old
    /// namespace open), and a new one with the same addresses takes its place; the cgroup,
    /// the IP and the inventory stay.
    pub fn recreate_netns(&mut self, name: &str) -> anyhow::Result<&mut Pod> {
        let index = self.pods.iter().position(|p| p.name() == name).context("no such pod")?;
        let (ip, ip6) = (self.pods[index].ip, self.pods[index].ip6);
        self.pods[index].procs.clear();
        self.node.ip(&["link", "del", &self.names.veth(index)])?;
        self.pods[index].netns = None;
        let netns = self.wire(index, ip, ip6)?;
        self.pods[index].netns = Some(netns);
        Ok(&mut self.pods[index])
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

    /// Removes the last document added with [`Sandbox::add_document`] (the inventory is
    /// rewritten only by [`Sandbox::write_inventory`]).
    pub fn pop_document(&mut self) -> Option<String> {
        self.documents.pop()
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
            pod_metadata(&mut y, &p.spec, p.cgroup_rel.as_deref());
            let here = p.cgroup_rel.is_some();
            if here {
                let _ = writeln!(y, "spec:\n  nodeName: {}", self.node_name());
            }
            let _ = writeln!(y, "status:\n  podIP: {}\n  podIPs:\n  - ip: {}\n  - ip: {}", p.ip, p.ip, p.ip6);
            if here {
                let _ = writeln!(y, "  hostIP: {}", self.node_ip());
            }
        }
        for p in &self.peers {
            // The whole cluster in one file: the other node's cgroups too (not ours).
            pod_metadata(&mut y, &p.spec, p.cgroup_rel.as_deref());
            let _ = writeln!(
                y,
                "spec:\n  nodeName: {}\nstatus:\n  podIP: {}\n  hostIP: {}",
                p.node, p.ip, p.host_ip
            );
        }
        for s in &self.services {
            let _ = writeln!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: {}\nspec:\n  clusterIP: {}\n  clusterIPs: [{}{}]\n  selector:",
                s.name,
                s.namespace.as_deref().unwrap_or("default"),
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
        SocketAddr::from((self.node_ip(), 15001))
    }

    /// This node's name (`spec.nodeName` of its pods).
    pub fn node_name(&self) -> String {
        format!("node-{}", self.index)
    }

    /// This node's pods as another node's inventory lists them.
    pub fn as_peers(&self) -> Vec<PeerPod> {
        self.pods
            .iter()
            .filter(|p| p.cgroup_rel.is_some())
            .map(|p| PeerPod {
                spec: p.spec.clone(),
                ip: p.ip,
                cgroup_rel: p.cgroup_rel.clone(),
                node: self.node_name(),
                host_ip: self.node_ip(),
            })
            .collect()
    }

    /// Lists other nodes' pods in this node's inventory (written by the next
    /// [`Sandbox::write_inventory`]).
    pub fn set_peers(&mut self, peers: Vec<PeerPod>) {
        self.peers = peers;
    }

    /// Connects this node's netns to `other`'s with a veth pair and routes each node's
    /// address and pod subnet through it (one link per sandbox: the first node of a
    /// two-node cluster). Removed with the namespaces.
    pub fn link_to(&self, other: &Sandbox) -> anyhow::Result<()> {
        let (a, b) = (format!("{}l", self.names.veth(99)), format!("{}m", self.names.veth(99)));
        let (a, b) = (trim15(&a), trim15(&b));
        run("ip", &["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        run("ip", &["link", "set", &a, "netns", &self.node.name])?;
        run("ip", &["link", "set", &b, "netns", &other.node.name])?;
        let [x, y, z] = LINK_NET;
        let (ip_a, ip_b) = (Ipv4Addr::new(x, y, z, 1), Ipv4Addr::new(x, y, z, 2));
        for (ns, dev, ip, via, far) in
            [(&self.node, &a, ip_a, ip_b, other), (&other.node, &b, ip_b, ip_a, self)]
        {
            ns.ip(&["addr", "add", &format!("{ip}/30"), "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
            ns.ip(&["route", "add", &format!("{}/32", far.node_ip()), "via", &via.to_string()])?;
            ns.ip(&["route", "add", &format!("10.244.{}.0/24", far.index), "via", &via.to_string()])?;
        }
        Ok(())
    }

    /// An HTTP client for `127.0.0.1:port` inside the node netns (e.g. a fake API server).
    pub fn node_http(&self, port: u16) -> Admin {
        Admin { netns: self.node.path(), addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// An HTTP client for `addr` inside the node netns (e.g. the metrics on the node IP).
    pub fn node_addr(&self, addr: SocketAddr) -> Admin {
        Admin { netns: self.node.path(), addr }
    }

    /// The node's network namespace, as `ip netns` names it.
    pub fn node_netns(&self) -> &str {
        &self.node.name
    }

    /// The node's IPv4 address (where the proxy listens; reachable from every pod).
    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, 0, 1 + self.index)
    }

    /// The node's IPv6 address (where the IPv6 proxy listens).
    pub fn node_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1 + u16::from(self.index))
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
            // Bare addresses: the proxy port (15001) is assumed, as a user would write it.
            proxy_addr: &self.node_ip().to_string(),
            proxy_addr6: &self.node_ip6().to_string(),
            node_name: &self.node_name(),
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

    /// Starts another agent on this sandbox's pins beside the running one, without waiting
    /// for it (it should refuse, or with `--takeover` take over).
    pub fn start_another_agent(&self, opts: &AgentOptions) -> anyhow::Result<Agent> {
        self.spawn_agent(opts)
    }

    /// A hitless restart: starts a new agent with `--takeover` beside the running one (it
    /// asks the old one to hand over), waits until it listens, then SIGTERMs the old one and
    /// waits while it finishes draining. Returns how long the new one took to listen and
    /// the old one to exit.
    pub fn replace_agent(&mut self, opts: &AgentOptions) -> anyhow::Result<(Duration, Duration)> {
        let mut old = self.agent.take().context("no agent running")?;
        let started = Instant::now();
        let mut opts = opts.clone();
        opts.args.push("--takeover".into());
        let mut new = self.spawn_agent(&opts)?;
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
        let (ok, text) = self.try_uninstall()?;
        anyhow::ensure!(ok, "uninstall: {text}");
        Ok(text)
    }

    /// `graylane agent --uninstall`: whether it succeeded, and what it printed.
    pub fn try_uninstall(&self) -> anyhow::Result<(bool, String)> {
        let out = std::process::Command::new(binary()?)
            .args(["agent", "--uninstall", "--pin-dir"])
            .arg(&self.pin_dir)
            .env("RUST_BACKTRACE", "0")
            .output()?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
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

    /// Starts the in-test Kubernetes API server in the node netns, serving this sandbox's
    /// inventory file (written first) after `delay_ms`; returns a kubeconfig for it (the
    /// agent's `AgentOptions::kubeconfig`).
    pub fn start_fake_apiserver(&mut self, delay_ms: u64) -> anyhow::Result<PathBuf> {
        self.write_inventory()?;
        let kubeconfig = self.scratch().join("kubeconfig");
        std::fs::write(&kubeconfig, FAKE_KUBECONFIG).context("write kubeconfig")?;
        let script = crate::fixture("fake_apiserver.py");
        let inventory = self.inventory_path();
        let (script, inventory) = (script.display().to_string(), inventory.display().to_string());
        self.spawn_node("python3", &[&script, "127.0.0.1", "6443", &inventory, &delay_ms.to_string()])?;
        Ok(kubeconfig)
    }

    /// Runs a command in `pod`'s cgroup but the node's network namespace (the way a
    /// host-network pod's processes run); returns (success, stdout, stderr).
    pub fn run_on_host_network(
        &self,
        pod: &str,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<(bool, String, String)> {
        let out = in_pod(&self.pod_cgroup(pod).join("cgroup.procs"), &self.node.path(), program, args)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("{program} in pod {pod} on the host network"))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
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

/// A Pod document's head: its name, labels and annotations (the cgroup one included).
fn pod_metadata(y: &mut String, spec: &PodSpec, cgroup_rel: Option<&str>) {
    let ns = spec.namespace.as_deref().unwrap_or("default");
    let _ =
        writeln!(y, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {ns}", spec.name);
    y.push_str("  labels:\n");
    for (k, v) in &spec.labels {
        let _ = writeln!(y, "    {k}: {v:?}");
    }
    y.push_str("  annotations:\n");
    if let Some(rel) = cgroup_rel {
        let _ = writeln!(y, "    graylane.io/cgroup: {rel:?}");
    }
    for (k, v) in &spec.annotations {
        let _ = writeln!(y, "    {k}: {v:?}");
    }
}

fn trim15(name: &str) -> String {
    name.chars().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect()
}

/// Node-like TCP settings: reuse TIME_WAIT ports for new connects and use the wide port
/// range, so bounded connection storms do not run out of ephemeral ports.
fn tune_tcp(ns: &NetNs) -> anyhow::Result<()> {
    ns.exec("sysctl", &["-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535"])?;
    Ok(())
}

/// Pod `index`'s IPv6 address on node `node`.
fn pod_ip6(node: u8, index: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x244, 0, u16::from(node), 0, 0, 0, 10 + index as u16)
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
