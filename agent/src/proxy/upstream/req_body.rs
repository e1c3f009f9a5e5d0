//! The body of a request sent upstream: none, a buffered copy (replayable for retries and
//! mirrors), or the caller's body streamed under an idle timeout. An enum, not a box: most
//! requests have no body and cost no allocation or timer.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::idle_body::{IdleBody, IdleBodyError};

pub enum ReqBody {
    Empty,
    Full(Option<Bytes>),
    Stream(IdleBody),
}

impl ReqBody {
    pub fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() { ReqBody::Empty } else { ReqBody::Full(Some(bytes)) }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = IdleBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream(s) => s.size_hint(),
        }
    }
}
