//! HTTP/1.1 and HTTP/2 (gRPC included) on captured connections: each request is planned,
//! executed and recorded once (`request.rs`); the pieces it uses live beside it.

mod admit;
mod deadline;
mod exchange;
pub(crate) mod headers;
mod mirror;
mod outgoing;
mod record;
mod request;
mod rewrite;
mod serve;
mod upgrade;

pub use serve::serve;
