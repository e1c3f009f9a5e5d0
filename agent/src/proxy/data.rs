//! The data-lane relay: moves a connection's bytes through its store codec
//! ([`crate::stores::Codec`]) with bounded buffers, both ways at once.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use bytes::BytesMut;

use super::data_budget::{Exceeded, Held};
use crate::{
    stores::{Codec, DataError},
    telemetry::{ConnTelemetry, Telemetry, data::DataSeries},
};

/// Bytes buffered toward one side at most before graylane stops reading the other.
const HIGH_WATER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// Room a read buffer keeps free before each read: below it, the buffer grows first (and
/// draws on the budget), so a read never grows it behind the budget's back.
const MIN_ROOM: usize = 16 * 1024;

/// Makes room for the next read in `buf`: as much as the message at its front needs when
/// its size is known, else a chunk more — if `held` (the connection's draw on the budget,
/// with `other` bytes held elsewhere) allows it.
fn room(buf: &mut BytesMut, need: Option<usize>, other: usize, held: &mut Held) -> Result<(), Exceeded> {
    if buf.capacity() - buf.len() >= MIN_ROOM {
        return Ok(());
    }
    let want = need.unwrap_or(0).max(buf.len() + READ_CHUNK);
    held.set(want + other)?;
    buf.reserve(want - buf.len());
    Ok(())
}

/// Gives a buffer's memory back once what it held is gone (a big message passed): when it
/// is four times what it holds and what the message at its front still needs.
fn shrink(buf: &mut BytesMut, need: Option<usize>) {
    let want = need.unwrap_or(0).max(buf.len() + READ_CHUNK);
    if buf.capacity() > 2 * READ_CHUNK && want < buf.capacity() / 4 {
        let mut fresh = BytesMut::with_capacity(want);
        fresh.extend_from_slice(buf);
        *buf = fresh;
    }
}

/// Relays `client` ↔ `server` through `codec` until either side closes; returns the bytes
/// sent to the server and to the client. The read buffers draw on `held` (the pod's and
/// the node's budget) for messages still arriving; a connection the budget cannot hold is
/// refused with the protocol's error and closed.
pub async fn pump<C, S>(
    codec: &mut dyn Codec,
    client: C,
    server: S,
    telemetry: &Telemetry,
    conn: &ConnTelemetry,
    series: &DataSeries,
    held: &mut Held,
) -> Result<(u64, u64), DataError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let (mut cin, mut sin) = (BytesMut::with_capacity(READ_CHUNK), BytesMut::with_capacity(READ_CHUNK));
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut client_open, mut server_open, mut half_closed) = (true, true, false);
    let result = loop {
        if !server_open && down.is_empty() {
            break Ok(());
        }
        let (need_in, need_back) = (codec.need(true, &cin), codec.need(false, &sin));
        shrink(&mut cin, need_in);
        shrink(&mut sin, need_back);
        let over = room(&mut cin, need_in, sin.capacity() + codec.buffered(), held)
            .and_then(|()| room(&mut sin, need_back, cin.capacity() + codec.buffered(), held))
            .and_then(|()| held.set(cin.capacity() + sin.capacity() + codec.buffered()));
        if let Err(scope) = over {
            let (node, pod) = held.limits();
            let why = match scope {
                Exceeded::Pod => format!(
                    "this pod's data-lane connections hold {} MiB of unfinished messages, its limit",
                    pod >> 20
                ),
                Exceeded::Node => format!(
                    "the node's data-lane connections hold {} MiB of unfinished messages, its limit",
                    node >> 20
                ),
            };
            codec.over_budget(&mut down, &why);
            crate::telemetry::metrics()
                .data
                .budget_refusals
                .with_label_values(&[series.service(), series.lane(), scope.as_str()])
                .inc();
            break Err(DataError::Malformed { protocol: series.protocol(), detail: why });
        }
        if !client_open && up.is_empty() && !half_closed {
            // The client is done sending: so is the server's side (replies still come).
            half_closed = true;
            if let Err(e) = sw.shutdown().await {
                break Err(e.into());
            }
        }
        tokio::select! {
            r = cr.read_buf(&mut cin), if client_open && up.len() < HIGH_WATER && down.len() < HIGH_WATER => {
                match r {
                    Ok(0) => client_open = false,
                    Ok(_) => {
                        if let Err(e) = codec.client(&mut cin, &mut up, &mut down) {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            // Replies are read whatever the client has queued for the server (a server that
            // blocks writing its reply would never read more): only the client's own
            // backlog stops them.
            r = sr.read_buf(&mut sin), if server_open && down.len() < HIGH_WATER => {
                match r {
                    Ok(0) => server_open = false,
                    Ok(_) => {
                        if let Err(e) = codec.server(&mut sin, &mut down, &mut up) {
                            break Err(e);
                        }
                        // What the client sent may have waited for the server (a login).
                        if !cin.is_empty()
                            && let Err(e) = codec.client(&mut cin, &mut up, &mut down)
                        {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            r = sw.write_buf(&mut up), if !up.is_empty() => match r {
                Ok(n) => sent += n as u64,
                Err(e) => break Err(e.into()),
            },
            r = cw.write_buf(&mut down), if !down.is_empty() => match r {
                Ok(n) => received += n as u64,
                Err(e) => break Err(e.into()),
            },
            else => break Ok(()),
        }
        telemetry.data(conn, series, codec.tally());
    };
    telemetry.data(conn, series, codec.tally());
    // Whatever is still owed to the client (a refusal, the last replies) goes out.
    if !down.is_empty() {
        let _ = cw.write_all(&down).await;
        received += down.len() as u64;
    }
    let _ = cw.shutdown().await;
    let _ = sw.shutdown().await;
    result.map(|()| (sent, received))
}
