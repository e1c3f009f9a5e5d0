//! Entry coloring (`TrafficLabelRule`), compiled: which source workloads, which requests,
//! what share of them, and the tag (and tenant) they get.

use std::collections::BTreeMap;

use http::HeaderMap;

use super::{
    matcher::{RequestView, query_param},
    text::TextMatch,
};
use crate::inventory::policy::{Condition, LabelMatch, LabelMatchType, Named, TrafficLabelRuleSpec};

struct Check {
    kind: LabelMatchType,
    key: String,
    cond: TextMatch,
}

pub struct CompiledRule {
    pub name: std::sync::Arc<str>,
    namespace: String,
    selector: BTreeMap<String, String>,
    checks: Vec<Check>,
    /// Share in parts per 10 000.
    pub share: u64,
    pub tag: Option<String>,
    pub tenant: Option<String>,
}

impl CompiledRule {
    pub fn compile(rule: &Named<TrafficLabelRuleSpec>) -> Result<Self, String> {
        let checks = rule.spec.matches.iter().map(check).collect::<Result<_, _>>()?;
        Ok(Self {
            name: format!("{}/{}", rule.namespace, rule.name).into(),
            namespace: rule.namespace.clone(),
            selector: rule.spec.selector.clone(),
            checks,
            share: (rule.spec.percentage.unwrap_or(100.0) * 100.0).round() as u64,
            tag: rule.spec.tag.clone(),
            tenant: rule.spec.tenant.clone(),
        })
    }

    /// Whether the rule colors this request from a source pod with `labels` in
    /// `namespace`. `sample` is a stable 64-bit number for the percentage (request id hash).
    pub fn applies(
        &self,
        source: Option<(&str, &BTreeMap<String, String>)>,
        req: &RequestView<'_>,
        sample: u64,
    ) -> bool {
        // A rule colors its own namespace's pods only: never another namespace's, nor a
        // caller that is no known pod (whose namespace nobody knows).
        let selected = match source {
            Some((ns, labels)) => {
                ns == self.namespace && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            }
            None => false,
        };
        let labels = source.map(|(_, l)| l);
        selected
            && self.checks.iter().all(|c| c.holds(req, labels))
            && (self.share >= 10_000 || sample % 10_000 < self.share)
    }
}

fn check(m: &LabelMatch) -> Result<Check, String> {
    let cond = match m.condition {
        Condition::Ne => TextMatch::NotEqual(m.value.clone()),
        Condition::Prefix => TextMatch::Prefix(m.value.clone()),
        Condition::Regex => TextMatch::regex(&m.value)?,
        Condition::Present => TextMatch::Present(true),
        Condition::Eq => TextMatch::Exact(m.value.clone()),
    };
    Ok(Check { kind: m.kind, key: m.key.clone(), cond })
}

impl Check {
    fn holds(&self, req: &RequestView<'_>, labels: Option<&BTreeMap<String, String>>) -> bool {
        let value: Option<&str> = match self.kind {
            LabelMatchType::Header => header(req.headers, &self.key),
            LabelMatchType::Cookie => cookie(req.headers, &self.key),
            LabelMatchType::Query => query_param(req.query, &self.key),
            LabelMatchType::Path => Some(req.path),
            LabelMatchType::SourceLabel => labels.and_then(|l| l.get(&self.key)).map(String::as_str),
        };
        self.cond.matches(value)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name` in the `Cookie` header(s).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    })
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    fn rule(yaml: &str) -> CompiledRule {
        let spec: TrafficLabelRuleSpec = serde_norway::from_str(yaml).expect("yaml");
        CompiledRule::compile(&Named { namespace: "default".into(), name: "r".into(), spec })
            .expect("compile")
    }

    #[test]
    fn colors_selected_sources_on_matching_requests() {
        let r = rule(
            "selector: {app: gateway}\ntag: gray\nmatch: [{type: cookie, key: user, value: alice}, {type: path, condition: prefix, value: /shop}]",
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; user=alice".parse().expect("hv"));
        let gw: BTreeMap<String, String> = [("app".to_string(), "gateway".to_string())].into();
        let other: BTreeMap<String, String> = [("app".to_string(), "other".to_string())].into();
        let get = Method::GET;
        let req = RequestView { method: &get, path: "/shop/cart", query: None, headers: &h };
        assert!(r.applies(Some(("default", &gw)), &req, 0));
        assert!(!r.applies(Some(("default", &other)), &req, 0));
        assert!(!r.applies(Some(("prod", &gw)), &req, 0));
        let req = RequestView { method: &get, path: "/home", query: None, headers: &h };
        assert!(!r.applies(Some(("default", &gw)), &req, 0));
    }

    #[test]
    fn percentage_uses_the_sample() {
        let r = rule("tag: canary\npercentage: 10");
        let h = HeaderMap::new();
        let get = Method::GET;
        let req = RequestView { method: &get, path: "/", query: None, headers: &h };
        let any = BTreeMap::new();
        let hits = (0..10_000u64).filter(|s| r.applies(Some(("default", &any)), &req, *s)).count();
        assert_eq!(hits, 1000);
        assert!(!r.applies(None, &req, 0), "a caller that is no known pod is in no namespace");
    }
}
