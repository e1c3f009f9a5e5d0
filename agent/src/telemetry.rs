//! What graylane tells about the traffic it carries.

pub mod flows;
