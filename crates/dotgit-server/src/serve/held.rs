//! The TCP side of a TLS connection, holding the server's handshake writes so that TLS 1.3's
//! session tickets leave with the connection's first answer instead of in a packet of their own.
//!
//! tokio-rustls writes each of the server's flights as soon as rustls produces it. A TLS 1.3
//! server's last flight, the `NewSessionTicket` messages, is produced when the client's
//! `Finished` arrives, and the client needs nothing from it to send its request (RFC 8446
//! §4.6.1: a server MAY send tickets at any time after the client's `Finished`). Sent alone, they
//! cost every new connection a write of its own, through the kernel's whole TCP path: a
//! connection answering one request made 4 writes among its ~15.5 system calls, 3 now
//! (docs/performance-history.md, session 21).
//!
//! So, while [`Held::handshaking`], writes are kept and go out when the handshake next reads,
//! which is when it waits for the peer: the server's flight still leaves before the server waits
//! for the answer to it. What the handshake wrote last stays held after
//! [`Held::handshake_done`] and goes out in the same `writev` as the connection's next write, or
//! at its next flush or shutdown. A TLS 1.2 handshake ends with the server's `Finished`, which the
//! client waits for, so the caller flushes it at once; so does a failed handshake, whose last
//! write is the alert telling the client why.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO stream whose writes can be held (see the module documentation).
#[derive(Debug)]
pub struct Held<IO> {
    io: IO,
    held: Vec<u8>,
    handshaking: bool,
}

impl<IO> Held<IO> {
    /// Wraps `io`, holding writes until the handshake reads or ends.
    pub fn handshaking(io: IO) -> Self {
        Held {
            io,
            held: Vec::new(),
            handshaking: true,
        }
    }

    /// Ends the handshake: what is still held leaves with the next write, flush or shutdown.
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
    }
}

impl<IO: AsyncWrite + Unpin> Held<IO> {
    /// Writes out everything held.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        if !self.handshaking {
            // nothing is held again on this connection: give the buffer back
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Held<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handshaking {
            // about to wait for the peer: it must have what we wrote first
            ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Held<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.handshaking {
            this.held.reserve(len);
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return Poll::Ready(Ok(len));
        }
        while !this.held.is_empty() && len > 0 {
            // the held bytes first, then as much of `bufs` as the same writev takes
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&this.held));
            all.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > this.held.len() {
                let of_bufs = n - this.held.len();
                this.held = Vec::new();
                return Poll::Ready(Ok(of_bufs));
            }
            this.held.drain(..n);
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handshaking {
            // the handshake's flushes wait for its next read (see poll_read)
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An in-memory stream that records each write call, takes at most `max_write` bytes a write
    /// when set, and serves reads from `input`.
    #[derive(Default)]
    struct Calls {
        writes: Vec<Vec<u8>>,
        input: VecDeque<u8>,
        shut: bool,
        max_write: Option<usize>,
    }

    impl AsyncRead for Calls {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let n = buf.remaining().min(this.input.len());
            let bytes: Vec<u8> = this.input.drain(..n).collect();
            buf.put_slice(&bytes);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = b.len().min(this.max_write.unwrap_or(usize::MAX));
            this.writes.push(b[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &all)
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn calls(input: &[u8]) -> Held<Calls> {
        Held::handshaking(Calls {
            input: input.iter().copied().collect(),
            ..Calls::default()
        })
    }

    #[tokio::test]
    async fn the_handshake_writes_once_before_each_read_and_its_last_flight_leaves_with_the_answer()
    {
        let mut s = calls(b"finished");
        s.write_all(b"flight-").await.unwrap();
        s.write_all(b"part-2").await.unwrap();
        s.flush().await.unwrap();
        assert!(
            s.io.writes.is_empty(),
            "nothing leaves before the handshake reads"
        );
        let mut got = [0u8; 8];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(s.io.writes, vec![b"flight-part-2".to_vec()]);
        s.write_all(b"tickets").await.unwrap();
        s.flush().await.unwrap();
        s.handshake_done();
        assert_eq!(s.io.writes.len(), 1, "the tickets wait for the answer");
        s.write_all(b"answer").await.unwrap();
        assert_eq!(s.io.writes[1], b"ticketsanswer".to_vec());
        assert_eq!(s.held.capacity(), 0, "the buffer is given back");
        s.write_all(b"more").await.unwrap();
        assert_eq!(s.io.writes[2], b"more".to_vec());
    }

    #[tokio::test]
    async fn a_flush_or_shutdown_after_the_handshake_sends_what_is_held() {
        let mut s = calls(b"");
        s.write_all(b"server finished").await.unwrap();
        s.handshake_done();
        s.flush().await.unwrap();
        assert_eq!(s.io.writes, vec![b"server finished".to_vec()]);

        let mut s = calls(b"");
        s.write_all(b"alert").await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(s.io.writes, vec![b"alert".to_vec()]);
        assert!(s.io.shut);
    }

    #[tokio::test]
    async fn short_writes_keep_the_order_and_count_only_the_callers_bytes() {
        let mut s = Held::handshaking(Calls {
            max_write: Some(3),
            ..Calls::default()
        });
        s.write_all(b"tickets").await.unwrap();
        s.handshake_done();
        let mut sent = 0;
        let answer = b"answer";
        while sent < answer.len() {
            let n = s.write(&answer[sent..]).await.unwrap();
            assert!(n <= answer.len() - sent);
            sent += n;
        }
        let wire: Vec<u8> = s.io.writes.concat();
        assert_eq!(wire, b"ticketsanswer".to_vec());
    }
}
