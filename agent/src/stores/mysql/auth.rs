//! Answering a server's authentication challenge as a lane's store account:
//! `mysql_native_password` (SHA-1 scramble) and `caching_sha2_password` (SHA-256
//! scramble; full authentication over a plain connection with the server's RSA public
//! key, OAEP padding). Other plugins are refused by name: graylane never sends a password
//! in clear and never guesses a protocol.

use rsa::{Oaep, RsaPublicKey, pkcs8::DecodePublicKey as _};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the store asks for the {0} plugin; graylane logs lane accounts in with mysql_native_password or caching_sha2_password"
    )]
    Plugin(String),
    #[error("the store's RSA public key could not be used: {0}")]
    Key(String),
}

/// The first answer to a challenge (`scramble`: the 20 bytes of the greeting or of an
/// auth switch).
pub fn answer(plugin: &str, password: &[u8], scramble: &[u8]) -> Result<Vec<u8>, AuthError> {
    match plugin {
        NATIVE => Ok(native(password, scramble)),
        CACHING_SHA2 => Ok(caching_sha2(password, scramble)),
        other => Err(AuthError::Plugin(other.chars().filter(|c| !c.is_control()).take(64).collect())),
    }
}

/// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for no password.
pub fn native(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let p1 = Sha1::digest(password);
    let p2 = Sha1::digest(p1);
    let mut h = Sha1::new();
    h.update(&scramble[..scramble.len().min(20)]);
    h.update(p2);
    let p3 = h.finalize();
    p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
}

/// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble); empty for no
/// password.
pub fn caching_sha2(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let p1 = Sha256::digest(password);
    let p2 = Sha256::digest(p1);
    let mut h = Sha256::new();
    h.update(p2);
    h.update(&scramble[..scramble.len().min(20)]);
    let p3 = h.finalize();
    p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password` full authentication without TLS: (password + NUL) XOR the
/// scramble, encrypted with the server's public key (PEM), RSA-OAEP with SHA-1.
pub fn rsa_password(pem: &[u8], password: &[u8], scramble: &[u8]) -> Result<Vec<u8>, AuthError> {
    let pem = std::str::from_utf8(pem).map_err(|e| AuthError::Key(e.to_string()))?;
    let key = RsaPublicKey::from_public_key_pem(pem.trim_end_matches('\0'))
        .map_err(|e| AuthError::Key(e.to_string()))?;
    let scramble = &scramble[..scramble.len().min(20)];
    if scramble.is_empty() {
        return Err(AuthError::Key("no scramble to mix the password with".into()));
    }
    let mut plain: Vec<u8> = password.to_vec();
    plain.push(0);
    for (i, b) in plain.iter_mut().enumerate() {
        *b ^= scramble[i % scramble.len()];
    }
    key.encrypt(&mut rsa::rand_core::OsRng, Oaep::new::<Sha1>(), &plain)
        .map_err(|e| AuthError::Key(e.to_string()))
}

/// One login's authentication exchange, from the server's greeting to its OK.
#[derive(Debug)]
pub struct Exchange {
    plugin: String,
    scramble: Vec<u8>,
    password: Vec<u8>,
    asked_key: bool,
}

/// What to do with a server packet of the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this (as the next packet of the sequence).
    Send(Vec<u8>),
    /// Wait for the next server packet.
    Wait,
    /// The server's OK: logged in.
    Done,
    /// The server's error packet (its message).
    Denied(String),
    /// graylane cannot go on (an unknown plugin, an unusable key, an unexpected packet).
    Failed(String),
}

impl Exchange {
    /// Answers the greeting's challenge: (the exchange, the plugin named in the login, its
    /// first answer). A plugin graylane does not speak is answered with native password
    /// (the server may switch).
    pub fn start(greeting_plugin: &str, scramble: &[u8], password: &[u8]) -> (Self, String, Vec<u8>) {
        let plugin = if greeting_plugin.is_empty() { NATIVE } else { greeting_plugin };
        let (plugin, first) = match answer(plugin, password, scramble) {
            Ok(a) => (plugin.to_owned(), a),
            Err(_) => (NATIVE.to_owned(), native(password, scramble)),
        };
        let x = Exchange {
            plugin: plugin.clone(),
            scramble: scramble.to_vec(),
            password: password.to_vec(),
            asked_key: false,
        };
        (x, plugin, first)
    }

    pub fn on_packet(&mut self, p: &[u8]) -> Step {
        match p.first() {
            Some(0x00) => Step::Done,
            Some(0xFF) => Step::Denied(super::packet::error_message(p).unwrap_or_default()),
            Some(0xFE) => {
                let Some((plugin, scramble)) = super::handshake::auth_switch(p) else {
                    return Step::Failed("a malformed auth switch".into());
                };
                match answer(&plugin, &self.password, &scramble) {
                    Ok(a) => {
                        self.plugin = plugin;
                        self.scramble = scramble;
                        Step::Send(a)
                    }
                    Err(e) => Step::Failed(e.to_string()),
                }
            }
            // caching_sha2_password: 3 = the cached fast path worked (an OK follows), 4 =
            // full authentication (the password, encrypted with the server's key).
            Some(0x01) if self.plugin == CACHING_SHA2 => match (p.get(1), self.asked_key) {
                (Some(3), _) => Step::Wait,
                (Some(4), false) => {
                    self.asked_key = true;
                    Step::Send(vec![0x02])
                }
                (Some(_), true) => match rsa_password(&p[1..], &self.password, &self.scramble) {
                    Ok(enc) => Step::Send(enc),
                    Err(e) => Step::Failed(e.to_string()),
                },
                _ => Step::Failed("the store sent an authentication step graylane does not know".into()),
            },
            _ => Step::Failed("the store sent an authentication step graylane does not know".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers, computed with PyMySQL's `_auth.scramble_native_password` and
    /// `scramble_caching_sha2` (the differential test in `tests/tests/data_accounts.rs`
    /// checks more against the library itself).
    #[test]
    fn scrambles_match_the_reference_clients() {
        let scramble = b"abcdefghijklmnopqrst";
        assert_eq!(hex(&native(b"secret", scramble)), "8817c50fa779daef010ee7577825b0847df9842e");
        assert_eq!(
            hex(&caching_sha2(b"secret", scramble)),
            "c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"
        );
        assert!(native(b"", scramble).is_empty());
        assert!(
            matches!(answer("client_ed25519", b"x", scramble), Err(AuthError::Plugin(p)) if p == "client_ed25519")
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
