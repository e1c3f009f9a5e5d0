//! `graylane agent --uninstall`: detach every link and remove every pin.

use super::{DatapathError, PinPaths};

/// Removes links first (detaching the programs), then programs and maps, then the folder.
/// Returns the pins removed.
pub fn uninstall(pins: &PinPaths) -> Result<Vec<std::path::PathBuf>, DatapathError> {
    let mut removed = Vec::new();
    for dir in [pins.links(), pins.progs(), pins.maps()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|source| DatapathError::Pin { path: path.clone(), source })?;
            removed.push(path);
        }
        let _ = std::fs::remove_dir(&dir);
    }
    let _ = std::fs::remove_dir(&pins.dir);
    Ok(removed)
}
