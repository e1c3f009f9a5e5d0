//! The attach points graylane uses, one program each.

/// A kernel hook and the program attached there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Connect4,
    Connect6,
    SockOps,
    SockRelease,
    Getpeername4,
    Getpeername6,
}

impl Hook {
    pub const ALL: [Hook; 6] = [
        Hook::Connect4,
        Hook::Connect6,
        Hook::SockOps,
        Hook::SockRelease,
        Hook::Getpeername4,
        Hook::Getpeername6,
    ];

    /// The program's name in the eBPF object, also its pin name.
    pub const fn program(self) -> &'static str {
        match self {
            Hook::Connect4 => "connect4",
            Hook::Connect6 => "connect6",
            Hook::SockOps => "sock_ops",
            Hook::SockRelease => "sock_release",
            Hook::Getpeername4 => "getpeername4",
            Hook::Getpeername6 => "getpeername6",
        }
    }
}
