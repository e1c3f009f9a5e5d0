//! Lane hints, agent to agent: when the proxy forwards a lane request to a pod on another
//! node, it tells that node's agent (a UDP datagram to its port 15011) the request's trace
//! keys, the lane's tag and the destination pod — usually before the pod calls out, so the
//! pod's untagged calls in that trace get the lane back there too. Authenticated with
//! HMAC-SHA256 under a key every agent shares (`--peer-key-file`); stale (more than 10 s
//! from the receiver's clock) or malformed hints, unknown tags and pods not on the
//! receiving node are dropped and counted. Never a tenant; never retried; loss is counted.
//!
//! Wire format (v1): `"glh1"`, send time (Unix ms, u64 BE), key count (u8, ≤ 5), keys
//! (u64 BE each), tag length (u8) and tag, pod length (u8) and `namespace/name`, then the
//! HMAC-SHA256 of everything before it (32 bytes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::ids::Keys;
use crate::vocab::valid_label;

pub const PORT: u16 = 15011;
const MAGIC: &[u8; 4] = b"glh1";
const MAC_LEN: usize = 32;
/// How far a hint's send time may be from the receiver's clock.
const FRESH: Duration = Duration::from_secs(10);
/// The largest datagram: magic, time, 5 keys, a label, a pod name, the MAC.
pub const MAX_LEN: usize = 4 + 8 + 1 + 5 * 8 + 1 + 63 + 1 + 255 + MAC_LEN;

/// A hint, as received and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    pub keys: Keys,
    pub tag: String,
    pub pod: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    #[error("malformed hint")]
    Malformed,
    #[error("hint signed with another key")]
    BadMac,
    #[error("hint too old or from the future")]
    Stale,
}

impl HintError {
    pub const fn as_str(self) -> &'static str {
        match self {
            HintError::Malformed => "malformed",
            HintError::BadMac => "bad_mac",
            HintError::Stale => "stale",
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    <Hmac<Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Encodes a hint (`None` when the tag or pod cannot be carried).
pub fn encode(key: &[u8], keys: &Keys, tag: &str, pod: &str, now: SystemTime) -> Option<Vec<u8>> {
    if !valid_label(tag) || pod.is_empty() || pod.len() > 255 || keys.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(MAX_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&unix_ms(now).to_be_bytes());
    out.push(keys.as_slice().len() as u8);
    for k in keys.as_slice() {
        out.extend_from_slice(&k.to_be_bytes());
    }
    out.push(tag.len() as u8);
    out.extend_from_slice(tag.as_bytes());
    out.push(pod.len() as u8);
    out.extend_from_slice(pod.as_bytes());
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    Some(out)
}

/// Checks and decodes a datagram.
pub fn decode(key: &[u8], data: &[u8], now: SystemTime) -> Result<Hint, HintError> {
    if data.len() < 4 + 8 + 1 + MAC_LEN + 2 || data.len() > MAX_LEN || &data[..4] != MAGIC {
        return Err(HintError::Malformed);
    }
    let (body, sig) = data.split_at(data.len() - MAC_LEN);
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(sig).map_err(|_| HintError::BadMac)?;
    let mut r = Reader { data: body, at: 4 };
    let sent = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| HintError::Malformed)?);
    let skew = unix_ms(now).abs_diff(sent);
    if skew > FRESH.as_millis() as u64 {
        return Err(HintError::Stale);
    }
    let n = usize::from(r.take(1)?[0]);
    if n == 0 || n > 5 {
        return Err(HintError::Malformed);
    }
    let mut keys = [0u64; 5];
    for k in keys.iter_mut().take(n) {
        *k = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| HintError::Malformed)?);
    }
    let tag_len = usize::from(r.take(1)?[0]);
    let tag = std::str::from_utf8(r.take(tag_len)?).map_err(|_| HintError::Malformed)?.to_owned();
    let pod_len = usize::from(r.take(1)?[0]);
    let pod = std::str::from_utf8(r.take(pod_len)?).map_err(|_| HintError::Malformed)?.to_owned();
    if r.at != body.len() || !valid_label(&tag) || pod.is_empty() {
        return Err(HintError::Malformed);
    }
    Ok(Hint { keys: Keys::from_slice(&keys[..n]), tag, pod })
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HintError> {
        let out = self.data.get(self.at..self.at + n).ok_or(HintError::Malformed)?;
        self.at += n;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_hint_round_trips_and_a_forged_one_does_not() {
        let now = SystemTime::now();
        let keys = Keys::from_slice(&[7, 9]);
        let data = encode(b"cluster key", &keys, "gray", "default/relay", now).expect("encode");
        let hint = decode(b"cluster key", &data, now).expect("decode");
        assert_eq!(hint, Hint { keys, tag: "gray".into(), pod: "default/relay".into() });
        assert_eq!(decode(b"other key", &data, now), Err(HintError::BadMac));
        let mut flipped = data.clone();
        flipped[20] ^= 1;
        assert_eq!(decode(b"cluster key", &flipped, now), Err(HintError::BadMac));
        assert_eq!(decode(b"cluster key", &data, now + Duration::from_secs(30)), Err(HintError::Stale));
        assert_eq!(decode(b"cluster key", &data[..10], now), Err(HintError::Malformed));
        assert!(encode(b"k", &keys, "-bad-", "p", now).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let now = SystemTime::now();
        for len in 0..MAX_LEN + 2 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = decode(b"k", &data, now);
        }
    }
}
