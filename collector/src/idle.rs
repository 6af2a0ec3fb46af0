//! Closing connections that do nothing: a client that opens a connection and never sends a
//! request (or stops halfway through its headers) would otherwise hold it forever. [`Idle`]
//! wraps a connection's IO: without a byte read within `first` of accepting it, or without
//! any read or write within `idle` afterwards, its next read fails with `TimedOut` and the
//! server drops it. Streams that carry data or pings (gRPC keepalive, server-sent events'
//! comments) stay open.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a new connection may take to send its first bytes.
pub const FIRST_BYTES: Duration = Duration::from_secs(10);

/// IO that times out when idle.
pub struct Idle<S> {
    inner: S,
    first: Duration,
    idle: Duration,
    started: bool,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    /// Wraps `inner`: the first bytes within `first`, then activity at least every `idle`.
    pub fn new(inner: S, first: Duration, idle: Duration) -> Idle<S> {
        Idle {
            inner,
            first,
            idle,
            started: false,
            deadline: Box::pin(tokio::time::sleep(first)),
        }
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn touch(&mut self) {
        let d = if self.started { self.idle } else { self.first };
        self.deadline.as_mut().reset(Instant::now() + d);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.started = true;
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if self.started {
                        "connection idle for too long"
                    } else {
                        "no request within the first seconds of the connection"
                    },
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) && self.started {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) && self.started {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Idle<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn silent_connections_time_out_and_busy_ones_do_not() {
        let (a, b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_millis(100), Duration::from_millis(300));
        let mut buf = [0u8; 8];
        let t = Instant::now();
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(90));

        let (a, mut b2) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_millis(100), Duration::from_millis(300));
        for _ in 0..5 {
            b2.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(b);
    }
}
