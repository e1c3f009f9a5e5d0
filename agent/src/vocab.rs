//! The words every layer shares: a request's lane and where it came from, why a subset
//! served it, and address newtypes (an original destination is never confused with a
//! peer). Depends on nothing else in the crate.

mod addr;
mod lane;
mod subset;

pub use addr::{ClientAddr, OrigDstAddr, UpstreamAddr};
pub use lane::{Lane, TagSource, valid_label};
pub use subset::SubsetReason;
