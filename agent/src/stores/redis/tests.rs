use bytes::BytesMut;

use super::{Redis, resp};
use crate::stores::Codec;

fn cmd(args: &[&str]) -> Vec<u8> {
    let args: Vec<bytes::Bytes> = args.iter().map(|a| bytes::Bytes::copy_from_slice(a.as_bytes())).collect();
    let mut out = BytesMut::new();
    resp::encode_command(&args, &mut out);
    out.to_vec()
}

fn cmds(list: &[&[&str]]) -> Vec<u8> {
    list.iter().flat_map(|c| cmd(c)).collect()
}

/// Sends `client` bytes through, then `server` bytes back: (to server, to client).
fn exchange(r: &mut Redis, client: &[u8], server: &[u8]) -> (String, String) {
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    r.client(&mut BytesMut::from(client), &mut up, &mut down).expect("client side");
    r.server(&mut BytesMut::from(server), &mut down, &mut BytesMut::new()).expect("server side");
    (String::from_utf8_lossy(&up).into_owned(), String::from_utf8_lossy(&down).into_owned())
}

fn lane() -> Redis {
    Redis::new(b"shadow:", "stress", true)
}

#[test]
fn keys_get_the_prefix_by_key_spec() {
    let mut r = lane();
    let (up, _) = exchange(
        &mut r,
        &cmds(&[
            &["SET", "k", "v"],
            &["mset", "a", "1", "b", "2"],
            &["XREAD", "COUNT", "1", "STREAMS", "s", "0"],
        ]),
        b"",
    );
    assert_eq!(
        up.as_bytes(),
        cmds(&[
            &["SET", "shadow:k", "v"],
            &["mset", "shadow:a", "1", "shadow:b", "2"],
            &["XREAD", "COUNT", "1", "STREAMS", "shadow:s", "0"]
        ])
    );
    assert_eq!(r.tally.rewritten, 3);
}

#[test]
fn refusals_keep_their_place_in_a_pipeline() {
    let mut r = lane();
    let (up, down) =
        exchange(&mut r, &cmds(&[&["SET", "a", "1"], &["FLUSHALL"], &["GET", "a"]]), b"+OK\r\n$1\r\n1\r\n");
    assert_eq!(up.as_bytes(), cmds(&[&["SET", "shadow:a", "1"], &["GET", "shadow:a"]]));
    assert_eq!(
        down,
        "+OK\r\n-ERR graylane: lane 'stress' may not run FLUSHALL here: it reaches the whole server\r\n$1\r\n1\r\n"
    );
    assert_eq!(r.tally.rejections, vec![("FLUSHALL".to_owned(), "it reaches the whole server")]);
}

#[test]
fn a_refused_command_discards_its_transaction() {
    let mut r = lane();
    let (up, down) = exchange(
        &mut r,
        &cmds(&[&["MULTI"], &["SET", "a", "1"], &["CONFIG", "SET", "x", "y"], &["EXEC"]]),
        b"+OK\r\n+QUEUED\r\n+OK\r\n",
    );
    assert_eq!(up.as_bytes(), cmds(&[&["MULTI"], &["SET", "shadow:a", "1"], &["DISCARD"]]));
    assert!(down.starts_with("+OK\r\n+QUEUED\r\n-ERR graylane"), "{down}");
    assert!(down.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"), "{down}");
}

#[test]
fn exec_replies_lose_the_prefix_where_they_name_keys() {
    let mut r = lane();
    let (_, down) = exchange(
        &mut r,
        &cmds(&[&["MULTI"], &["KEYS", "*"], &["BLPOP", "q", "0"], &["EXEC"]]),
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*1\r\n$8\r\nshadow:k\r\n*2\r\n$8\r\nshadow:q\r\n$1\r\nv\r\n",
    );
    assert_eq!(down, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*1\r\n$1\r\nk\r\n*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
}

#[test]
fn keys_and_scan_patterns_stay_in_the_lane() {
    let mut r = Redis::new(b"s*:", "stress", true);
    let (up, down) = exchange(
        &mut r,
        &cmds(&[&["KEYS", "user:*"], &["SCAN", "0"]]),
        b"*1\r\n$8\r\ns*:user:\r\n*2\r\n$1\r\n0\r\n*1\r\n$4\r\ns*:x\r\n",
    );
    assert_eq!(up.as_bytes(), cmds(&[&["KEYS", "s\\*:user:*"], &["SCAN", "0", "MATCH", "s\\*:*"]]));
    assert_eq!(down, "*1\r\n$5\r\nuser:\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\nx\r\n");
}

#[test]
fn pubsub_names_are_prefixed_and_stripped_in_both_protocol_versions() {
    let mut r = lane();
    let (up, down) = exchange(
        &mut r,
        &cmds(&[&["SUBSCRIBE", "news"], &["PSUBSCRIBE", "n*"]]),
        b"*3\r\n$9\r\nsubscribe\r\n$11\r\nshadow:news\r\n:1\r\n*3\r\n$10\r\npsubscribe\r\n$9\r\nshadow:n*\r\n:2\r\n\
*3\r\n$7\r\nmessage\r\n$11\r\nshadow:news\r\n$2\r\nhi\r\n>4\r\n$8\r\npmessage\r\n$9\r\nshadow:n*\r\n$11\r\nshadow:news\r\n$2\r\nhi\r\n",
    );
    assert_eq!(up.as_bytes(), cmds(&[&["SUBSCRIBE", "shadow:news"], &["PSUBSCRIBE", "shadow:n*"]]));
    assert_eq!(
        down,
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n\
*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n>4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
}

#[test]
fn scripts_and_functions_are_refused_in_a_rejecting_lane() {
    let mut r = lane();
    let (up, down) = exchange(
        &mut r,
        &cmds(&[
            &["EVAL", "return redis.call('GET', KEYS[1]:sub(8))", "1", "x"],
            &["EVALSHA", &"0".repeat(40), "0"],
            &["FCALL", "f", "0"],
            &["SCRIPT", "LOAD", "return 1"],
        ]),
        b"",
    );
    assert!(up.is_empty(), "{up}");
    assert_eq!(down.matches("-ERR graylane: lane 'stress' may not run").count(), 4, "{down}");
}

#[test]
fn every_scan_match_is_rewritten_and_pubsub_stays_out_of_transactions() {
    let mut r = lane();
    let (up, _) = exchange(&mut r, &cmds(&[&["SCAN", "0", "MATCH", "x", "MATCH", "*"]]), b"");
    assert_eq!(up.as_bytes(), cmd(&["SCAN", "0", "MATCH", "shadow:x", "MATCH", "shadow:*"]));
    let mut r = lane();
    let (up, down) =
        exchange(&mut r, &cmds(&[&["MULTI"], &["SUBSCRIBE", "a"], &["EXEC"]]), b"+OK\r\n+OK\r\n");
    assert_eq!(up.as_bytes(), cmds(&[&["MULTI"], &["DISCARD"]]));
    assert!(down.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"), "{down}");
}

#[test]
fn passthrough_lanes_forward_what_they_cannot_isolate() {
    let mut r = Redis::new(b"gray:", "gray", false);
    let (up, _) = exchange(&mut r, &cmds(&[&["DBSIZE"]]), b"");
    assert_eq!(up.as_bytes(), cmd(&["DBSIZE"]));
    assert_eq!(r.tally.unsupported_passed, 1);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let mut r = lane();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    assert!(r.client(&mut BytesMut::from(&b"*1\r\n:5\r\n"[..]), &mut up, &mut down).is_err());
    assert!(r.server(&mut BytesMut::from(&b"?\r\n"[..]), &mut down, &mut up).is_err());
    assert!(r.client(&mut BytesMut::from(&b"*2\r\n$99999999999\r\n"[..]), &mut up, &mut down).is_err());
}

fn account() -> Option<std::sync::Arc<crate::inventory::accounts::Credentials>> {
    Some(std::sync::Arc::new(crate::inventory::accounts::Credentials {
        username: "stress".into(),
        password: b"lane-secret".to_vec(),
        secret: "default/redis-stress".into(),
    }))
}

#[test]
fn a_lane_logs_in_as_its_account_before_its_first_command() {
    let mut r = lane().login(account(), None);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut cin = BytesMut::from(
        &cmds(&[
            &["AUTH", "app", "prod-password"],
            &["HELLO", "3", "AUTH", "app", "x", "SETNAME", "w"],
            &["GET", "k"],
        ])[..],
    );
    r.client(&mut cin, &mut up, &mut down).expect("client");
    assert_eq!(up.to_vec(), cmd(&["AUTH", "stress", "lane-secret"]), "only the account's AUTH goes first");
    assert!(down.is_empty() && !cin.is_empty(), "the client's commands wait for the login");
    up.clear();
    r.server(&mut BytesMut::from(&b"+OK\r\n"[..]), &mut down, &mut BytesMut::new()).expect("login");
    assert!(down.is_empty(), "the login's answer is graylane's");
    r.client(&mut cin, &mut up, &mut down).expect("client");
    assert_eq!(
        up.to_vec(),
        cmds(&[&["HELLO", "3", "SETNAME", "w"], &["GET", "shadow:k"]]),
        "the client's AUTH goes nowhere"
    );
    assert_eq!(&down[..], b"+OK\r\n", "the client's AUTH is answered by graylane");
    let (_, down) = exchange(&mut r, &cmd(&["RESET"]), b"%1\r\n+server\r\n+redis\r\n_\r\n");
    assert!(
        down.ends_with("may not run RESET here: it would log the connection out of the lane's account\r\n"),
        "{down}"
    );
}

#[test]
fn a_refused_login_refuses_every_command() {
    let mut r = lane().login(account(), None);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut cin = BytesMut::from(&cmd(&["GET", "k"])[..]);
    r.client(&mut cin, &mut up, &mut down).expect("client");
    r.server(
        &mut BytesMut::from(&b"-WRONGPASS invalid username-password pair\r\n"[..]),
        &mut down,
        &mut BytesMut::new(),
    )
    .expect("login");
    up.clear();
    r.client(&mut cin, &mut up, &mut down).expect("client");
    assert!(up.is_empty(), "nothing runs as anyone else");
    let down = String::from_utf8_lossy(&down);
    assert!(
        down.starts_with("-ERR graylane: lane 'stress' could not log in") && down.contains("WRONGPASS"),
        "{down}"
    );
    let mut refused = lane().login(account(), Some("its store account is rewrite-only: no account".into()));
    let (up, down) = exchange(&mut refused, &cmd(&["GET", "k"]), b"");
    assert!(
        up.is_empty() && down.contains("may not connect here: its store account is rewrite-only"),
        "{down}"
    );
}
