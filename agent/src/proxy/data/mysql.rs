//! MySQL / MariaDB for a lane (in progress).

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::{Codec, DataError, Tally};

pub struct Mysql {
    tally: Tally,
}

impl Mysql {
    pub fn new(_lane: &str, _suffix: Option<String>, _map: BTreeMap<String, String>, _reject: bool) -> Self {
        Self { tally: Tally::default() }
    }
}

impl Codec for Mysql {
    fn client(&mut self, input: &mut BytesMut, up: &mut BytesMut, _down: &mut BytesMut) -> Result<(), DataError> {
        up.extend_from_slice(&input.split());
        Ok(())
    }
    fn server(&mut self, input: &mut BytesMut, down: &mut BytesMut, _up: &mut BytesMut) -> Result<(), DataError> {
        down.extend_from_slice(&input.split());
        Ok(())
    }
    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }
}
