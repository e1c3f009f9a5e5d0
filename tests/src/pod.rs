//! A pod: network namespace + veth to the node + its own cgroup, and the processes run in it.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Stdio,
};

use anyhow::{Context as _, bail};

use crate::{
    cgroup::Cgroup,
    netns::NetNs,
    process::{Spawned, in_pod},
};

/// What the inventory says about a pod.
#[derive(Clone, Debug, Default)]
pub struct PodSpec {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Listed in the inventory only; no namespace, veth or cgroup (a pod on another node).
    pub remote_ip: Option<Ipv4Addr>,
    /// The Kubernetes namespace (`None`: `default`).
    pub namespace: Option<String>,
}

impl PodSpec {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), ..Default::default() }
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    pub fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.push((k.into(), v.into()));
        self
    }
    pub fn tag(self, tag: &str) -> Self {
        self.annotate("graylane.io/tag", tag)
    }
    pub fn tenant(self, tenant: &str) -> Self {
        self.annotate("graylane.io/tenant", tenant)
    }
    /// In Kubernetes namespace `ns` instead of `default`.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }
    /// A pod on another node: only its IP is known here.
    pub fn remote(mut self, ip: Ipv4Addr) -> Self {
        self.remote_ip = Some(ip);
        self
    }
}

/// A running pod of the sandbox.
pub struct Pod {
    pub spec: PodSpec,
    pub ip: Ipv4Addr,
    pub ip6: Ipv6Addr,
    /// Relative to the agent's cgroup root (the sandbox cgroup).
    pub cgroup_rel: Option<String>,
    // Field order matters for drop: processes, then cgroup, then netns.
    pub(crate) procs: Vec<Spawned>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) netns: Option<NetNs>,
}

impl Pod {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn parts(&self) -> anyhow::Result<(&Cgroup, &NetNs)> {
        match (&self.cgroup, &self.netns) {
            (Some(c), Some(n)) => Ok((c, n)),
            _ => bail!("pod {} is remote: nothing runs in it", self.spec.name),
        }
    }

    /// Starts a long-running process in the pod; it is killed when the sandbox drops.
    pub fn spawn(&mut self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let (cg, ns) = self.parts()?;
        let cmd = in_pod(&cg.procs(), &ns.path(), program, args);
        let proc = Spawned::spawn(cmd, &format!("{}: {program}", self.spec.name), None)?;
        self.procs.push(proc);
        Ok(())
    }

    /// Runs a command in the pod to completion; returns (success, stdout, stderr).
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let (cg, ns) = self.parts()?;
        let out = in_pod(&cg.procs(), &ns.path(), program, args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("{program} in pod {}", self.spec.name))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Starts a process and returns it to the caller (to wait on its output).
    pub fn start(&self, program: &str, args: &[&str]) -> anyhow::Result<Spawned> {
        let (cg, ns) = self.parts()?;
        let mut cmd = in_pod(&cg.procs(), &ns.path(), program, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child =
            cmd.stdin(Stdio::null()).spawn().with_context(|| format!("{program} in {}", self.spec.name))?;
        Ok(Spawned::from_child(child, &self.spec.name))
    }

    /// Waits (bounded) until something listens on `port` in this pod.
    pub fn wait_listening(&self, port: u16) -> anyhow::Result<()> {
        let (_, ns) = self.parts()?;
        let filter = format!("sport = :{port}");
        for _ in 0..500 {
            if !ns.exec("ss", &["-Hltn", &filter])?.trim().is_empty() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        bail!("nothing listens on port {port} in pod {}", self.spec.name)
    }

    /// Starts the echo server fixture on `ports` and waits until they listen.
    pub fn serve_echo(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        let script = crate::fixture("echo_server.py");
        // "" binds every address of the pod, IPv4 and IPv6.
        let mut args = vec![script.to_str().unwrap_or_default(), ""];
        let port_strings: Vec<String> = ports.iter().map(u16::to_string).collect();
        args.extend(port_strings.iter().map(String::as_str));
        self.spawn("python3", &args)?;
        for p in ports {
            self.wait_listening(*p)?;
        }
        Ok(())
    }

    /// Starts `redis-server` on port 6379 of every address of the pod, keeping nothing on
    /// disk (its working folder: `dir`), and waits until it listens.
    pub fn serve_redis(&mut self, dir: &std::path::Path) -> anyhow::Result<()> {
        let dir = dir.to_str().unwrap_or_default();
        let args = ["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"];
        self.spawn(
            "redis-server",
            &[&args[..], &["--save", "", "--appendonly", "no", "--dir", dir]].concat(),
        )?;
        self.wait_listening(6379)
    }

    /// Starts the HTTP echo backend (answers with this pod's name and the request it saw).
    pub fn serve_http(&mut self, port: u16) -> anyhow::Result<()> {
        self.serve_fixture("http_echo.py", &[&self.spec.name.clone(), &port.to_string()], port)
    }

    /// Starts the HTTP echo backend, answering 503 to everything while `fail_file` exists.
    pub fn serve_http_failing_while(&mut self, port: u16, fail_file: &std::path::Path) -> anyhow::Result<()> {
        let file = fail_file.display().to_string();
        self.serve_fixture("http_echo.py", &[&self.spec.name.clone(), &port.to_string(), &file], port)
    }

    /// Starts the HTTP echo backend answering every request after `delay_ms`.
    pub fn serve_http_delayed(&mut self, port: u16, delay_ms: u64) -> anyhow::Result<()> {
        let args = [self.spec.name.clone(), port.to_string(), "-".into(), delay_ms.to_string()];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.serve_fixture("http_echo.py", &refs, port)
    }

    /// Starts the gRPC echo backend (real grpcio, h2c).
    pub fn serve_grpc(&mut self, port: u16) -> anyhow::Result<()> {
        self.serve_fixture("grpc_echo.py", &[&self.spec.name.clone(), &port.to_string()], port)
    }

    /// Starts a server-speaks-first backend (sends a banner on connect).
    pub fn serve_banner(&mut self, port: u16) -> anyhow::Result<()> {
        self.serve_fixture("banner_server.py", &[&port.to_string()], port)
    }

    /// Starts a TCP server that says its name and the peer address it sees, then echoes.
    pub fn serve_whoami(&mut self, port: u16) -> anyhow::Result<()> {
        self.serve_fixture("whoami_server.py", &[&self.spec.name.clone(), &port.to_string()], port)
    }

    fn serve_fixture(&mut self, script: &str, args: &[&str], port: u16) -> anyhow::Result<()> {
        let path = crate::fixture(script);
        let mut all = vec![path.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        self.spawn("python3", &all)?;
        self.wait_listening(port)
    }

    /// `n` HTTP/1.1 GETs over keep-alive from this pod (`headers` as `name:value`); the
    /// answers counted by serving pod and status, with the first answers of each status.
    pub fn http_load(&self, url: &str, n: usize, headers: &[&str]) -> anyhow::Result<serde_json::Value> {
        self.http_load_for(url, &n.to_string(), headers)
    }

    /// Like [`Pod::http_load`]; `amount` is a count or a duration such as `3s`.
    pub fn http_load_for(
        &self,
        url: &str,
        amount: &str,
        headers: &[&str],
    ) -> anyhow::Result<serde_json::Value> {
        let count = amount.to_owned();
        let mut args = vec![url, count.as_str()];
        args.extend_from_slice(headers);
        let mut out = self.python_json("http_load.py", &args)?;
        out.pop().context("http_load printed nothing")
    }

    /// Runs a Python fixture script in the pod and parses its JSON output (one value per
    /// line, or one value).
    pub fn python_json(&self, script: &str, args: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = crate::fixture(script);
        let mut all = vec![path.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        let (ok, out, err) = self.run("python3", &all)?;
        if !ok {
            bail!("{script} in {} failed: {err}", self.spec.name);
        }
        out.lines().map(|l| serde_json::from_str(l).with_context(|| format!("{script}: {l}"))).collect()
    }

    /// `ip -n <pod netns> …`
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        self.parts()?.1.ip(args)
    }

    /// An HTTP GET with curl from inside the pod: (http code, body). Code 0 = no response.
    pub fn curl(&self, url: &str) -> anyhow::Result<(u16, String)> {
        let (_, out, _) = self.run("curl", &["-s", "-m", "5", "-w", "\n%{http_code}", url])?;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", out.as_str()));
        Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
    }
}
