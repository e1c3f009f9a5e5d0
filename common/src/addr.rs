//! A 16-byte address as both IP families share it in map keys.

/// An IPv6 address, or an IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`), in network
/// byte order. One key type serves both families, so a v4 connection made from a v6
/// socket (`::ffff:…`) and from a v4 socket look the same to the proxy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr16 {
    /// Four 32-bit words in network byte order, as the kernel's `__be32 ip6[4]`.
    pub words: [u32; 4],
}

const _: () = assert!(size_of::<Addr16>() == 16);

impl Addr16 {
    /// The third word of an IPv4-mapped address, `0000:ffff`, in network byte order.
    pub const V4_MAPPED_MARK: u32 = u32::from_be(0x0000_ffff);

    /// Maps an IPv4 address given as the kernel stores it (`__be32`).
    pub const fn from_v4_be(ip4_be: u32) -> Self {
        Self { words: [0, 0, Self::V4_MAPPED_MARK, ip4_be] }
    }

    /// An IPv6 address given as the kernel stores it (`__be32[4]`).
    pub const fn from_v6_be(words: [u32; 4]) -> Self {
        Self { words }
    }

    /// Whether this is an IPv4 address mapped into IPv6.
    pub const fn is_v4_mapped(&self) -> bool {
        self.words[0] == 0 && self.words[1] == 0 && self.words[2] == Self::V4_MAPPED_MARK
    }

    /// The IPv4 address (`__be32`) if this is a mapped one.
    pub const fn v4_be(&self) -> Option<u32> {
        if self.is_v4_mapped() { Some(self.words[3]) } else { None }
    }

    /// The address as 16 bytes in network order, as `std::net::Ipv6Addr` takes them.
    pub fn octets(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            let b = self.words[i].to_ne_bytes();
            out[i * 4] = b[0];
            out[i * 4 + 1] = b[1];
            out[i * 4 + 2] = b[2];
            out[i * 4 + 3] = b[3];
            i += 1;
        }
        out
    }

    /// The inverse of [`Addr16::octets`].
    pub fn from_octets(octets: [u8; 16]) -> Self {
        let mut words = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            words[i] =
                u32::from_ne_bytes([octets[i * 4], octets[i * 4 + 1], octets[i * 4 + 2], octets[i * 4 + 3]]);
            i += 1;
        }
        Self { words }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapping_round_trips_through_octets() {
        let ip4_be = u32::from_ne_bytes([10, 96, 0, 10]);
        let a = Addr16::from_v4_be(ip4_be);
        assert!(a.is_v4_mapped());
        assert_eq!(a.octets(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 96, 0, 10]);
        assert_eq!(Addr16::from_octets(a.octets()), a);
        assert_eq!(a.v4_be(), Some(ip4_be));
    }
}
