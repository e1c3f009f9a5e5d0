//! One way to compare a string, for route matches and coloring conditions alike: exact,
//! not equal, prefix, whole-string regex, present or absent.

use regex::Regex;

#[derive(Clone, Debug)]
pub enum TextMatch {
    Exact(String),
    NotEqual(String),
    Prefix(String),
    Regex(Regex),
    /// `true`: present with any value; `false`: absent.
    Present(bool),
}

impl TextMatch {
    /// A regex, anchored and size-bounded (see `inventory::pattern`).
    pub fn regex(pattern: &str) -> Result<Self, String> {
        crate::inventory::pattern::anchored(pattern).map(TextMatch::Regex)
    }

    /// Whether `value` (`None`: absent) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (TextMatch::Present(want), v) => v.is_some() == *want,
            (TextMatch::NotEqual(x), v) => v != Some(x.as_str()),
            (_, None) => false,
            (TextMatch::Exact(x), Some(v)) => v == x,
            (TextMatch::Prefix(x), Some(v)) => v.starts_with(x.as_str()),
            (TextMatch::Regex(r), Some(v)) => r.is_match(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_absence() {
        assert!(TextMatch::Exact("a".into()).matches(Some("a")));
        assert!(!TextMatch::Exact("a".into()).matches(None));
        assert!(
            TextMatch::NotEqual("a".into()).matches(None)
                && !TextMatch::NotEqual("a".into()).matches(Some("a"))
        );
        assert!(TextMatch::Prefix("/api".into()).matches(Some("/api/x")));
        assert!(TextMatch::regex("al.*").expect("regex").matches(Some("alice")));
        assert!(!TextMatch::regex("al").expect("regex").matches(Some("alice")), "whole string");
        assert!(TextMatch::Present(false).matches(None) && !TextMatch::Present(true).matches(None));
    }
}
