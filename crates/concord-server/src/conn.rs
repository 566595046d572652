//! What one connection may hold (issue 16, item 1, finding F6): a socket whose client does
//! not take the bytes it is sent is dropped after [`crate::ConnLimits::write`] without
//! progress ([`WriteTimeout`]); a request body not received whole in time fails to read
//! ([`BodyDeadline`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] once one has waited `timeout`
/// without the peer taking a byte: the socket's send buffer stayed full, so the client
/// stopped reading. Any progress (a write or a flush that completes) starts the wait
/// again, so a slow but reading client is served to the end. Reads pass through: waiting
/// for a request is bounded elsewhere (`header_read_timeout`).
///
/// hyper then ends the connection, which drops the response body and what it holds (a
/// page and its [`crate::limits::PagePermit`]).
pub struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write or flush waits; reset when one completes.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    /// `inner`, whose writes may wait at most `timeout` without progress.
    pub fn new(inner: S, timeout: Duration) -> WriteTimeout<S> {
        WriteTimeout {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// The outcome of a write-side poll of the inner stream: progress clears the wait, a
    /// pending poll arms it (once) and fails once it has run out.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client took no byte of the response for {} s (write_timeout_secs)",
                            timeout.as_secs_f64()
                        ),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

/// The error of a [`BodyDeadline`] that ran out.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?} (body_timeout_secs)")]
pub struct BodyTimedOut(pub Duration);

/// A request body that must be received whole within a deadline, set when it is made: a
/// read (poll) after that fails with [`BodyTimedOut`], and `timed_out` is set, so the
/// layer that made it ([`crate::limit_bodies_with`]) answers 408. A handler waiting for the
/// next piece is woken by the deadline itself, so a client that trickles one byte every
/// few seconds is cut off at the deadline, not when it sends its next byte.
pub struct BodyDeadline<B> {
    inner: B,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<B> BodyDeadline<B> {
    /// `inner`, to be received whole within `limit` from now; `timed_out` is set if not.
    pub fn new(
        inner: B,
        limit: Duration,
        timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> BodyDeadline<B> {
        BodyDeadline {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out,
        }
    }
}

impl<B> http_body::Body for BodyDeadline<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timed_out
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that reads nothing: the writer fails with `TimedOut` once the pipe is full;
    /// a peer that reads lets the same amount through.
    #[tokio::test]
    async fn a_write_the_peer_does_not_take_times_out_and_one_it_takes_does_not() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(ours, Duration::from_millis(200));
        let data = vec![7u8; 64 * 1024];
        let err = w.write_all(&data).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("write_timeout_secs"), "{err}");
        // The pipe holds what was written before the wait began.
        let mut got = vec![0u8; 1024];
        theirs.read_exact(&mut got).await.unwrap();

        // A long wait here: only a stalled reader could run it out.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(ours, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), data.len());
    }
}
