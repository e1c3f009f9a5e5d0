//! Regular expressions users write in routes and coloring rules: whole-string matches (as
//! Istio and Envoy users expect), bounded in source length and compiled size, so a policy
//! cannot make matching slow or the agent large.

use regex::{Regex, RegexBuilder};

/// Characters of one pattern at most.
pub const MAX_PATTERN: usize = 1024;
/// Bytes a compiled pattern (and its lazy DFA) may take.
const MAX_COMPILED: usize = 256 * 1024;

/// `re` anchored at both ends, or why it is refused.
pub fn anchored(re: &str) -> Result<Regex, String> {
    if re.len() > MAX_PATTERN {
        return Err(format!("{} characters: longer than the {MAX_PATTERN}-character limit", re.len()));
    }
    RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(MAX_COMPILED)
        .dfa_size_limit(MAX_COMPILED)
        .nest_limit(64)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_strings_only_and_big_patterns_are_refused() {
        let r = anchored("/v[0-9]+").expect("valid");
        assert!(r.is_match("/v12") && !r.is_match("/v12/x"));
        assert!(anchored(&"a".repeat(MAX_PATTERN + 1)).is_err());
        assert!(anchored("(a{1000}){1000}").expect_err("compiled size").contains("size limit"));
        assert!(anchored("(").is_err());
    }
}
