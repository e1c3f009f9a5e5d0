//! Connections to endpoints: where they leave from (the calling pod's namespace, found
//! per pod), dialing (marked sockets, or in-memory in tests), the pool that reuses them
//! (and a downstream connection's own, driven by its task), and the bodies requests carry
//! upstream.

mod connector;
mod dial;
mod h1_conn;
mod idle_body;
mod local;
mod namespaces;
mod origin;
mod pool;
mod req_body;

pub use connector::Connector;
pub use dial::{BoxIo, Dial, Dialing, TcpDial, connect};
pub use idle_body::{IdleBody, IdleBodyError};
pub use local::LocalConn;
pub use namespaces::{Fallback, Namespaces};
pub use origin::{Origin, PodNetns};
pub use pool::{Pool, Pooled};
pub use req_body::ReqBody;
