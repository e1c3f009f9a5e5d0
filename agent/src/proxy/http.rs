//! HTTP/1.1 and HTTP/2 (gRPC included) on captured connections: per request, resolve the
//! lane, pick route, subset and endpoint, propagate the lane, forward over pooled upstream
//! connections, and map every local failure to a response with a reason.

mod deadline;
mod enforce;
mod exchange;
mod forward;
pub(crate) mod headers;
mod idle_body;
pub(crate) mod lane;
mod mirror;
mod observe;
mod rescue;
mod serve;
mod upgrade;
mod upstream;

pub use observe::Series;
pub use serve::serve;
pub use upstream::{Connector, Upstreams};

/// The body type of responses (upstream's, or made here).
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

/// The body type of requests sent upstream (the downstream body under an idle timeout, or
/// a replayable copy).
pub type ReqBody =
    http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;
