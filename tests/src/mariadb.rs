//! A real MariaDB server in a sandbox pod (the data store of data-lane tests and the
//! demo): initialized in its own scratch folder, listening on the pod's port 3306, and
//! administered as root over its unix socket (not through graylane).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{PodSpec, Sandbox};

pub struct MariaDb {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl MariaDb {
    /// Adds pod `pod` (label `app=<pod>`) running `mariadbd`, then runs `init` as root.
    pub fn start(sb: &mut Sandbox, pod: &str, init: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("graylane-mariadb-").tempdir()?;
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            // Its bootstrap's temporary tables too: never in a /tmp other tests share.
            .arg(format!("--tmpdir={}", dir.path().display()))
            .output()
            .context("mariadb-install-db (install it: cargo xtask setup)")?;
        if !out.status.success() {
            bail!("mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        }
        let socket = dir.path().join("sock");
        let args = [
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", dir.path().join("pid").display()),
            format!("--log-error={}", dir.path().join("error.log").display()),
            // Its own temporary files: never another test's /tmp.
            format!("--tmpdir={}", dir.path().display()),
            "--bind-address=0.0.0.0".to_owned(),
            "--port=3306".to_owned(),
            // Pods have no DNS: never resolve clients' addresses.
            "--skip-name-resolve".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let store = sb.add_pod(PodSpec::new(pod).label("app", pod))?;
        store.spawn("mariadbd", &args)?;
        store.wait_listening(3306)?;
        let db = Self { socket, _dir: dir };
        db.sql(init)?;
        Ok(db)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs SQL as root over the socket; the rows, tab-separated, trimmed.
    pub fn sql(&self, statements: &str) -> anyhow::Result<String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-N", "-B"])
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-e", statements])
            .output()
            .context("mariadb client")?;
        if !out.status.success() {
            bail!("{statements}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}
