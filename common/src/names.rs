//! Interned names (pods, tags, tenants) kept in a pinned map, so ids survive agent restarts.

/// Longest name stored; longer names are rejected by the agent before they get here.
pub const NAME_BYTES: usize = 316;

/// What kind of name an id stands for.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameKind {
    Pod = 1,
    Tag = 2,
    Tenant = 3,
    /// A subset name in a kernel lane route.
    Subset = 4,
}

/// Key of the `NAMES` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameKey {
    /// A [`NameKind`] as `u32`.
    pub kind: u32,
    pub id: u32,
}

const _: () = assert!(size_of::<NameKey>() == 8);

/// Value of the `NAMES` map: UTF-8 bytes, `len` of them used.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameValue {
    pub len: u32,
    pub bytes: [u8; NAME_BYTES],
}

const _: () = assert!(size_of::<NameValue>() == 320);

impl Default for NameValue {
    fn default() -> Self {
        Self { len: 0, bytes: [0; NAME_BYTES] }
    }
}

impl NameValue {
    /// Copies `name` in; `None` when it is longer than [`NAME_BYTES`].
    pub fn new(name: &str) -> Option<Self> {
        let src = name.as_bytes();
        if src.len() > NAME_BYTES {
            return None;
        }
        let mut value = Self::default();
        value.bytes[..src.len()].copy_from_slice(src);
        value.len = src.len() as u32;
        Some(value)
    }

    /// The stored name, or `None` if the bytes are not valid UTF-8 or `len` is out of range.
    pub fn as_str(&self) -> Option<&str> {
        let len = self.len as usize;
        if len > NAME_BYTES {
            return None;
        }
        core::str::from_utf8(&self.bytes[..len]).ok()
    }
}
