//! The `graylane.io/*` annotations a pod can carry, and their validation.

use super::FieldError;
use std::collections::BTreeMap;

/// Every graylane annotation starts with this.
pub const ANNOTATION_PREFIX: &str = "graylane.io/";

/// Known annotations.
pub mod annotation {
    /// Gray/version tag of the pod's traffic lane, e.g. `gray`, `v2`, `dev-alice`.
    pub const TAG: &str = "graylane.io/tag";
    /// Tenant the pod belongs to.
    pub const TENANT: &str = "graylane.io/tenant";
    /// `"false"` opts the pod out of capture.
    pub const REDIRECT: &str = "graylane.io/redirect";
    /// `open` (default) or `closed`: what a connect does when no proxy listens.
    pub const FAIL_MODE: &str = "graylane.io/fail-mode";
    /// Standalone mode: the pod's cgroup, relative to the cgroup root.
    pub const CGROUP: &str = "graylane.io/cgroup";
    /// `ingress`: headers from this pod are not trusted before coloring.
    pub const ROLE: &str = "graylane.io/role";
    pub const ALL: [&str; 6] = [TAG, TENANT, REDIRECT, FAIL_MODE, CGROUP, ROLE];
}

/// The graylane annotations of one pod, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodAnnotations {
    pub tag: Option<String>,
    pub tenant: Option<String>,
    pub redirect: bool,
    pub fail_closed: bool,
    pub cgroup: Option<String>,
    pub role: Option<String>,
    /// `graylane.io/*` keys we do not know (likely typos): reported, not fatal.
    pub unknown: Vec<String>,
}

/// Reads and validates; the error names the annotation.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<PodAnnotations, FieldError> {
    let field = |k: &str| format!("metadata.annotations[\"{k}\"]");
    let mut out = PodAnnotations { redirect: true, ..Default::default() };
    if let Some(v) = annotations.get(annotation::TAG) {
        out.tag = Some(label_value(v).map_err(|m| FieldError::new(field(annotation::TAG), m))?);
    }
    if let Some(v) = annotations.get(annotation::TENANT) {
        out.tenant = Some(label_value(v).map_err(|m| FieldError::new(field(annotation::TENANT), m))?);
    }
    if let Some(v) = annotations.get(annotation::REDIRECT) {
        out.redirect = match v.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(FieldError::new(
                    field(annotation::REDIRECT),
                    format!("{other:?} is not \"true\" or \"false\""),
                ));
            }
        };
    }
    if let Some(v) = annotations.get(annotation::FAIL_MODE) {
        out.fail_closed = match v.as_str() {
            "open" => false,
            "closed" => true,
            other => {
                return Err(FieldError::new(
                    field(annotation::FAIL_MODE),
                    format!("{other:?} is not \"open\" or \"closed\""),
                ));
            }
        };
    }
    if let Some(v) = annotations.get(annotation::CGROUP) {
        if v.split('/').any(|part| part == "..") {
            return Err(FieldError::new(field(annotation::CGROUP), format!("{v:?} leaves the cgroup root")));
        }
        let Some(path) = super::sanity::normalize_cgroup(v) else {
            return Err(FieldError::new(
                field(annotation::CGROUP),
                format!("{v:?} is the cgroup root itself: every process under it would be this pod"),
            ));
        };
        out.cgroup = Some(path);
    }
    if let Some(v) = annotations.get(annotation::ROLE) {
        out.role = Some(label_value(v).map_err(|m| FieldError::new(field(annotation::ROLE), m))?);
    }
    out.unknown = annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX) && !annotation::ALL.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(out)
}

/// A Kubernetes label value: 1–63 characters, alphanumeric at both ends, `-_.` inside.
fn label_value(v: &str) -> Result<String, String> {
    let ok_len = !v.is_empty() && v.len() <= 63;
    let bytes = v.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    let ok_chars = bytes.iter().all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'));
    let ok_ends = bytes.first().is_some_and(alnum) && bytes.last().is_some_and(alnum);
    if ok_len && ok_chars && ok_ends {
        Ok(v.to_owned())
    } else {
        Err(format!("{v:?} is not a valid label value (1-63 chars, [A-Za-z0-9] at both ends, -_. inside)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn reads_known_and_reports_unknown() {
        let a = parse(&map(&[
            ("graylane.io/tag", "gray"),
            ("graylane.io/fail-mode", "closed"),
            ("graylane.io/tags", "typo"),
            ("other.io/x", "y"),
        ]))
        .expect("valid");
        assert_eq!(a.tag.as_deref(), Some("gray"));
        assert!(a.fail_closed && a.redirect);
        assert_eq!(a.unknown, vec!["graylane.io/tags".to_string()]);
    }

    #[test]
    fn rejects_bad_values_naming_the_annotation() {
        let FieldError { field, message: msg } =
            parse(&map(&[("graylane.io/tag", "-bad")])).expect_err("invalid");
        assert_eq!(field, "metadata.annotations[\"graylane.io/tag\"]");
        assert!(msg.contains("label value"), "{msg}");
        assert!(parse(&map(&[("graylane.io/redirect", "no")])).is_err());
        assert!(parse(&map(&[("graylane.io/cgroup", "../etc")])).is_err());
    }
}
