//! Why a statement was not forwarded, as the MySQL codec answers it.

/// Why a statement was not forwarded.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It could not be read (the detail says where).
    Parse(String),
    /// It cannot be kept in the lane: the statement's kind when it is the reason (`GRANT`,
    /// `SET GLOBAL`), and why.
    Unsupported(Option<String>, &'static str),
    /// It would change how the server reads what follows in a way graylane cannot follow
    /// (a character set or `sql_mode` it cannot tell): refused whatever `onUnsupported`
    /// says, or every later statement could be misread.
    Unfollowable(String, &'static str),
}

/// Refused for what the statement is (`kind`).
pub(super) fn unsupported(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unsupported(Some(kind.to_owned()), why)
}

/// Refused for something in it, whatever its kind.
pub(super) fn refused(why: &'static str) -> Refusal {
    Refusal::Unsupported(None, why)
}
