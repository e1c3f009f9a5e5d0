//! Connections to endpoints: where they leave from (the calling pod's namespace, found
//! per pod), dialing (marked sockets, or in-memory in tests), the pool that reuses them,
//! and the bodies requests carry upstream.

mod connector;
mod dial;
mod idle_body;
mod namespaces;
mod origin;
mod pool;
mod req_body;

pub use connector::Connector;
pub use dial::{BoxIo, Dial, Dialing, TcpDial, connect};
pub use idle_body::{IdleBody, IdleBodyError};
pub use namespaces::{Fallback, Namespaces};
pub use origin::{Origin, PodNetns};
pub use pool::{Pool, Pooled};
pub use req_body::ReqBody;
