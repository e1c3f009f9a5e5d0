//! Original-destination lookups for the proxy: exact, by the accepted connection's tuple.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use aya::maps::{Array, HashMap, MapData, MapError};
use graylane_common::{Addr16, FlowKey, OrigDst, map_names};

use super::DatapathError;

/// What the kernel recorded for one captured connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrigDstRecord {
    /// Where the pod wanted to go.
    pub orig_dst: SocketAddr,
    pub pod_id: u32,
    pub tag_id: u32,
    pub tenant_id: u32,
    /// The pod cgroup the kernel matched: the caller's attested identity.
    pub cgroup_id: u64,
}

/// Read-only handle on `RECORDS`; shared by every proxy task.
pub struct Records {
    map: HashMap<MapData, FlowKey, OrigDst>,
    pending: HashMap<MapData, u64, OrigDst>,
    count: Array<MapData, u64>,
}

impl Records {
    pub(crate) fn new(
        map: HashMap<MapData, FlowKey, OrigDst>,
        pending: HashMap<MapData, u64, OrigDst>,
        count: Array<MapData, u64>,
    ) -> Self {
        Self { map, pending, count }
    }

    /// Sets the kernel's live-record count to the table's size (after a table or count was
    /// created anew).
    pub(crate) fn seed_count(&mut self) -> Result<(), DatapathError> {
        let n = self.len() as u64;
        self.count.set(0, n, 0).map_err(DatapathError::map(map_names::RECORD_COUNT))
    }

    /// The kernel's live-record count (what the connect hooks compare to capacity).
    pub fn count(&self) -> u64 {
        self.count.get(&0, 0).unwrap_or(0)
    }

    /// The record of the connection `peer` → `local` as accepted by the proxy, if any.
    pub fn lookup(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Option<OrigDstRecord>, DatapathError> {
        let key = FlowKey {
            src: addr16(peer.ip()),
            dst: addr16(local.ip()),
            src_port: peer.port(),
            dst_port: local.port(),
            _pad: 0,
        };
        match self.map.get(&key, 0) {
            Ok(v) => Ok(Some(OrigDstRecord {
                orig_dst: socket_addr(&v.addr, v.port),
                pod_id: v.pod_id,
                tag_id: v.tag_id,
                tenant_id: v.tenant_id,
                cgroup_id: v.cgroup_id,
            })),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DatapathError::Map { map: map_names::RECORDS, cause: e }),
        }
    }

    /// How many connections are recorded now.
    pub fn len(&self) -> usize {
        self.map.keys().filter(Result::is_ok).count()
    }

    /// Whether no connection is recorded now.
    pub fn is_empty(&self) -> bool {
        self.map.keys().next().is_none()
    }

    /// How many connects wait for `sock_ops` now (normally 0 between connects).
    pub fn pending_len(&self) -> usize {
        self.pending.keys().filter(Result::is_ok).count()
    }
}

/// The 16-byte form of an address (IPv4 as mapped IPv6), as the kernel keys it.
pub fn addr16(ip: IpAddr) -> Addr16 {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    Addr16::from_octets(v6.octets())
}

/// The socket address a record holds, IPv4 unmapped.
pub fn socket_addr(addr: &Addr16, port: u16) -> SocketAddr {
    let v6 = Ipv6Addr::from(addr.octets());
    match v6.to_ipv4_mapped() {
        Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        None => SocketAddr::new(IpAddr::V6(v6), port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_addresses_key_as_mapped_v6() {
        let a: IpAddr = "10.96.0.10".parse().expect("ip");
        let k = addr16(a);
        assert!(k.is_v4_mapped());
        assert_eq!(socket_addr(&k, 80), "10.96.0.10:80".parse().expect("sa"));
        let b: IpAddr = "fd00::1".parse().expect("ip");
        assert_eq!(socket_addr(&addr16(b), 80), "[fd00::1]:80".parse().expect("sa"));
    }
}
