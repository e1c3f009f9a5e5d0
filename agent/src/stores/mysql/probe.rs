//! What a MySQL/MariaDB account can reach, read from the server: logged in as the account
//! (the same authentication exchange as the lane's connections), graylane reads its own
//! privileges from `information_schema` (global, schema, table and column grants), the
//! schemas `SHOW DATABASES` lists for it, and its roles. Store-enforced: no global privilege
//! beyond `USAGE`, no role, and every grant and visible schema is one of the lane's
//! (`*_shadow`, or a `schemaMap` target). A grant's `_` is a wildcard: `orders_shadow`
//! also matches `ordersXshadow`, so write `orders\_shadow` (or `%\_shadow`).

use std::sync::Arc;

use bytes::BytesMut;

use super::{
    auth::{Exchange, Step},
    handshake::{CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, Greeting},
    packet::{ResultSet, Step as RowStep, packet, put_packets, query},
};
use crate::{
    inventory::accounts::Credentials,
    stores::{
        DataError,
        probe::{Probe, Verdict},
    },
};

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
/// utf8mb4_general_ci.
const UTF8MB4: u8 = 45;

const QUERIES: &[&str] = &[
    "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES",
    "SELECT TABLE_SCHEMA FROM information_schema.SCHEMA_PRIVILEGES UNION \
     SELECT TABLE_SCHEMA FROM information_schema.TABLE_PRIVILEGES UNION \
     SELECT TABLE_SCHEMA FROM information_schema.COLUMN_PRIVILEGES",
    "SHOW DATABASES",
    "SELECT ROLE_NAME FROM information_schema.APPLICABLE_ROLES",
];

enum Phase {
    Greeting,
    Auth(Exchange),
    /// Reading the answer to `QUERIES[i]`.
    Query(usize, ResultSet),
}

pub struct MysqlProbe {
    account: Arc<Credentials>,
    suffix: Option<String>,
    names: Vec<String>,
    phase: Phase,
    findings: Vec<String>,
}

impl MysqlProbe {
    pub fn new(account: Arc<Credentials>, suffix: Option<String>, names: Vec<String>) -> Self {
        Self { account, suffix, names, phase: Phase::Greeting, findings: Vec::new() }
    }

    /// Whether a schema name, or a grant's pattern (`%` and `_` wildcards, `\` escapes),
    /// can only name the lane's schemas.
    fn lane_only(&self, pattern: &str, wildcards: bool) -> bool {
        // (character, literal)
        let mut tokens: Vec<(char, bool)> = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if wildcards => tokens.push((chars.next().unwrap_or('\\'), true)),
                '%' | '_' if wildcards => tokens.push((c, false)),
                _ => tokens.push((c, true)),
            }
        }
        if tokens.iter().all(|(_, lit)| *lit) {
            let name: String = tokens.iter().map(|(c, _)| *c).collect();
            return self.names.contains(&name)
                || self.suffix.as_deref().is_some_and(|s| name.len() > s.len() && name.ends_with(s));
        }
        // A pattern: only when it ends with the whole suffix, literally.
        let Some(suffix) = self.suffix.as_deref() else { return false };
        let tail: Vec<char> = suffix.chars().collect();
        tokens.len() > tail.len()
            && tokens[tokens.len() - tail.len()..].iter().zip(&tail).all(|((c, lit), t)| *lit && c == t)
    }

    fn verdict(&mut self) -> Verdict {
        if self.findings.is_empty() {
            Verdict::StoreEnforced
        } else {
            Verdict::RewriteOnly(std::mem::take(&mut self.findings).join("; "))
        }
    }

    /// A query's rows: what they say of the account.
    fn judge(&mut self, i: usize, rows: &[Vec<Option<Vec<u8>>>]) {
        let values: Vec<String> = rows
            .iter()
            .filter_map(|r| r.first().cloned().flatten())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect();
        match i {
            0 => {
                let global: Vec<&String> = values.iter().filter(|p| p.as_str() != "USAGE").collect();
                if !global.is_empty() {
                    let list: Vec<&str> = global.iter().take(5).map(|s| s.as_str()).collect();
                    self.findings.push(format!("the account has global privileges ({})", list.join(", ")));
                }
            }
            1 => {
                let outside: Vec<String> =
                    values.iter().filter(|p| !self.lane_only(p, true)).cloned().collect();
                for p in outside {
                    self.findings
                        .push(format!("the account has grants on {p:?}, outside the lane's schemas"));
                }
            }
            2 => {
                let outside: Vec<String> = values
                    .iter()
                    .filter(|d| *d != "information_schema" && !self.lane_only(d, false))
                    .cloned()
                    .collect();
                for db in outside {
                    self.findings.push(format!("the account sees schema {db:?}"));
                }
            }
            _ => {
                if !values.is_empty() {
                    self.findings.push(format!(
                        "the account has roles graylane does not read ({})",
                        values.join(", ")
                    ));
                }
            }
        }
    }
}

impl Probe for MysqlProbe {
    fn start(&mut self, _out: &mut BytesMut) {}

    fn read(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Option<Verdict>, DataError> {
        while let Some((seq, p)) = packet(input) {
            match &mut self.phase {
                Phase::Greeting => {
                    let Some(g) = Greeting::parse(&p) else {
                        let said = super::packet::error_message(&p).unwrap_or_else(|| "no greeting".into());
                        return Ok(Some(Verdict::RewriteOnly(format!(
                            "the store did not greet graylane: {said}"
                        ))));
                    };
                    let (exchange, plugin, first) =
                        Exchange::start(&g.plugin, &g.scramble, &self.account.password);
                    let caps = (CLIENT_LONG_PASSWORD
                        | CLIENT_PROTOCOL_41
                        | CLIENT_SECURE_CONNECTION
                        | CLIENT_PLUGIN_AUTH
                        | CLIENT_TRANSACTIONS)
                        & g.caps;
                    let mut r = caps.to_le_bytes().to_vec();
                    r.extend_from_slice(&(1u32 << 24).to_le_bytes());
                    r.push(UTF8MB4);
                    r.extend_from_slice(&[0; 23]);
                    r.extend_from_slice(self.account.username.as_bytes());
                    r.push(0);
                    r.push(first.len() as u8);
                    r.extend_from_slice(&first);
                    r.extend_from_slice(plugin.as_bytes());
                    r.push(0);
                    put_packets(out, seq.wrapping_add(1), &r);
                    self.phase = Phase::Auth(exchange);
                }
                Phase::Auth(x) => match x.on_packet(&p) {
                    Step::Wait => {}
                    Step::Send(a) => put_packets(out, seq.wrapping_add(1), &a),
                    Step::Done => {
                        query(out, QUERIES[0]);
                        self.phase = Phase::Query(0, ResultSet::new(false));
                    }
                    Step::Denied(said) => {
                        return Ok(Some(Verdict::RewriteOnly(format!(
                            "the store refused the account's login: {said}"
                        ))));
                    }
                    Step::Failed(why) => return Ok(Some(Verdict::RewriteOnly(why))),
                },
                Phase::Query(i, rs) => match rs.feed(&p) {
                    RowStep::More => {}
                    RowStep::Failed(said) => {
                        return Ok(Some(Verdict::RewriteOnly(format!(
                            "the account's privileges could not be read: {said}"
                        ))));
                    }
                    RowStep::Done => {
                        let (i, rows) = (*i, std::mem::take(&mut rs.rows));
                        self.judge(i, &rows);
                        if i + 1 == QUERIES.len() {
                            return Ok(Some(self.verdict()));
                        }
                        query(out, QUERIES[i + 1]);
                        self.phase = Phase::Query(i + 1, ResultSet::new(false));
                    }
                },
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_only_the_lanes_schemas() {
        let account =
            Arc::new(Credentials { username: "s".into(), password: Vec::new(), secret: "d/s".into() });
        let p = MysqlProbe::new(account, Some("_shadow".into()), vec!["billing_stress".into()]);
        assert!(p.lane_only("%\\_shadow", true));
        assert!(p.lane_only("orders\\_shadow", true));
        assert!(!p.lane_only("orders_shadow", true), "`_` is a wildcard in a grant");
        assert!(p.lane_only("orders_shadow", false), "a schema's name is literal");
        assert!(p.lane_only("billing_stress", false));
        assert!(!p.lane_only("%", true));
        assert!(!p.lane_only("orders", true));
        assert!(!p.lane_only("\\_shadow", true), "the suffix alone is not a lane's schema");
    }
}
