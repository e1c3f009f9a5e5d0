//! A real RabbitMQ broker in a sandbox pod (Debian's `rabbitmq-server`): its own Erlang
//! port mapper, data and logs in a scratch folder, listening on the pod's port 5672, and
//! administered with `rabbitmqctl` inside the pod (not through graylane).

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{PodSpec, Sandbox};

/// Where Debian keeps the broker's own scripts (the ones in /usr/sbin switch to the
/// rabbitmq user).
const BIN: &str = "/usr/lib/rabbitmq/bin";

pub struct RabbitMq {
    pod: String,
    env: Vec<String>,
    _dir: tempfile::TempDir,
}

impl RabbitMq {
    /// Adds pod `pod` (label `app=<pod>`) running the broker; waits until it answers.
    pub fn start(sb: &mut Sandbox, pod: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("graylane-rabbitmq-").tempdir()?;
        let d = |p: &str| -> PathBuf { dir.path().join(p) };
        for sub in ["mnesia", "log", "home"] {
            std::fs::create_dir_all(d(sub))?;
        }
        std::fs::write(d("home/.erlang.cookie"), "GRAYLANETESTCOOKIE")?;
        std::fs::set_permissions(
            d("home/.erlang.cookie"),
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )?;
        std::fs::write(d("rabbitmq.conf"), "listeners.tcp.default = 5672\nloopback_users = none\n")?;
        std::fs::write(d("enabled_plugins"), "[].\n")?;
        let env: Vec<String> = vec![
            format!("HOME={}", d("home").display()),
            "RABBITMQ_NODENAME=rabbit@localhost".into(),
            format!("RABBITMQ_MNESIA_BASE={}", d("mnesia").display()),
            format!("RABBITMQ_LOG_BASE={}", d("log").display()),
            format!("RABBITMQ_CONFIG_FILE={}", d("rabbitmq").display()),
            format!("RABBITMQ_ENABLED_PLUGINS_FILE={}", d("enabled_plugins").display()),
            format!("RABBITMQ_PID_FILE={}", d("pid").display()),
        ];
        let store = sb.add_pod(PodSpec::new(pod).label("app", pod))?;
        // The port mapper in the foreground, as the pod's own process (the broker would
        // start it as a daemon, which outlives the test).
        store.spawn("epmd", &[])?;
        store.wait_listening(4369)?;
        let mut args: Vec<&str> = env.iter().map(String::as_str).collect();
        let server = format!("{BIN}/rabbitmq-server");
        args.push(&server);
        store.spawn("env", &args)?;
        let broker = Self { pod: pod.to_owned(), env, _dir: dir };
        for _ in 0..120 {
            if broker.ctl(sb, &["-q", "await_startup", "--timeout", "1"]).is_ok() {
                return Ok(broker);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        bail!("rabbitmq-server did not start in pod {pod}")
    }

    /// `rabbitmqctl ARGS` inside the broker's pod; its output.
    pub fn ctl(&self, sb: &Sandbox, args: &[&str]) -> anyhow::Result<String> {
        let ctl = format!("{BIN}/rabbitmqctl");
        let mut a: Vec<&str> = self.env.iter().map(String::as_str).collect();
        a.push(&ctl);
        a.extend_from_slice(args);
        let (ok, out, err) = sb.pod(&self.pod).run("env", &a).context("rabbitmqctl")?;
        if !ok {
            bail!("rabbitmqctl {args:?}: {err}{out}");
        }
        Ok(out)
    }
}
