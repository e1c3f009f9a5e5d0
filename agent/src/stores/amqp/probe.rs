//! What a RabbitMQ user can reach: logged in as the account, graylane asks to open the
//! broker's default virtual host `/` (production's, unless the store says otherwise). A
//! `NOT_ALLOWED` close is store-enforced: the account is kept to the virtual hosts it was
//! given (the lane's). AMQP cannot list a user's virtual hosts: give the account
//! permissions on the lane's virtual host only.

use std::sync::Arc;

use bytes::BytesMut;

use super::{CONNECTION, FRAME_METHOD, Frame, frame, put_frame, read_short};
use crate::{
    inventory::accounts::Credentials,
    stores::{
        DataError,
        probe::{Probe, Verdict},
    },
};

const START: u16 = 10;
const TUNE: u16 = 30;
const OPEN_OK: u16 = 41;
const CLOSE: u16 = 50;

pub struct AmqpProbe {
    account: Arc<Credentials>,
}

impl AmqpProbe {
    pub fn new(account: Arc<Credentials>) -> Self {
        Self { account }
    }
}

fn method(out: &mut BytesMut, id: u16, args: &[u8]) {
    let mut p = CONNECTION.to_be_bytes().to_vec();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(args);
    put_frame(out, FRAME_METHOD, 0, &p);
}

impl Probe for AmqpProbe {
    fn start(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(b"AMQP\x00\x00\x09\x01");
    }

    fn read(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Option<Verdict>, DataError> {
        while let Some(Frame { kind, payload, len, .. }) = frame(input)? {
            let payload = payload.to_vec();
            let _ = input.split_to(len);
            if kind != FRAME_METHOD
                || payload.len() < 4
                || u16::from_be_bytes([payload[0], payload[1]]) != CONNECTION
            {
                continue;
            }
            match u16::from_be_bytes([payload[2], payload[3]]) {
                START => {
                    // StartOk: no client properties, PLAIN as the account, en_US.
                    let mut args = vec![0, 0, 0, 0];
                    super::shortstr(&mut args, b"PLAIN");
                    let mut response = vec![0];
                    response.extend_from_slice(self.account.username.as_bytes());
                    response.push(0);
                    response.extend_from_slice(&self.account.password);
                    super::longstr(&mut args, &response);
                    super::shortstr(&mut args, b"en_US");
                    method(out, super::START_OK, &args);
                }
                TUNE => {
                    // TuneOk with the server's own values, then Open("/").
                    method(out, 31, payload.get(4..12).unwrap_or(&[0, 0, 0, 0, 0, 2, 0, 0]));
                    let mut args = Vec::new();
                    super::shortstr(&mut args, b"/");
                    super::shortstr(&mut args, b"");
                    args.push(0);
                    method(out, super::OPEN, &args);
                }
                OPEN_OK => {
                    return Ok(Some(Verdict::RewriteOnly("the account may open the virtual host /".into())));
                }
                CLOSE => {
                    let code = payload.get(4..6).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                    let text = read_short(&payload, 6)
                        .map(|(t, _)| String::from_utf8_lossy(t).into_owned())
                        .unwrap_or_default();
                    return Ok(Some(match code {
                        530 => Verdict::StoreEnforced,
                        _ => Verdict::RewriteOnly(format!(
                            "the store refused the account's login: {code} {text}"
                        )),
                    }));
                }
                _ => {}
            }
        }
        Ok(None)
    }
}
