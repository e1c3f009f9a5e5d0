use std::collections::BTreeMap;

use bytes::BytesMut;

use super::{Mysql, put_packets};
use crate::stores::Codec;

fn lane() -> Mysql {
    Mysql::new("stress", Some("_shadow".into()), BTreeMap::new(), true, None, None)
}

/// The server's answer to graylane's session query (no `CLIENT_DEPRECATE_EOF`): column
/// count, two definitions, EOF, one row, EOF — sequence ids from 1.
fn session_answer(sql_mode: &str, charset: &str) -> BytesMut {
    let mut b = BytesMut::new();
    put_packets(&mut b, 1, &[2]);
    for i in 0..2 {
        put_packets(&mut b, 2 + i, b"\x03def\0\0\0\x01x\0\x0c\x21\0\0\0\0\xfd\0\0\0\0\0");
    }
    put_packets(&mut b, 4, &[0xfe, 0, 0, 2, 0]);
    let mut row = Vec::new();
    for v in [sql_mode, charset] {
        row.push(v.len() as u8);
        row.extend_from_slice(v.as_bytes());
    }
    put_packets(&mut b, 5, &row);
    put_packets(&mut b, 6, &[0xfe, 0, 0, 2, 0]);
    b
}

fn greeting() -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"10.11.6-MariaDB\0");
    p.extend_from_slice(&[1, 0, 0, 0]);
    p.extend_from_slice(b"abcdefgh");
    p.push(0);
    p.extend_from_slice(&0xf7ffu16.to_le_bytes()); // includes CLIENT_COMPRESS
    p.push(8);
    p.extend_from_slice(&[2, 0]);
    p.extend_from_slice(&0x081fu16.to_le_bytes()); // includes QUERY_ATTRIBUTES (bit 11)
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    p
}

fn response(caps: u32, db: &str) -> Vec<u8> {
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(8);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(b"app\0");
    p.push(20);
    p.extend_from_slice(&[7; 20]);
    p.extend_from_slice(db.as_bytes());
    p.push(0);
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

fn packets(seq: u8, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    put_packets(&mut b, seq, payload);
    b
}

const CAPS: u32 = (1 << 3) | (1 << 9) | (1 << 15) | (1 << 19);

/// Greeting, response with `db`, the server's OK, graylane's session query and its
/// answer: (what the server got, client got).
fn connect(m: &mut Mysql, db: &str) -> (BytesMut, BytesMut) {
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    m.client(&mut packets(1, &response(CAPS, db)), &mut up, &mut down).expect("response");
    let before_ok = down.len();
    m.server(&mut packets(2, &[0, 0, 0, 2, 0, 0, 0]), &mut down, &mut up).expect("ok");
    assert_eq!(down.len(), before_ok, "the OK waits for the session's settings");
    assert!(String::from_utf8_lossy(&up).contains("@@session.sql_mode"), "graylane asks the session");
    m.server(&mut session_answer("STRICT_TRANS_TABLES", "utf8mb4"), &mut down, &mut up).expect("answer");
    assert_eq!(&down[down.len() - 11..], &packets(2, &[0, 0, 0, 2, 0, 0, 0])[..], "then the OK");
    let query_at = up.len() - packets(0, super::SESSION_QUERY.as_bytes()).len() - 1;
    up.truncate(query_at);
    (up, down)
}

#[test]
fn the_handshake_schema_is_the_lanes_and_compression_is_not_offered() {
    let mut m = lane();
    let (up, down) = connect(&mut m, "orders");
    assert_eq!(&up[4..], &response(CAPS, "orders_shadow")[..]);
    let caps_low = u16::from_le_bytes([down[4 + 30], down[4 + 31]]);
    assert_eq!(caps_low & (1 << 5), 0, "no compression");
    assert_eq!(u16::from_le_bytes([down[4 + 35], down[4 + 36]]) & (1 << 11), 0, "no query attributes");
}

#[test]
fn queries_and_init_db_are_rewritten_and_refusals_answer_in_sequence() {
    let mut m = lane();
    connect(&mut m, "orders");
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut q = packets(0, b"\x03SELECT * FROM orders.t");
    q.extend_from_slice(&packets(0, b"\x02billing"));
    q.extend_from_slice(&packets(0, b"\x16INSERT INTO t VALUES (?)"));
    m.client(&mut q, &mut up, &mut down).expect("commands");
    let mut expect = packets(0, b"\x03SELECT * FROM orders_shadow.t");
    expect.extend_from_slice(&packets(0, b"\x02billing_shadow"));
    expect.extend_from_slice(&packets(0, b"\x16INSERT INTO t VALUES (?)"));
    assert_eq!(up, expect);
    assert!(down.is_empty());
    m.client(&mut packets(0, b"\x03GRANT ALL ON *.* TO 'x'@'%'"), &mut up, &mut down).expect("grant");
    assert_eq!(down[3], 1, "the error answers as the server would: sequence 1");
    assert_eq!(down[4], 0xFF);
    assert_eq!(u16::from_le_bytes([down[5], down[6]]), 1227);
    assert!(String::from_utf8_lossy(&down).contains("graylane: lane 'stress' may not run GRANT"));
    assert_eq!(m.tally.rejections[0].0, "GRANT");
}

#[test]
fn tls_from_a_lane_client_is_refused_not_downgraded() {
    let mut m = lane();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    down.clear();
    let mut ssl = CAPS.to_le_bytes().to_vec();
    ssl[1] |= 1 << 3; // CLIENT_SSL
    ssl.extend_from_slice(&[0; 28]);
    assert!(m.client(&mut packets(1, &ssl), &mut up, &mut down).is_err());
    assert!(up.is_empty());
    assert!(String::from_utf8_lossy(&down).contains("may not run TLS"), "{down:?}");
}

#[test]
fn malformed_packets_are_errors() {
    let mut m = lane();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    assert!(m.client(&mut packets(1, &[1, 2, 3]), &mut up, &mut down).is_err());
}

#[test]
fn commands_sent_ahead_of_the_servers_ok_wait_and_are_rewritten() {
    let mut m = lane();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    let mut ahead = packets(1, &response(CAPS, "orders"));
    ahead.extend_from_slice(&packets(0, b"\x03DROP DATABASE orders"));
    m.client(&mut ahead, &mut up, &mut down).expect("response and a command");
    assert_eq!(&up[4..], &response(CAPS, "orders_shadow")[..], "only the handshake goes before the OK");
    up.clear();
    m.server(&mut packets(2, &[0, 0, 0, 2, 0, 0, 0]), &mut down, &mut up).expect("ok");
    up.clear();
    m.server(&mut session_answer("", "utf8mb4"), &mut down, &mut up).expect("answer");
    assert_eq!(up, packets(0, b"\x03DROP DATABASE orders_shadow"));
}

#[test]
fn compression_a_system_schema_and_unreadable_charsets_are_refused() {
    for (caps, db) in [(CAPS | (1 << 5), "orders"), (CAPS | (1 << 27), "orders"), (CAPS, "mysql")] {
        let mut m = lane();
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
        assert!(m.client(&mut packets(1, &response(caps, db)), &mut up, &mut down).is_err(), "{caps:x} {db}");
        assert!(up.is_empty());
    }
    let mut m = lane();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    let mut gbk = response(CAPS, "orders");
    gbk[8] = 28;
    assert!(m.client(&mut packets(1, &gbk), &mut up, &mut down).is_err());
    let mut m = lane();
    connect(&mut m, "orders");
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.client(&mut packets(0, b"\x02mysql"), &mut up, &mut down).expect("init db");
    assert!(up.is_empty() && down[4] == 0xFF, "USE mysql is refused");
}

fn account() -> Option<std::sync::Arc<crate::inventory::accounts::Credentials>> {
    Some(std::sync::Arc::new(crate::inventory::accounts::Credentials {
        username: "stress".into(),
        password: b"lane-secret".to_vec(),
        secret: "default/mysql-stress".into(),
    }))
}

/// The lane's login is graylane's: the account's user and answer go up, an auth switch to
/// caching_sha2 and its full authentication (RSA) are answered without the client, and the
/// client sees one OK in the sequence it expects.
#[test]
fn a_lane_logs_in_as_its_account_whatever_the_client_presents() {
    use rsa::{Oaep, RsaPrivateKey, pkcs8::EncodePublicKey as _};
    let mut m = Mysql::new("stress", Some("_shadow".into()), BTreeMap::new(), true, account(), None);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    down.clear();
    m.client(&mut packets(1, &response(CAPS, "orders")), &mut up, &mut down).expect("response");
    let sent = String::from_utf8_lossy(&up[4..]).into_owned();
    assert!(sent.contains("stress\0") && !sent.contains("app\0"), "the account's user: {sent:?}");
    assert!(sent.contains("orders_shadow\0") && sent.contains("mysql_native_password\0"), "{sent:?}");
    let native = super::auth::native(b"lane-secret", b"abcdefghijklmnopqrst");
    assert!(up.windows(20).any(|w| w == &native[..]), "the account's scramble answers the greeting");
    up.clear();
    // The server switches to caching_sha2 and asks for full authentication.
    let mut switch = vec![0xFE];
    switch.extend_from_slice(b"caching_sha2_password\0ABCDEFGHIJKLMNOPQRST\0");
    m.server(&mut packets(2, &switch), &mut down, &mut up).expect("switch");
    assert_eq!(up, packets(3, &super::auth::caching_sha2(b"lane-secret", b"ABCDEFGHIJKLMNOPQRST")));
    up.clear();
    m.server(&mut packets(4, &[0x01, 0x04]), &mut down, &mut up).expect("full auth");
    assert_eq!(up, packets(5, &[0x02]), "asks for the server's public key");
    up.clear();
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("key");
    let pem = key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
    let mut more = vec![0x01];
    more.extend_from_slice(pem.as_bytes());
    m.server(&mut packets(6, &more), &mut down, &mut up).expect("key");
    assert_eq!(up[3], 7);
    let plain = key.decrypt(Oaep::new::<sha1::Sha1>(), &up[4..]).expect("decrypt");
    let scramble = b"ABCDEFGHIJKLMNOPQRST";
    let expect: Vec<u8> = b"lane-secret\0".iter().enumerate().map(|(i, b)| b ^ scramble[i % 20]).collect();
    assert_eq!(plain, expect, "(password + NUL) XOR scramble, under the server's key");
    up.clear();
    assert!(down.is_empty(), "the client saw none of it");
    m.server(&mut packets(8, &[0, 0, 0, 2, 0, 0, 0]), &mut down, &mut up).expect("ok");
    m.server(&mut session_answer("", "utf8mb4"), &mut down, &mut up).expect("session");
    assert_eq!(down, packets(2, &[0, 0, 0, 2, 0, 0, 0]), "one OK, as the client's sequence expects");
}

#[test]
fn a_login_the_store_refuses_or_graylane_may_not_serve_ends_the_connection() {
    let mut m = Mysql::new("stress", Some("_shadow".into()), BTreeMap::new(), true, account(), None);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    down.clear();
    m.client(&mut packets(1, &response(CAPS, "orders")), &mut up, &mut down).expect("response");
    let mut denied = vec![0xFF, 0x15, 0x04, b'#'];
    denied.extend_from_slice(b"28000Access denied for user 'stress'@'10.0.0.1'");
    assert!(m.server(&mut packets(2, &denied), &mut down, &mut up).is_err());
    let text = String::from_utf8_lossy(&down);
    assert!(
        text.contains("store account stress (default/mysql-stress) was refused")
            && text.contains("Access denied"),
        "{text}"
    );
    let mut m = Mysql::new(
        "stress",
        Some("_shadow".into()),
        BTreeMap::new(),
        true,
        account(),
        Some("rewrite-only: no grants read".into()),
    );
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    m.server(&mut packets(0, &greeting()), &mut down, &mut up).expect("greeting");
    up.clear();
    down.clear();
    assert!(m.client(&mut packets(1, &response(CAPS, "orders")), &mut up, &mut down).is_err());
    assert!(up.is_empty() && String::from_utf8_lossy(&down).contains("rewrite-only: no grants read"));
}

/// A SET of how SQL is read: the client's next command waits for the server's answer and
/// graylane's own question; it is then read with the rules the server reports — never with
/// rules graylane predicted.
#[test]
fn after_a_set_the_server_says_how_the_next_statement_is_read() {
    let mut m = lane();
    connect(&mut m, "orders");
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut q = packets(0, b"\x03SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
    q.extend_from_slice(&packets(0, b"\x03SELECT 'a\\', (SELECT COUNT(*) FROM orders.t) -- '"));
    m.client(&mut q, &mut up, &mut down).expect("commands");
    assert_eq!(up, packets(0, b"\x03SET sql_mode = 'NO_BACKSLASH_ESCAPES'"), "the SELECT waits");
    up.clear();
    m.server(&mut packets(1, &[0, 0, 0, 2, 0, 0, 0]), &mut down, &mut up).expect("ok");
    assert!(String::from_utf8_lossy(&up).contains("@@session.sql_mode"), "graylane asks");
    up.clear();
    m.server(&mut session_answer("NO_BACKSLASH_ESCAPES", "utf8mb4"), &mut down, &mut up).expect("answer");
    assert_eq!(up, packets(0, b"\x03SELECT 'a\\', (SELECT COUNT(*) FROM orders_shadow.t) -- '"));
    // The server refuses a SET: nothing changed, nothing asked.
    up.clear();
    m.client(&mut packets(0, b"\x03SET sql_mode = 'ANSI_QUOTES', nosuchvar = 1"), &mut up, &mut down)
        .expect("set");
    up.clear();
    let mut err = vec![0xFF, 0x9d, 0x04, b'#'];
    err.extend_from_slice(b"HY000Unknown system variable 'nosuchvar'");
    m.server(&mut packets(1, &err), &mut down, &mut up).expect("err");
    assert!(up.is_empty());
    m.client(&mut packets(0, b"\x03SELECT \"x\" FROM orders.t"), &mut up, &mut down).expect("select");
    assert_eq!(up, packets(0, b"\x03SELECT \"x\" FROM orders_shadow.t"), "still no ANSI_QUOTES");
    // A session the server now reports in a character set graylane cannot read is closed.
    up.clear();
    m.client(&mut packets(0, b"\x03SET character_set_client = @c"), &mut up, &mut down).expect("set");
    m.server(&mut packets(1, &[0, 0, 0, 2, 0, 0, 0]), &mut down, &mut up).expect("ok");
    assert!(m.server(&mut session_answer("", "gbk"), &mut down, &mut up).is_err());
}
