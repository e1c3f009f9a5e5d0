//! The connection phase: the server's greeting (what it is, its challenge), and the
//! client's handshake response — read, its default schema mapped, and, for a lane with a
//! store account, rebuilt as that account's login (the client's own user and password are
//! dropped: the lane pod is identified by the kernel, not by a password).

use super::packet::{lenenc, nul_str, put_lenenc};

pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_COMPRESS: u32 = 1 << 5;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub const CLIENT_SSL: u32 = 1 << 11;
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 1 << 21;
pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
pub const CLIENT_ZSTD_COMPRESSION: u32 = 1 << 26;
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;

/// What the server's greeting says.
#[derive(Clone, Debug, Default)]
pub struct Greeting {
    /// `MYSQL_VERSION_ID` (10.11.19 → 101119).
    pub version_id: u32,
    pub mariadb: bool,
    pub caps: u32,
    /// The 20-byte challenge.
    pub scramble: Vec<u8>,
    pub plugin: String,
}

/// `5.5.5-10.11.19-MariaDB-…` → (101119, MariaDB); `8.0.36` → (80036, MySQL).
fn version_id(version: &str) -> (u32, bool) {
    let mariadb = version.contains("MariaDB");
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let nums: Vec<u32> =
        v.split(|c: char| !c.is_ascii_digit()).take(3).map(|n| n.parse().unwrap_or(0)).collect();
    // A server's own string from the network: an absurd one may not overflow.
    let part = |i: usize| nums.get(i).copied().unwrap_or(0);
    let id =
        part(0).saturating_mul(10_000).saturating_add(part(1).saturating_mul(100)).saturating_add(part(2));
    (id, mariadb)
}

impl Greeting {
    /// Reads a protocol-10 greeting; `None` for anything else (an error packet).
    pub fn parse(p: &[u8]) -> Option<Self> {
        if p.first() != Some(&10) {
            return None;
        }
        let (version, at) = nul_str(p, 1)?;
        let (version_id, mariadb) = version_id(&String::from_utf8_lossy(version));
        // connection id (4), scramble part 1 (8), filler (1), caps low (2).
        let mut scramble = p.get(at + 4..at + 12)?.to_vec();
        let low = at + 13;
        let caps_low = u16::from_le_bytes([*p.get(low)?, *p.get(low + 1)?]);
        let mut g = Greeting {
            version_id,
            mariadb,
            caps: u32::from(caps_low),
            scramble: Vec::new(),
            plugin: String::new(),
        };
        // charset (1), status (2), caps high (2), auth data length (1), reserved (10).
        let high = low + 5;
        if let (Some(a), Some(b)) = (p.get(high), p.get(high + 1)) {
            g.caps |= u32::from(u16::from_le_bytes([*a, *b])) << 16;
        }
        let auth_len = p.get(high + 2).copied().map_or(0, usize::from);
        let part2 = high + 13;
        if g.caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = auth_len.saturating_sub(8).max(13);
            if let Some(rest) = p.get(part2..part2 + n) {
                scramble.extend_from_slice(rest.strip_suffix(&[0]).unwrap_or(rest));
            }
            if g.caps & CLIENT_PLUGIN_AUTH != 0
                && let Some((name, _)) =
                    nul_str(p, part2 + n).or_else(|| Some((p.get(part2 + n..)?, p.len())))
            {
                g.plugin = String::from_utf8_lossy(name).into_owned();
            }
        }
        scramble.truncate(20);
        g.scramble = scramble;
        Some(g)
    }

    /// The greeting passed to a lane client: compression and query attributes not
    /// offered (both would hide the SQL).
    pub fn for_lane_client(p: &[u8]) -> Vec<u8> {
        let mut p = p.to_vec();
        let Some((_, at)) = nul_str(&p, 1) else { return p };
        let low = at + 13;
        if p.len() >= low + 2 {
            let caps = u16::from_le_bytes([p[low], p[low + 1]]) & !(CLIENT_COMPRESS as u16);
            p[low..low + 2].copy_from_slice(&caps.to_le_bytes());
        }
        let high = low + 5;
        if p.len() >= high + 2 {
            let caps = u16::from_le_bytes([p[high], p[high + 1]]) & !((CLIENT_QUERY_ATTRIBUTES >> 16) as u16);
            p[high..high + 2].copy_from_slice(&caps.to_le_bytes());
        }
        p
    }
}

/// A client's handshake response, read.
#[derive(Debug)]
pub struct Response<'a> {
    pub caps: u32,
    /// Max packet size, character set, filler (MariaDB's extended capabilities).
    pub fixed: &'a [u8],
    pub charset: u8,
    /// The default schema, if the client names one.
    pub db: Option<&'a [u8]>,
    /// The connection attributes, as sent (with their length).
    pub attrs: Option<&'a [u8]>,
    /// Where the schema starts and ends (to map it in place).
    db_span: Option<(usize, usize)>,
}

impl<'a> Response<'a> {
    pub fn parse(p: &'a [u8]) -> Result<Self, &'static str> {
        if p.len() < 32 {
            return Err("short handshake response");
        }
        let caps = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let (_, mut at) = nul_str(p, 32).ok_or("user not ended")?;
        // As the server reads it: length-prefixed auth data only with secure connection
        // (older logins end theirs with NUL, a form no client of the last twenty years
        // sends: refused).
        if caps & CLIENT_SECURE_CONNECTION == 0 {
            return Err("a login without CLIENT_SECURE_CONNECTION");
        }
        if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            let (n, used) = lenenc(p.get(at..).unwrap_or_default()).ok_or("auth length")?;
            at = usize::try_from(n)
                .ok()
                .and_then(|n| at.checked_add(used)?.checked_add(n))
                .ok_or("auth length")?;
        } else {
            let n = *p.get(at).ok_or("auth length")?;
            at += 1 + usize::from(n);
        }
        if at > p.len() {
            return Err("handshake response truncated");
        }
        let (mut db, mut db_span) = (None, None);
        if caps & CLIENT_CONNECT_WITH_DB != 0 && at < p.len() {
            let (name, next) = nul_str(p, at).ok_or("schema not ended")?;
            db = Some(name);
            db_span = Some((at, at + name.len()));
            at = next;
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 && at < p.len() {
            at = nul_str(p, at).map_or(p.len(), |(_, next)| next);
        }
        let attrs = (caps & CLIENT_CONNECT_ATTRS != 0 && at < p.len()).then(|| &p[at..]);
        Ok(Response { caps, fixed: &p[4..32], charset: p[8], db, attrs, db_span })
    }

    /// The response as sent, with its default schema replaced by `db`.
    pub fn with_db(&self, p: &[u8], db: &[u8]) -> Vec<u8> {
        let Some((s, e)) = self.db_span else { return p.to_vec() };
        let mut out = p[..s].to_vec();
        out.extend_from_slice(db);
        out.extend_from_slice(&p[e..]);
        out
    }

    /// The login as the lane's account: the client's capabilities (with plugin
    /// authentication), its fixed fields and attributes, the account's user and `auth`
    /// for `plugin`, the (mapped) schema.
    pub fn as_account(
        &self,
        server_caps: u32,
        user: &str,
        auth: &[u8],
        plugin: &str,
        db: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut caps = self.caps | (server_caps & (CLIENT_PLUGIN_AUTH | CLIENT_SECURE_CONNECTION));
        if db.is_none() {
            caps &= !CLIENT_CONNECT_WITH_DB;
        }
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(self.fixed);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            put_lenenc(&mut p, auth.len());
        } else {
            p.push(auth.len() as u8);
        }
        p.extend_from_slice(auth);
        if let Some(db) = db {
            p.extend_from_slice(db);
            p.push(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            p.extend_from_slice(plugin.as_bytes());
            p.push(0);
        }
        if caps & CLIENT_CONNECT_ATTRS != 0 {
            match self.attrs {
                Some(a) => p.extend_from_slice(a),
                None => p.push(0),
            }
        }
        p
    }
}

/// An auth switch request (`0xFE plugin NUL data`): the plugin and its challenge.
pub fn auth_switch(p: &[u8]) -> Option<(String, Vec<u8>)> {
    if p.first() != Some(&0xFE) {
        return None;
    }
    let (name, at) = nul_str(p, 1)?;
    let data = &p[at..];
    Some((String::from_utf8_lossy(name).into_owned(), data.strip_suffix(&[0]).unwrap_or(data).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_mysql_version_id() {
        assert_eq!(version_id("5.5.5-10.11.19-MariaDB-0+deb12u1"), (101119, true));
        assert_eq!(version_id("10.11.6-MariaDB"), (101106, true));
        assert_eq!(version_id("8.0.36"), (80036, false));
        // Found by fuzzing: a version past u32 once multiplied.
        assert_eq!(version_id("1061101.6-MariaDB"), (u32::MAX, true));
    }
}
