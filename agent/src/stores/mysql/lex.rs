//! SQL text split where MariaDB's own lexer splits it (`lex_one_token` in `sql_lex.cc`,
//! 10.11): comments (`#`, `--` followed by any whitespace or control byte, `/* */`),
//! executable comments (`/*!`, `/*M!` with a version, run or skipped as the server would),
//! string literals under the connection's quoting rules (`ANSI_QUOTES`,
//! `NO_BACKSLASH_ESCAPES`), quoted identifiers, user and system variables, numbers and
//! words. Only the boundaries matter: what is code, what is a literal, what is a name. Text
//! MariaDB would refuse (an unterminated string or comment, a NUL byte before the end, a
//! byte it cannot read) is refused here too.
//!
//! Character sets: the ones whose multi-byte characters never contain a quote, backslash
//! or backtick byte (`utf8mb3`, `utf8mb4`, `latin1`, `ascii`); others are refused where
//! they are set.

/// The character sets graylane reads SQL in (`character_set_client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// `utf8mb3` / `utf8mb4`: bytes 0x80–0xFE may be part of names.
    Utf8,
    /// `latin1`: 0xA0 is whitespace; bytes above 0x7F are refused outside literals.
    Latin1,
    Ascii,
}

impl Charset {
    /// A character set by name (`utf8`, `utf8mb4`, `latin1`, …); `None` for one graylane
    /// does not read.
    pub fn named(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "utf8" | "utf8mb3" | "utf8mb4" => Some(Charset::Utf8),
            "latin1" => Some(Charset::Latin1),
            "ascii" => Some(Charset::Ascii),
            _ => None,
        }
    }

    fn is_space(self, b: u8) -> bool {
        matches!(b, 0x09..=0x0d | b' ') || (self == Charset::Latin1 && b == 0xa0)
    }

    fn is_cntrl(b: u8) -> bool {
        b < 0x20 || b == 0x7f
    }

    /// A byte of an unquoted name (`ident_map`).
    fn is_ident(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || b == b'_'
            || b == b'$'
            || (self == Charset::Utf8 && (0x80..0xff).contains(&b))
    }
}

/// How the session reads SQL now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub charset: Charset,
    pub ansi_quotes: bool,
    pub no_backslash_escapes: bool,
    /// `MYSQL_VERSION_ID` of the server (from its greeting): which versioned comments run.
    pub version: u32,
    /// MariaDB's rules for versioned comments (`/*M!`, MySQL 5.7's range skipped).
    pub mariadb: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            charset: Charset::Utf8,
            ansi_quotes: false,
            no_backslash_escapes: false,
            version: 0,
            mariadb: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Space,
    /// A comment, or a versioned comment the server skips.
    Comment,
    /// `/*!`, `/*M!` and their version: the body is SQL.
    ExecOpen,
    /// The `*/` that ends an executed comment.
    ExecClose,
    /// `'…'`, `"…"` (without `ANSI_QUOTES`), `N'…'`.
    Str,
    /// `X'…'`, `B'…'`: hex and bit literals.
    Bits,
    /// `` `…` `` or (with `ANSI_QUOTES`) `"…"`.
    Quoted,
    /// An unquoted name or keyword.
    Word,
    Number,
    /// `@name`, `@'name'`.
    UserVar,
    /// `@@name`, `@@session.name`.
    SysVar,
    /// An operator or punctuation (`.`, `;`, `:=`, `(`, …).
    Punct,
    /// A NUL byte ending the text (MariaDB reads it as the end).
    Nul,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// Not whitespace, a comment or an executable comment's marker.
    pub fn significant(&self) -> bool {
        !matches!(self.kind, Kind::Space | Kind::Comment | Kind::ExecOpen | Kind::ExecClose | Kind::Nul)
    }

    /// A name: unquoted or quoted.
    pub fn is_name(&self) -> bool {
        matches!(self.kind, Kind::Word | Kind::Quoted)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct LexError {
    pub what: &'static str,
    pub at: usize,
}

fn err<T>(what: &'static str, at: usize) -> Result<T, LexError> {
    Err(LexError { what, at })
}

/// Where MariaDB's `alloc_query` leaves the text: leading whitespace off, trailing `;` and
/// whitespace off. `(start, end)`.
pub fn trimmed(sql: &[u8], charset: Charset) -> (usize, usize) {
    let mut start = 0;
    while start < sql.len() && charset.is_space(sql[start]) {
        start += 1;
    }
    let mut end = sql.len();
    while end > start && (sql[end - 1] == b';' || charset.is_space(sql[end - 1])) {
        end -= 1;
    }
    (start, end)
}

/// A lexer over `sql[..end]`, from `at`.
pub struct Lexer<'a> {
    sql: &'a [u8],
    end: usize,
    at: usize,
    /// Inside an executed comment (its `*/` closes it).
    in_exec: bool,
    /// The last token was a name followed at once by `.` and a name byte: the next name is
    /// read as a name whatever it starts with (`t.1e5` is column `1e5`).
    ident_sep: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(sql: &'a [u8], at: usize, end: usize) -> Self {
        Self { sql, end, at, in_exec: false, ident_sep: false }
    }

    pub fn position(&self) -> usize {
        self.at
    }

    /// Inside an executable comment (at a statement's end, the next statement starts in
    /// it too).
    pub fn in_exec(&self) -> bool {
        self.in_exec
    }

    fn peek(&self, n: usize) -> Option<u8> {
        let i = self.at + n;
        (i < self.end).then(|| self.sql[i])
    }

    /// The next token under `rules`; `None` at the end.
    pub fn next(&mut self, rules: &Rules) -> Result<Option<Token>, LexError> {
        let start = self.at;
        let Some(c) = self.peek(0) else {
            if self.in_exec {
                return err("an executable comment is not closed", start);
            }
            return Ok(None);
        };
        let cs = rules.charset;
        let sep = std::mem::take(&mut self.ident_sep);
        if sep && c == b'.' {
            // `name.` followed by a name byte: the dot, then a name however it starts.
            self.at += 1;
            self.ident_sep = true;
            return Ok(Some(Token { kind: Kind::Punct, start, end: self.at }));
        }
        let kind = match c {
            _ if sep && cs.is_ident(c) => {
                self.name_bytes(cs);
                self.after_name(cs);
                Kind::Word
            }
            _ if cs.is_space(c) => {
                while self.peek(0).is_some_and(|b| cs.is_space(b)) {
                    self.at += 1;
                }
                Kind::Space
            }
            0 => {
                if self.at + 1 != self.end {
                    return err("a NUL byte before the end of the statement", start);
                }
                self.at += 1;
                Kind::Nul
            }
            b'#' => self.line_comment(),
            b'-' if self.peek(1) == Some(b'-')
                && self.peek(2).is_none_or(|b| cs.is_space(b) || Charset::is_cntrl(b)) =>
            {
                self.line_comment()
            }
            b'/' if self.peek(1) == Some(b'*') => self.block_comment(rules, start)?,
            b'*' if self.in_exec && self.peek(1) == Some(b'/') => {
                self.at += 2;
                self.in_exec = false;
                Kind::ExecClose
            }
            b'\'' => {
                self.string(b'\'', rules)?;
                Kind::Str
            }
            b'"' if rules.ansi_quotes => {
                self.quoted(b'"')?;
                self.after_name(cs);
                Kind::Quoted
            }
            b'"' => {
                self.string(b'"', rules)?;
                Kind::Str
            }
            b'`' => {
                self.quoted(b'`')?;
                self.after_name(cs);
                Kind::Quoted
            }
            b'@' => self.variable(rules, start)?,
            b'0'..=b'9' => self.number_or_name(cs, start)?,
            b'.' if self.peek(1).is_some_and(|b| b.is_ascii_digit()) => {
                self.at += 1;
                self.fraction(start)?;
                Kind::Number
            }
            b'x' | b'X' | b'b' | b'B' if self.peek(1) == Some(b'\'') => {
                let hex = c.eq_ignore_ascii_case(&b'x');
                self.at += 2;
                let digits = self.at;
                while let Some(b) = self.peek(0).filter(|b| *b != b'\'') {
                    let ok = if hex { b.is_ascii_hexdigit() } else { b == b'0' || b == b'1' };
                    if !ok {
                        return err("a hex or bit literal with a foreign digit", self.at);
                    }
                    self.at += 1;
                }
                if self.peek(0).is_none() || (hex && (self.at - digits) % 2 == 1) {
                    return err("a hex or bit literal that does not end well", start);
                }
                self.at += 1;
                Kind::Bits
            }
            b'n' | b'N' if self.peek(1) == Some(b'\'') => {
                self.at += 1;
                self.string(b'\'', rules)?;
                Kind::Str
            }
            _ if cs.is_ident(c) => {
                self.name_bytes(cs);
                self.after_name(cs);
                Kind::Word
            }
            b'\\' => return err("a backslash outside a string", start),
            _ if c.is_ascii_punctuation() => {
                self.operator(c);
                Kind::Punct
            }
            _ => return err("a byte MariaDB does not read here", start),
        };
        Ok(Some(Token { kind, start, end: self.at }))
    }

    fn name_bytes(&mut self, cs: Charset) {
        while self.peek(0).is_some_and(|b| cs.is_ident(b)) {
            self.at += 1;
        }
    }

    /// After a name: `.` followed at once by a name byte makes the next token a name.
    fn after_name(&mut self, cs: Charset) {
        self.ident_sep = self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|b| cs.is_ident(b));
    }

    /// `#` or `--`: to the end of the line (a NUL ends it too).
    fn line_comment(&mut self) -> Kind {
        while self.peek(0).is_some_and(|b| b != b'\n' && b != 0) {
            self.at += 1;
        }
        Kind::Comment
    }

    fn block_comment(&mut self, rules: &Rules, start: usize) -> Result<Kind, LexError> {
        let maria = self.peek(2) == Some(b'M') && self.peek(3) == Some(b'!');
        if self.peek(2) != Some(b'!') && !maria {
            self.at += 2;
            self.consume_comment(0, start)?;
            return Ok(Kind::Comment);
        }
        if self.in_exec {
            return err("an executable comment inside another", start);
        }
        self.at += if maria { 4 } else { 3 };
        let digits = (0..6).take_while(|i| self.peek(*i).is_some_and(|b| b.is_ascii_digit())).count();
        if digits < 5 {
            // No version: the body always runs.
            self.in_exec = true;
            return Ok(Kind::ExecOpen);
        }
        // MariaDB reads a sixth digit as part of the version; MySQL reads five.
        let len = if rules.mariadb { digits } else { 5 };
        let text = std::str::from_utf8(&self.sql[self.at..self.at + len]).unwrap_or("0");
        let version: u32 = text.parse().unwrap_or(u32::MAX);
        let runs =
            version <= rules.version && (!rules.mariadb || maria || !(50700..=99999).contains(&version));
        self.at += len;
        if runs {
            self.in_exec = true;
            Ok(Kind::ExecOpen)
        } else {
            // Skipped, with one level of nested comments allowed.
            self.consume_comment(1, start)?;
            Ok(Kind::Comment)
        }
    }

    /// To the `*/` that ends the comment (`nest` more levels of `/* */` inside).
    fn consume_comment(&mut self, nest: u32, start: usize) -> Result<(), LexError> {
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if nest > 0 && b == b'/' && self.peek(0) == Some(b'*') {
                self.at += 1;
                self.consume_comment(nest - 1, start)?;
                continue;
            }
            if b == b'*' && self.peek(0) == Some(b'/') {
                self.at += 1;
                return Ok(());
            }
        }
        err("a comment is not closed", start)
    }

    /// A string literal from its opening quote.
    fn string(&mut self, sep: u8, rules: &Rules) -> Result<(), LexError> {
        let start = self.at;
        self.at += 1;
        while let Some(b) = self.peek(0) {
            if b == b'\\' && !rules.no_backslash_escapes {
                if self.peek(1).is_none() {
                    break;
                }
                self.at += 2;
            } else if b == sep {
                if self.peek(1) == Some(sep) {
                    self.at += 2;
                } else {
                    self.at += 1;
                    return Ok(());
                }
            } else {
                self.at += 1;
            }
        }
        err("a string is not closed", start)
    }

    /// A quoted name from its opening quote (a doubled quote is one).
    fn quoted(&mut self, sep: u8) -> Result<(), LexError> {
        let start = self.at;
        self.at += 1;
        while let Some(b) = self.peek(0) {
            if b == 0 {
                return err("a NUL byte in a quoted name", self.at);
            }
            self.at += 1;
            if b == sep {
                if self.peek(0) == Some(sep) {
                    self.at += 1;
                } else {
                    return Ok(());
                }
            }
        }
        err("a quoted name is not closed", start)
    }

    fn variable(&mut self, rules: &Rules, start: usize) -> Result<Kind, LexError> {
        let cs = rules.charset;
        self.at += 1;
        match self.peek(0) {
            Some(b'\'') => self.string(b'\'', rules).map(|()| Kind::UserVar),
            Some(b'"') if rules.ansi_quotes => self.quoted(b'"').map(|()| Kind::UserVar),
            Some(b'"') => self.string(b'"', rules).map(|()| Kind::UserVar),
            Some(b'`') => self.quoted(b'`').map(|()| Kind::UserVar),
            Some(b'@') => {
                self.at += 1;
                if !self.peek(0).is_some_and(|b| cs.is_ident(b)) {
                    return err("a system variable without a name", start);
                }
                self.name_bytes(cs);
                while self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|b| cs.is_ident(b)) {
                    self.at += 1;
                    self.name_bytes(cs);
                }
                Ok(Kind::SysVar)
            }
            _ => {
                // LEX_HOSTNAME: letters, digits, '.', '_', '$'.
                while self.peek(0).is_some_and(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'_' | b'$')
                        || (cs == Charset::Utf8 && (0x80..0xff).contains(&b))
                }) {
                    self.at += 1;
                }
                Ok(Kind::UserVar)
            }
        }
    }

    /// From a digit: a number (`12`, `0x1f`, `0b01`, `1e5`, `1.5`) or a name that starts
    /// with digits (`15end`, `0x1g`).
    fn number_or_name(&mut self, cs: Charset, start: usize) -> Result<Kind, LexError> {
        let c = self.sql[self.at];
        if c == b'0' && matches!(self.peek(1), Some(b'x' | b'b')) {
            let hex = self.peek(1) == Some(b'x');
            let n = (2..)
                .take_while(|i| {
                    self.peek(*i)
                        .is_some_and(|b| if hex { b.is_ascii_hexdigit() } else { b == b'0' || b == b'1' })
                })
                .count();
            if n > 0 && !self.peek(2 + n).is_some_and(|b| cs.is_ident(b)) {
                self.at += 2 + n;
                return Ok(Kind::Number);
            }
        }
        while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        match self.peek(0) {
            Some(b'.') => {
                self.at += 1;
                self.fraction(start)?;
                Ok(Kind::Number)
            }
            Some(b'e' | b'E') if self.exponent_follows() => {
                self.exponent();
                Ok(Kind::Number)
            }
            Some(b) if cs.is_ident(b) => {
                self.name_bytes(cs);
                self.after_name(cs);
                Ok(Kind::Word)
            }
            _ => Ok(Kind::Number),
        }
    }

    fn exponent_follows(&self) -> bool {
        match self.peek(1) {
            Some(b'+' | b'-') => self.peek(2).is_some_and(|b| b.is_ascii_digit()),
            Some(b) => b.is_ascii_digit(),
            None => false,
        }
    }

    fn exponent(&mut self) {
        self.at += 1;
        if matches!(self.peek(0), Some(b'+' | b'-')) {
            self.at += 1;
        }
        while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// The digits after a decimal point, and an exponent (which must be whole).
    fn fraction(&mut self, start: usize) -> Result<(), LexError> {
        while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            if !self.exponent_follows() {
                return err("a number with a broken exponent", start);
            }
            self.exponent();
        }
        Ok(())
    }

    fn operator(&mut self, c: u8) {
        let two = [c, self.peek(1).unwrap_or(0)];
        let len = match &two {
            b"<=" if self.peek(2) == Some(b'>') => 3,
            b"<=" | b"<>" | b"!=" | b">=" | b"<<" | b">>" | b"&&" | b"||" | b":=" | b".." => 2,
            _ => 1,
        };
        self.at += len;
    }
}

#[cfg(test)]
mod tests;
