//! `graylane agent --uninstall`: detach every link and remove every pin — refused while an
//! agent owns the pins (its open links would keep the programs attached).

use super::{DatapathError, PinOwner, PinPaths};

/// Removes links first (detaching the programs), then programs and maps, then the folder.
/// Returns the pins removed.
pub fn uninstall(pins: &PinPaths) -> Result<Vec<std::path::PathBuf>, DatapathError> {
    if !pins.dir.exists() {
        return Ok(Vec::new());
    }
    let _owner = PinOwner::acquire(
        pins,
        "stop it first (its open links would keep the programs attached and capturing)",
    )?;
    let mut removed = Vec::new();
    for dir in [pins.links(), pins.progs(), pins.maps()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|source| DatapathError::Pin { path: path.clone(), cause: source })?;
            removed.push(path);
        }
        let _ = std::fs::remove_dir(&dir);
    }
    let _ = std::fs::remove_dir(&pins.dir);
    Ok(removed)
}
