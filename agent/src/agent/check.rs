//! Prerequisites, each checked and explained: what `graylane check` prints (✓/✗ and a
//! one-line fix), and what the agent checks at start, refusing with the same words.

use std::{net::SocketAddr, path::Path};

use crate::{
    config::{AgentArgs, Budget},
    datapath::{CgroupRoot, DatapathError, PinOwner, PinPaths},
};

/// The oldest kernel graylane runs on (cgroup bpf_links, ring buffers, sockmap lookups from
/// cgroup programs).
/// 5.18: connect hooks set the errno of a connect they refuse (`bpf_set_retval`).
const MIN_KERNEL: (u32, u32) = (5, 18);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, with a caveat.
    Warn,
    /// The agent would not work.
    Fail,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, status: Status::Ok, detail: detail.into(), fix: None }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// What to check: everything (`graylane check`), or what the agent cannot find out later
/// by itself (at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Start,
}

pub fn run(args: &AgentArgs, scope: Scope) -> Vec<Check> {
    let mut out =
        vec![kernel(), btf(), cgroup(args.cgroup_root.as_deref()), bpffs(&args.pin_dir), capabilities()];
    out.push(open_files(args));
    if scope == Scope::All {
        out.push(pin_owner(&PinPaths::new(&args.pin_dir), args.takeover));
        out.extend(ports(args));
        out.push(inventory(args));
        out.extend(data_lanes(args));
    }
    out
}

/// Each data lane's store account, asked at every endpoint of its store (standalone
/// inventories: the agent asks the same in a cluster and shows it in `/routes`).
fn data_lanes(args: &AgentArgs) -> Vec<Check> {
    let Some(path) = &args.inventory else { return Vec::new() };
    let proxy: Vec<std::net::IpAddr> =
        [args.proxy_addr, args.proxy_addr6].iter().flatten().map(SocketAddr::ip).collect();
    let facts = crate::inventory::NodeFacts::read(&proxy)
        .named(args.node_name.clone())
        .exporting(args.rules_default_export);
    let Ok(snapshot) = crate::inventory::load_path(path, &facts) else { return Vec::new() };
    let table = crate::routing::RoutingTable::build(&snapshot, &crate::policy::Registry::new(None));
    let mut lanes = Vec::new();
    for svc in table.data_stores() {
        let Some(data) = &svc.data else { continue };
        for rule in data.lanes() {
            if !lanes.iter().any(
                |(n, r, _): &(std::sync::Arc<str>, std::sync::Arc<crate::routing::data::DataLaneRule>, _)| {
                    *n == svc.name && r.lane == rule.lane
                },
            ) {
                lanes.push((svc.name.clone(), rule.clone(), svc.endpoint_addrs()));
            }
        }
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return Vec::new();
    };
    lanes
        .into_iter()
        .map(|(store, rule, endpoints)| {
            let name = format!("{store} lane {}", rule.lane);
            let verdicts: Vec<(SocketAddr, crate::stores::probe::Verdict)> = rt.block_on(async {
                let mut out = Vec::new();
                for e in &endpoints {
                    out.push((*e, super::store_accounts::ask(&rule, *e, args.bypass_mark).await));
                }
                out
            });
            let fix = "give the lane a store account limited to its own data (README: Store accounts)";
            let why = match (
                &rule.account,
                verdicts.iter().find(|(_, v)| *v != crate::stores::probe::Verdict::StoreEnforced),
            ) {
                (None, _) => Some("names no store account".to_owned()),
                (Some(Err(e)), _) => Some(e.clone()),
                (Some(Ok(_)), Some((e, crate::stores::probe::Verdict::RewriteOnly(why)))) => {
                    Some(format!("{e}: {why}"))
                }
                _ if endpoints.is_empty() => Some("no endpoint to ask".to_owned()),
                _ => None,
            };
            match why {
                None => {
                    Check::ok("data lane", format!("{name}: store-enforced ({} endpoints)", endpoints.len()))
                }
                Some(why) => {
                    let served = if rule.require_store { " — not served (isolated lane)" } else { "" };
                    Check::warn("data lane", format!("{name}: rewrite-only{served}: {why}"), fix)
                }
            }
        })
        .collect()
}

/// The checks as lines: `✓ name  detail`, with `fix:` lines under failures.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        };
        s.push_str(&format!("{mark} {:<15} {}\n", c.name, c.detail));
        if let (Some(fix), true) = (&c.fix, c.status != Status::Ok) {
            s.push_str(&format!("  {:<15} fix: {fix}\n", ""));
        }
    }
    s
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

fn kernel() -> Check {
    let release =
        nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let need = format!("{}.{} or later needed", MIN_KERNEL.0, MIN_KERNEL.1);
    if version >= MIN_KERNEL {
        Check::ok("kernel", format!("{release} ({need})"))
    } else {
        Check::fail("kernel", format!("{release}: {need}"), "run the node on a newer kernel")
    }
}

fn btf() -> Check {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if path.exists() {
        Check::ok("BTF", path.display().to_string())
    } else {
        Check::fail(
            "BTF",
            format!("{} is missing", path.display()),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
    }
}

fn cgroup(root: Option<&Path>) -> Check {
    match CgroupRoot::resolve(root) {
        Ok(r) => Check::ok("cgroup v2", r.path.display().to_string()),
        Err(DatapathError::NoCgroup2) if sys_remounted() => Check::fail(
            "cgroup v2",
            "no cgroup v2 mount visible: this process's /sys was remounted (ip netns exec does that)",
            "start the agent with `nsenter --net=/var/run/netns/<name> -- graylane agent …` instead of `ip netns exec`, or pass --cgroup-root",
        ),
        Err(DatapathError::NoCgroup2) => Check::fail(
            "cgroup v2",
            "no cgroup v2 mount",
            "mount cgroup2 (e.g. at /sys/fs/cgroup), or pass --cgroup-root",
        ),
        Err(e) => Check::fail(
            "cgroup v2",
            e.to_string(),
            "pass --cgroup-root <a cgroup v2 directory above every pod>",
        ),
    }
}

/// Whether this process sees another mount namespace than init, and init has a cgroup v2
/// mount this one lacks (`ip netns exec` remounts /sys).
pub fn sys_remounted() -> bool {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let has_cgroup2 = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|m| {
            m.lines().any(|l| l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup2 ")))
        })
    };
    ns("self") != ns("1") && has_cgroup2("1") && !has_cgroup2("self")
}

fn bpffs(pin_dir: &Path) -> Check {
    use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
    let mounted = pin_dir
        .ancestors()
        .find(|p| statfs(*p).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC))
        .map(Path::to_path_buf);
    match mounted {
        Some(p) => Check::ok("bpffs", format!("{} (pins under {})", p.display(), pin_dir.display())),
        None if has_capability(CAP_SYS_ADMIN) => {
            Check::ok("bpffs", "not mounted yet: the agent mounts it at /sys/fs/bpf")
        }
        None => Check::fail(
            "bpffs",
            "not mounted, and no CAP_SYS_ADMIN to mount it",
            "mount -t bpf bpf /sys/fs/bpf",
        ),
    }
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_BPF: u32 = 39;

fn has_capability(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|bits| bits & (1 << cap) != 0)
}

fn capabilities() -> Check {
    let missing: Vec<&str> =
        [(CAP_BPF, "CAP_BPF"), (CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")]
            .iter()
            .filter(|(cap, _)| !(has_capability(*cap) || (*cap == CAP_BPF && has_capability(CAP_SYS_ADMIN))))
            .map(|(_, name)| *name)
            .collect();
    if !missing.is_empty() {
        return Check::fail(
            "capabilities",
            format!("missing {}", missing.join(", ")),
            "run as root, or grant BPF, NET_ADMIN and SYS_ADMIN (the DaemonSet does)",
        );
    }
    if !has_capability(CAP_SYS_RESOURCE) {
        return Check::warn(
            "capabilities",
            "no CAP_SYS_RESOURCE: the open-files limit cannot be raised",
            "grant SYS_RESOURCE, or raise the limit for the agent",
        );
    }
    if !has_capability(CAP_SYS_PTRACE) {
        return Check::warn(
            "capabilities",
            "no CAP_SYS_PTRACE: pods' network namespaces may not open, and their connections then leave from the node's address",
            "grant SYS_PTRACE (the DaemonSet does), or run with --upstream-source node",
        );
    }
    Check::ok("capabilities", "BPF, NET_ADMIN, SYS_ADMIN, SYS_PTRACE, SYS_RESOURCE")
}

fn pin_owner(pins: &PinPaths, takeover: bool) -> Check {
    if !pins.dir.exists() {
        return Check::ok("pin dir", format!("{}: free (nothing installed yet)", pins.dir.display()));
    }
    match PinOwner::try_acquire(pins) {
        Ok(Ok(_)) => Check::ok("pin dir", format!("{}: free", pins.dir.display())),
        Ok(Err(holder)) if takeover => Check::ok(
            "pin dir",
            format!("{}: owned by {holder}; --takeover will take over", pins.dir.display()),
        ),
        Ok(Err(holder)) => Check::fail(
            "pin dir",
            format!("{}: owned by another graylane agent ({holder})", pins.dir.display()),
            "stop it first, or start this one with --takeover",
        ),
        Err(e) => Check::fail("pin dir", e.to_string(), "check --pin-dir"),
    }
}

fn open_files(args: &AgentArgs) -> Check {
    use nix::sys::resource::{Resource, getrlimit};
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map(|(_, hard)| hard).unwrap_or(1024);
    match Budget::plan(limit, args.max_conns, args.max_conns_per_pod) {
        Ok(b) => Check::ok(
            "open files",
            format!(
                "limit {limit}: {} connections, {} per pod, {} idle upstream",
                b.max_conns, b.max_conns_per_pod, b.upstream_idle
            ),
        ),
        Err(e) => {
            Check::fail("open files", e.to_string(), "raise the open-files limit (ulimit -n, LimitNOFILE=)")
        }
    }
}

/// The agent's listen addresses must be free (or held by the agent `--takeover` replaces)
/// and on this node.
fn ports(args: &AgentArgs) -> Vec<Check> {
    let mut addrs: Vec<(&'static str, SocketAddr)> =
        vec![("admin port", args.admin_addr), ("metrics port", args.metrics_addr)];
    match args.proxy_addr {
        Some(a) => addrs.insert(0, ("proxy port", a)),
        None => {
            return vec![Check::fail(
                "proxy port",
                "no --proxy-addr",
                "give --proxy-addr <node IP> (the proxy listens on port 15001 there)",
            )];
        }
    }
    if let Some(a) = args.proxy_addr6 {
        addrs.insert(1, ("proxy port v6", a));
    }
    addrs
        .into_iter()
        .map(|(name, addr)| match std::net::TcpListener::bind(addr) {
            Ok(_) => Check::ok(name, format!("{addr} free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && args.takeover => {
                Check::ok(name, format!("{addr} in use; --takeover shares it while handing over"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::fail(
                name,
                format!("{addr} is in use"),
                "stop what listens there (another agent? then --takeover), or choose another address",
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Check::fail(
                name,
                format!("{addr} is not an address of this node"),
                "give one of the node's addresses",
            ),
            Err(e) => Check::fail(name, format!("{addr}: {e}"), "check the address"),
        })
        .collect()
}

fn inventory(args: &AgentArgs) -> Check {
    let Some(path) = &args.inventory else {
        return if args.kube {
            Check::ok("inventory", "Kubernetes (read at start)")
        } else {
            Check::fail("inventory", "none given", "--inventory <file|dir> (standalone) or --kube")
        };
    };
    let proxy: Vec<std::net::IpAddr> =
        [args.proxy_addr, args.proxy_addr6].iter().flatten().map(SocketAddr::ip).collect();
    match crate::inventory::load_path(
        path,
        &crate::inventory::NodeFacts::read(&proxy)
            .named(args.node_name.clone())
            .exporting(args.rules_default_export),
    ) {
        Ok(s) => Check::ok(
            "inventory",
            format!(
                "{}: {} pods, {} services, {} policies, {} rules",
                path.display(),
                s.pods.len(),
                s.services.len(),
                s.policies.len(),
                s.rules.len()
            ),
        ),
        Err(e @ crate::inventory::InventoryError::Read { .. }) => {
            Check::fail("inventory", e.to_string(), "give --inventory an existing, readable file or folder")
        }
        Err(e) => Check::fail(
            "inventory",
            e.to_string(),
            "fix the file (the message names it, the document and the field)",
        ),
    }
}
