//! Data store accounts: the Secrets a `dataLanes` lane names for its store login
//! (`username` and `password`, as in a `kubernetes.io/basic-auth` Secret), read by both
//! inventory sources. Values never reach a log, `/routes` or `--check-config`: their
//! `Debug` is redacted.

use std::{collections::BTreeMap, fmt, sync::Arc};

/// One Secret's data.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretData(pub BTreeMap<String, Vec<u8>>);

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Secrets by (namespace, name).
pub type Secrets = BTreeMap<(String, String), Arc<SecretData>>;

/// A store account's login.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Vec<u8>,
    /// `namespace/name` of the Secret (for messages).
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("secret", &self.secret)
            .finish()
    }
}

/// The account a lane's Secret names; why not, when it names none usable.
pub fn credentials(secrets: &Secrets, namespace: &str, name: &str) -> Result<Arc<Credentials>, String> {
    let secret = format!("{namespace}/{name}");
    let Some(data) = secrets.get(&(namespace.to_owned(), name.to_owned())) else {
        return Err(format!(
            "Secret {secret} not found (it must be in the policy's namespace; in Kubernetes, labelled graylane.io/data-account)"
        ));
    };
    let field = |k: &str| data.0.get(k).ok_or_else(|| format!("Secret {secret} has no {k:?}"));
    let username = String::from_utf8(field("username")?.clone())
        .map_err(|_| format!("Secret {secret}: username is not UTF-8"))?;
    let username = username.trim_end_matches(['\n', '\r']).to_owned();
    if username.is_empty() || username.chars().any(char::is_control) {
        return Err(format!("Secret {secret}: username is empty or has control characters"));
    }
    let mut password = field("password")?.clone();
    while password.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        password.pop();
    }
    Ok(Arc::new(Credentials { username, password, secret }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_policys_namespace_and_never_print() {
        let mut secrets = Secrets::new();
        let data = SecretData(BTreeMap::from([
            ("username".to_owned(), b"stress\n".to_vec()),
            ("password".to_owned(), b"s3cret\n".to_vec()),
        ]));
        secrets.insert(("shop".into(), "mysql-stress".into()), Arc::new(data));
        let c = credentials(&secrets, "shop", "mysql-stress").expect("found");
        assert_eq!((c.username.as_str(), c.password.as_slice()), ("stress", &b"s3cret"[..]));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{secrets:?}").contains("s3cret"));
        let e = credentials(&secrets, "other", "mysql-stress").expect_err("namespace");
        assert!(e.contains("other/mysql-stress not found"), "{e}");
    }
}
