//! Virtual keys: `sk-mg-<id>-<secret>`, stored as HMAC-SHA256 under a server secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every key starts with.
pub const PREFIX: &str = "sk-mg-";
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// Random characters from the OS generator.
pub fn random_token(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        // Rejection sampling keeps the alphabet uniform (248 = 4 x 62).
        for &b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    Ok(out)
}

/// A new key: its public id and the whole key (shown once).
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let id = random_token(ID_LEN)?;
    let secret = random_token(SECRET_LEN)?;
    let key = format!("{PREFIX}{id}-{secret}");
    Ok((id, key))
}

/// The public id inside a well-formed key.
pub fn parse_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('-')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some(id)
}

/// The hex HMAC-SHA256 of `key` under `secret`.
pub fn hash(secret: &[u8], key: &str) -> String {
    KeyHasher::new(secret).hash(key)
}

/// [`hash`] with the secret's HMAC key schedule computed once: each hash
/// then costs two SHA-256 compressions instead of four (keys are checked on
/// every request).
#[derive(Clone)]
pub struct KeyHasher(Hmac<Sha256>);

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher")
    }
}

impl KeyHasher {
    /// A hasher for `secret`.
    pub fn new(secret: &[u8]) -> KeyHasher {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
        KeyHasher(mac)
    }

    /// The hex HMAC-SHA256 of `key`.
    pub fn hash(&self, key: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.0.clone();
        mac.update(key.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(out.len() * 2);
        for b in out {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

/// What listings show of a key: `sk-mg-<id>-…`.
pub fn display_prefix(id: &str) -> String {
    format!("{PREFIX}{id}-…")
}

/// Compares without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_hash() {
        let (id, key) = generate().unwrap();
        assert_eq!(parse_id(&key), Some(id.as_str()));
        assert_eq!(key.len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        let h = hash(b"server-secret", &key);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash(b"server-secret", &key));
        assert_ne!(h, hash(b"other-secret", &key));
        assert_eq!(KeyHasher::new(b"server-secret").hash(&key), h);
        // RFC 4231 test case 2.
        assert_eq!(
            hash(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(!h.contains(&key));
        let (_, other) = generate().unwrap();
        assert_ne!(key, other);
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for bad in [
            "",
            "sk-mg-",
            "sk-mg-short-secret",
            "' OR 1=1 --",
            "sk-mg-aaaaaaaaaaaa-'; DROP TABLE api_keys; --aaaaaaaaaaaaaaaaaaaaa",
            "sk-proj-abc",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
