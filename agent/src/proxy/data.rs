//! The data-lane relay: moves a connection's bytes through its store codec
//! ([`crate::stores::Codec`]) with bounded buffers, both ways at once.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use bytes::BytesMut;

use crate::{
    stores::{Codec, DataError},
    telemetry::{ConnTelemetry, Telemetry, data::DataSeries},
};

/// Bytes buffered toward one side at most before graylane stops reading the other.
const HIGH_WATER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// Relays `client` ↔ `server` through `codec` until either side closes; returns the bytes
/// sent to the server and to the client.
pub async fn pump<C, S>(
    codec: &mut dyn Codec,
    client: C,
    server: S,
    telemetry: &Telemetry,
    conn: &ConnTelemetry,
    series: &DataSeries,
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
