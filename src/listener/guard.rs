//! The minimum transfer rate of a request: once a request's headers have begun to arrive, or its body is awaited,
//! the client must keep sending at `min_rate` bytes a second (measured after a second's grace), or the connection
//! is cut — whatever the header and body deadlines would still allow. A connection idle between requests is the
//! header deadline's to close; one upgraded to a websocket, or streaming a response, is not measured.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How often the rate is looked at, and the grace before the first look counts.
const LOOK_EVERY: Duration = Duration::from_millis(500);
const GRACE: Duration = Duration::from_secs(1);

const BETWEEN: u8 = 0;
const BODY: u8 = 1;
const HANDLING: u8 = 2;
const EXEMPT: u8 = 3;

/// What a connection has read, and what it is doing, shared by its socket, its requests and its watchdog.
#[derive(Default)]
pub struct Flow {
    read: AtomicU64,
    phase: AtomicU8,
    /// Bytes read when the phase last changed.
    mark: AtomicU64,
}

impl Flow {
    /// A request's headers are in; its body is awaited (`true`) or it has none.
    pub fn request(&self, body: bool) {
        self.set(if body { BODY } else { HANDLING });
    }

    /// The answer is handed to the connection; the next request may come.
    pub fn answered(&self) {
        if self.phase.load(Ordering::Relaxed) != EXEMPT {
            self.set(BETWEEN);
        }
    }

    /// Upgraded to a websocket: what it sends is the websocket's business.
    pub fn exempt(&self) {
        self.set(EXEMPT);
    }

    fn set(&self, phase: u8) {
        self.mark.store(self.read.load(Ordering::Relaxed), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }
}

/// Returns when the connection is too slow to go on: a request (headers, or a body awaited) arriving at less than
/// `min_rate` bytes a second. Pending forever with `min_rate` 0.
pub async fn too_slow(flow: &Flow, min_rate: u64) {
    if min_rate == 0 {
        return std::future::pending().await;
    }
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when the current phase (and mark) has been measured.
    let mut since: Option<(Instant, (u8, u64))> = None;
    loop {
        look.tick().await;
        let (phase, mark, read) =
            (flow.phase.load(Ordering::Relaxed), flow.mark.load(Ordering::Relaxed), flow.read.load(Ordering::Relaxed));
        // Between requests nothing is measured until a next request's first bytes arrive.
        let measured = match phase {
            BODY => true,
            BETWEEN => read > mark,
            _ => false,
        };
        match since {
            _ if !measured => since = None,
            Some((start, key)) if key == (phase, mark) => {
                let elapsed = start.elapsed();
                let due = min_rate.saturating_mul(elapsed.as_millis() as u64) / 1000;
                if elapsed >= GRACE && read - mark < due {
                    return;
                }
            }
            _ => since = Some((Instant::now(), (phase, mark))),
        }
    }
}

/// A socket that counts what it reads into its connection's [`Flow`].
pub struct Counted<S> {
    pub inner: S,
    pub flow: Arc<Flow>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.flow.read.fetch_add(read, Ordering::Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request's body that says when it has all arrived (the handler may take its time after that).
pub struct Watched<B> {
    pub inner: B,
    pub flow: Arc<Flow>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) || self.inner.is_end_stream() {
            let flow = &self.flow;
            if flow.phase.load(Ordering::Relaxed) == BODY {
                flow.set(HANDLING);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_dribbling_request_is_cut_and_a_quiet_connection_is_not() {
        let flow = Arc::new(Flow::default());
        // Idle between requests: never cut here (the header deadline's business).
        let idle = tokio::time::timeout(Duration::from_secs(30), too_slow(&flow, 100)).await;
        assert!(idle.is_err());
        // Headers begin and then dribble: 10 bytes a second against 100.
        let dribble = {
            let flow = Arc::clone(&flow);
            tokio::spawn(async move {
                loop {
                    flow.read.fetch_add(5, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        let cut = tokio::time::timeout(Duration::from_secs(3), too_slow(&flow, 100)).await;
        assert!(cut.is_ok(), "cut within the grace and a look or two");
        dribble.abort();
        // A body awaited and arriving fast enough is not cut; one that stops is.
        flow.request(true);
        let fast = {
            let flow = Arc::clone(&flow);
            tokio::spawn(async move {
                loop {
                    flow.read.fetch_add(500, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        assert!(tokio::time::timeout(Duration::from_secs(10), too_slow(&flow, 100)).await.is_err());
        fast.abort();
        flow.request(true);
        assert!(tokio::time::timeout(Duration::from_secs(3), too_slow(&flow, 100)).await.is_ok());
        // Upgraded: never measured.
        flow.exempt();
        assert!(tokio::time::timeout(Duration::from_secs(30), too_slow(&flow, 100)).await.is_err());
    }
}
