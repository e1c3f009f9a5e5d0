//! Inventory errors name the file, the document and the field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{path}: document {index}: {field}: {message}")]
    Document { path: PathBuf, index: usize, field: String, message: String },
    #[error("{path}: duplicate {kind} {name} (also in {first})")]
    Duplicate { path: PathBuf, kind: &'static str, name: String, first: PathBuf },
    #[error("{what}: {first} and {second}")]
    Conflict { what: String, first: String, second: String },
    #[error("{origin}: {what}")]
    NodeConflict { what: String, origin: String },
    #[error("{path}: {bytes} bytes: larger than the {max}-byte limit for an inventory file")]
    FileTooLarge { path: PathBuf, bytes: u64, max: u64 },
    #[error("watch {path}: {message}")]
    Watch { path: PathBuf, message: String },
}

/// A field of one object that is wrong, and why: what both inventory sources report (the
/// file source with the file and document, the Kubernetes source with the object).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
