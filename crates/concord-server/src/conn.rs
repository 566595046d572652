//! What one connection may hold (issue 16, item 1, finding F6): a socket whose client does
//! not take the bytes it is sent is dropped after [`crate::ConnLimits::write`] without
//! progress, or when it takes them slower than [`crate::ConnLimits::min_send_rate`]
//! ([`WriteTimeout`]); a request body not received whole in time fails to read
//! ([`BodyDeadline`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// A stream that can be told to discard what it still holds for the peer when it closes.
/// A connection cut for a slow client must not leave its response's tail (megabytes, in
/// the socket's send buffer) to be delivered by the kernel at the client's pace after the
/// process let go of it.
pub trait DiscardOnClose {
    /// Closing the stream resets the connection (TCP RST) instead of sending what is
    /// buffered (`SO_LINGER` 0).
    fn discard_on_close(&self);
}

impl DiscardOnClose for tokio::net::TcpStream {
    fn discard_on_close(&self) {
        // Best effort: the connection is dropped either way.
        let _ = self.set_zero_linger();
    }
}

impl DiscardOnClose for tokio::io::DuplexStream {
    fn discard_on_close(&self) {}
}

/// The slowest a client may take the bytes it is sent ([`WriteTimeout::with_min_rate`]):
/// over each `window` of time spent waiting for it, at least `bytes_per_sec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinSendRate {
    /// Bytes per second of waiting, at least; 0 turns the rule off.
    pub bytes_per_sec: u64,
    /// The time spent waiting over which the rate is judged (the first window is the
    /// grace a client has); at least 1 ms.
    pub window: Duration,
}

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] when the peer does not take
/// the bytes it is sent, by either of two rules:
///
/// - **No progress**: one write has waited `timeout` without the peer taking a byte (the
///   socket's send buffer stayed full: the client stopped reading). Any progress starts
///   that wait again.
/// - **Too slow** (with [`WriteTimeout::with_min_rate`]): over each window of time spent
///   waiting for the peer, it took fewer than the minimum rate's bytes (a client reading a
///   large page a few bytes a second, which the first rule never cuts). Only time spent
///   waiting counts, with the bytes taken at the end of a wait: a connection idle between
///   requests, a live stream between events, or a client that keeps up is never judged.
///
/// Reads pass through: waiting for a request is bounded elsewhere (`header_read_timeout`).
/// hyper then ends the connection, which drops the response body and what it holds (a
/// page and its [`crate::limits::PagePermit`]).
pub struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    min_rate: Option<MinSendRate>,
    /// Armed while a write or flush waits: the earlier of the no-progress deadline and
    /// the end of the rate window.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Since when the pending write has waited without progress.
    stalled_since: Option<Instant>,
    /// Since when waiting time not yet added to `window_waited` runs.
    waiting_since: Option<Instant>,
    /// Time spent waiting in the current window.
    window_waited: Duration,
    /// Bytes the peer took at the end of those waits.
    window_bytes: u64,
}

impl<S: DiscardOnClose> WriteTimeout<S> {
    /// `inner`, whose writes may wait at most `timeout` without progress.
    pub fn new(inner: S, timeout: Duration) -> WriteTimeout<S> {
        WriteTimeout {
            inner,
            timeout,
            min_rate: None,
            sleep: None,
            stalled_since: None,
            waiting_since: None,
            window_waited: Duration::ZERO,
            window_bytes: 0,
        }
    }

    /// The same, whose peer must also take `rate` ([`MinSendRate`]); a zero rate is no
    /// rule.
    pub fn with_min_rate(mut self, rate: MinSendRate) -> WriteTimeout<S> {
        self.min_rate = (rate.bytes_per_sec > 0).then_some(MinSendRate {
            window: rate.window.max(Duration::from_millis(1)),
            ..rate
        });
        self
    }

    /// Ends the current rate window once it is full: the error when the peer took too few
    /// bytes in it, else a new window begins.
    fn judge_window(&mut self) -> io::Result<()> {
        let Some(rate) = self.min_rate else {
            return Ok(());
        };
        if self.window_waited < rate.window {
            return Ok(());
        }
        let waited = self.window_waited.as_secs_f64();
        if (self.window_bytes as f64) < rate.bytes_per_sec as f64 * waited {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took {} bytes of the response in {waited:.1} s of waiting, \
                     below min_send_rate_bytes_per_sec {} (over min_send_rate_window_secs)",
                    self.window_bytes, rate.bytes_per_sec
                ),
            ));
        }
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        Ok(())
    }

    /// The outcome of a write-side poll of the inner stream, `taken` the bytes it wrote:
    /// progress ends the wait (its time and bytes go to the rate window); a pending poll
    /// starts one (once) and fails when a rule is broken.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        taken: impl FnOnce(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        let watched = self.rules(cx, polled, taken);
        if let Poll::Ready(Err(e)) = &watched
            && e.kind() == io::ErrorKind::TimedOut
        {
            // A client cut by a rule gets a reset, not the rest of the buffered response.
            self.inner.discard_on_close();
        }
        watched
    }

    /// [`WriteTimeout::watch`]'s rules.
    fn rules<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        taken: impl FnOnce(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled_since = None;
                self.sleep = None;
                if let Some(since) = self.waiting_since.take() {
                    self.window_waited += since.elapsed();
                    if let Ok(v) = &r {
                        self.window_bytes += taken(v) as u64;
                    }
                    self.judge_window()?;
                }
                Poll::Ready(r)
            }
            Poll::Pending => loop {
                let now = Instant::now();
                let stalled = *self.stalled_since.get_or_insert(now);
                let waiting = *self.waiting_since.get_or_insert(now);
                let no_progress = stalled + self.timeout;
                let deadline = match self.min_rate {
                    Some(rate) => {
                        no_progress.min(waiting + rate.window.saturating_sub(self.window_waited))
                    }
                    None => no_progress,
                };
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let now = Instant::now();
                if now >= no_progress {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client took no byte of the response for {} s (write_timeout_secs)",
                            self.timeout.as_secs_f64()
                        ),
                    )));
                }
                // The rate window is full while this write still waits: judge it.
                self.window_waited += now - waiting;
                self.waiting_since = Some(now);
                self.judge_window()?;
            },
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

impl<S: AsyncWrite + DiscardOnClose + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled, |n| *n)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled, |()| 0)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled, |()| 0)
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

    /// A peer that takes a byte every 200 ms always makes progress (the no-progress rule
    /// never fires) but is cut by the minimum rate once a window of waiting is over; a peer
    /// that reads at once is not, however many windows its writes wait in; a rate of 0 is
    /// no rule.
    #[tokio::test]
    async fn a_peer_taking_a_byte_at_a_time_is_cut_by_the_minimum_rate() {
        let rate = MinSendRate {
            bytes_per_sec: 1024,
            window: Duration::from_secs(1),
        };
        let slow_reader = |mut theirs: tokio::io::DuplexStream| {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                while theirs.read_exact(&mut byte).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        let data = vec![7u8; 64 * 1024];

        let (ours, theirs) = tokio::io::duplex(16);
        let reader = slow_reader(theirs);
        let mut w = WriteTimeout::new(ours, Duration::from_secs(30)).with_min_rate(rate);
        let err = w.write_all(&data).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(
            err.to_string().contains("min_send_rate_bytes_per_sec 1024"),
            "{err}"
        );
        drop(w);
        reader.await.unwrap();

        // Without the rule the same reader is served past a window (16 bytes: 3.2 s).
        let (ours, theirs) = tokio::io::duplex(16);
        let reader = slow_reader(theirs);
        let mut w = WriteTimeout::new(ours, Duration::from_secs(30)).with_min_rate(MinSendRate {
            bytes_per_sec: 0,
            ..rate
        });
        w.write_all(&data[..32]).await.unwrap();
        drop(w);
        reader.abort();

        // A reader that keeps up: its writes wait (the pipe is small) but it takes the
        // bytes at once.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(ours, Duration::from_secs(30)).with_min_rate(rate);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        for _ in 0..64 {
            w.write_all(&data).await.unwrap();
        }
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 64 * data.len());
    }
}
