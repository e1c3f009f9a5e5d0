//! Why a subset served a request, and when that means the request left its lane.

/// Why this subset served the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubsetReason {
    /// The request's tag named it.
    Lane,
    /// A route's weighted destinations chose it.
    Route,
    /// Untagged request, no route destination: base.
    Base,
    /// The lane's subset had no ready endpoint: fell back to base.
    FallbackBase,
    /// The lane's subset is unhealthy (its circuit breaker is open): fell back to base.
    FallbackUnhealthy,
    /// The lane's subset had no ready endpoint: the next in the fallback chain.
    FallbackChain,
}

impl SubsetReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            SubsetReason::Lane => "lane",
            SubsetReason::Route => "route",
            SubsetReason::Base => "base",
            SubsetReason::FallbackBase => "fallback_base",
            SubsetReason::FallbackUnhealthy => "fallback_unhealthy",
            SubsetReason::FallbackChain => "fallback_chain",
        }
    }

    /// Why a tagged request was served outside its lane (`lane_escapes_total{reason}`).
    pub const fn escape(self) -> Option<&'static str> {
        match self {
            SubsetReason::FallbackBase => Some("no_endpoints"),
            SubsetReason::FallbackUnhealthy => Some("unhealthy"),
            SubsetReason::FallbackChain => Some("fallback_chain"),
            SubsetReason::Lane | SubsetReason::Route | SubsetReason::Base => None,
        }
    }
}
