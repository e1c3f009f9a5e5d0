//! Inventory errors name the file, the document and the field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: document {index}: {field}: {message}")]
    Document { path: PathBuf, index: usize, field: String, message: String },
    #[error("{path}: duplicate {kind} {name} (also in {first})")]
    Duplicate { path: PathBuf, kind: &'static str, name: String, first: PathBuf },
    #[error("watch {path}: {message}")]
    Watch { path: PathBuf, message: String },
}
