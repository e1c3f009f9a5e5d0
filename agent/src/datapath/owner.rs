//! One owner of the pinned state: an exclusive `flock` on the pin directory, held for the
//! agent's life. A second agent on the same pins refuses to start (naming the owner), or
//! with `--takeover` waits until the owner has handed over; `--uninstall` needs it too.

use std::{
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::Path,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};

use super::{DatapathError, PinPaths};

/// Held while this process owns the pins; dropping it releases them.
#[derive(Debug)]
pub struct PinOwner {
    _lock: Flock<File>,
}

/// Who holds the pins now, as far as this process can see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The holder's pid in our pid namespace (unknown across pid namespaces).
    pub pid: Option<u32>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("a process in another pid namespace"),
        }
    }
}

impl PinOwner {
    /// Takes the pins now, or says who holds them (and `hint`: what the user can do).
    pub fn acquire(pins: &PinPaths, hint: &'static str) -> Result<Self, DatapathError> {
        match Self::try_acquire(pins)? {
            Ok(owner) => Ok(owner),
            Err(holder) => {
                Err(DatapathError::Owned { dir: pins.dir.clone(), holder: holder.to_string(), hint })
            }
        }
    }

    /// Waits up to `timeout` for the holder to let go.
    pub fn wait(pins: &PinPaths, timeout: Duration) -> Result<Self, DatapathError> {
        let started = Instant::now();
        loop {
            match Self::try_acquire(pins)? {
                Ok(owner) => return Ok(owner),
                Err(holder) if started.elapsed() >= timeout => {
                    return Err(DatapathError::Owned {
                        dir: pins.dir.clone(),
                        holder: holder.to_string(),
                        hint: "it did not hand over in time",
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// `Ok(Ok(owner))`, or `Ok(Err(holder))` when another process holds the pins.
    pub fn try_acquire(pins: &PinPaths) -> Result<Result<Self, Holder>, DatapathError> {
        let dir = File::open(&pins.dir)
            .map_err(|source| DatapathError::Pin { path: pins.dir.clone(), cause: source })?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Ok(Self { _lock: lock })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(Err(Holder { pid: holder_pid(&pins.dir) })),
            Err((_, errno)) => {
                Err(DatapathError::Pin { path: pins.dir.clone(), cause: std::io::Error::from(errno) })
            }
        }
    }
}

/// The pid holding an exclusive `flock` on `dir`, from `/proc/locks`.
fn holder_pid(dir: &Path) -> Option<u32> {
    let meta = std::fs::metadata(dir).ok()?;
    let dev = meta.dev();
    let id = format!("{:02x}:{:02x}:{}", nix::sys::stat::major(dev), nix::sys::stat::minor(dev), meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks_holder(&locks, &id)
}

/// Parses `/proc/locks` lines such as `1: FLOCK  ADVISORY  WRITE 1234 00:27:615059 0 EOF`.
fn locks_holder(locks: &str, id: &str) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed as `1: -> FLOCK …`: skip them.
        if fields.get(1) != Some(&"FLOCK") || fields.get(5) != Some(&id) {
            return None;
        }
        fields.get(4)?.parse::<u32>().ok().filter(|pid| *pid > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_and_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let pins = PinPaths::new(dir.path());
        let first = PinOwner::acquire(&pins, "hint").expect("first");
        let e = PinOwner::acquire(&pins, "hint").expect_err("second").to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(PinOwner::wait(&pins, Duration::from_millis(50)).is_err());
        drop(first);
        assert!(PinOwner::wait(&pins, Duration::from_millis(50)).is_ok());
    }

    #[test]
    fn proc_locks_lines_name_the_holder() {
        let text = "1: FLOCK  ADVISORY  WRITE 17947 00:27:615059 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 9 00:27:615059 0 EOF\n";
        assert_eq!(locks_holder(text, "00:27:615059"), Some(17947));
        assert_eq!(locks_holder(text, "00:27:1"), None);
    }
}
