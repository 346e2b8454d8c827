//! The socket seam: the connection code is written once against [`NetStream`], with one
//! implementation on epoll (tokio) and one on io_uring (tokio-uring). Both take and give back
//! owned buffers, which is what io_uring needs and costs epoll nothing.

use std::io;

use bytes::BytesMut;

/// Read buffers start small, so an idle connection costs little (about 4 kB with its other
/// state); once reads nearly fill one, it gets this much room per read.
const READ_RESERVE: usize = 16 << 10;
const READ_LOW_WATER: usize = 512;

pub(crate) trait NetStream {
    /// Reads once, appending to `buf`. `Ok(0)` is end of stream.
    async fn read_more(&mut self, buf: BytesMut) -> (io::Result<usize>, BytesMut);
    /// Writes all of `buf`; gives it back (contents unspecified) for reuse.
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut);
    /// Ends the connection politely where the protocol has a way to (TLS's close_notify);
    /// plain TCP just closes when dropped.
    async fn close(&mut self) {}
}

pub(crate) fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_LOW_WATER {
        buf.reserve(READ_RESERVE);
    }
}

pub(crate) struct EpollStream(pub tokio::net::TcpStream);

impl NetStream for EpollStream {
    async fn read_more(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        use tokio::io::AsyncReadExt;
        reserve(&mut buf);
        let r = self.0.read_buf(&mut buf).await;
        (r, buf)
    }

    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        use tokio::io::AsyncWriteExt;
        let r = self.0.write_all(&buf).await;
        (r, buf)
    }
}

pub(crate) struct UringStream(pub tokio_uring::net::TcpStream);

impl NetStream for UringStream {
    async fn read_more(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        use tokio_uring::buf::BoundedBuf;
        reserve(&mut buf);
        let filled = buf.len();
        let (r, slice) = self.0.read(buf.slice(filled..)).await;
        (r, slice.into_inner())
    }

    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        self.0.write_all(buf).await
    }

    /// tokio-uring does not cancel a dropped operation: a write or read left in flight (a
    /// killed client, a write timeout) keeps the descriptor open until it completes, which
    /// for a peer that stopped reading is never. shutdown(2) completes them, so the socket
    /// closes when the stream is dropped.
    async fn close(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}
