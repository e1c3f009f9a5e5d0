//! How a rule written in another language was taken: the services it applies to, accepted
//! or why not (Gateway API condition reasons), and every field graylane does not honour.

use serde::Serialize;

/// How an object was taken: `/routes`, the CLI and the log show these.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `namespace/name` of each service the object applies to.
    pub services: Vec<String>,
    pub accepted: bool,
    /// A condition reason, Gateway API style: `Accepted`, `NoMatchingParent`,
    /// `BackendNotFound`, `Overridden`, `Invalid`.
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Fields present in the object that graylane does not honour.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
}

impl Report {
    /// An accepted object's report; `unknown`: fields found that no language defines.
    pub fn new(kind: &str, namespace: &str, name: &str, unknown: &[String]) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            services: Vec::new(),
            accepted: true,
            reason: "Accepted".into(),
            message: String::new(),
            unsupported: unknown.iter().map(|f| format!("{f} (unknown field)")).collect(),
        }
    }

    pub fn reject(&mut self, reason: &str, message: impl Into<String>) {
        self.accepted = false;
        self.reason = reason.into();
        self.message = message.into();
    }

    pub fn unsupported(&mut self, field: impl Into<String>) {
        self.unsupported.push(field.into());
    }
}
