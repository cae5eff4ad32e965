//! One connection's IO: a reader task cutting the byte stream into messages
//! ([`frame_len`]), a writer task draining a queue of encoded messages. Both report to the
//! session task through one channel; decoding is the session task's (it knows the negotiated
//! [`Context`]).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::socket::SocketError;
use crate::bgp::codec::{self, frame_len, Context, DecodeError, ErrorCode};
use crate::bgp::fsm::{ConnId, Notification};

/// How long a closed connection may take to flush its last messages (a NOTIFICATION) and
/// see the peer close, before it is cut.
pub const LINGER: Duration = Duration::from_secs(2);

/// What happened on a connection, for the session task.
#[derive(Debug)]
pub enum ConnEvent {
    /// An outbound connect succeeded.
    Connected(TcpStream),
    /// An outbound connect failed.
    ConnectFailed(SocketError),
    /// A whole message (header included).
    Frame(Bytes),
    /// The stream is not BGP any more (bad header); nothing more is read.
    Malformed(DecodeError),
    /// The peer closed, or reading or writing failed.
    Closed(String),
}

/// Events of all connections, tagged with the connection.
pub type Events = mpsc::Sender<(ConnId, ConnEvent)>;

/// The running IO of one connection.
#[derive(Debug)]
pub struct Io {
    queue: mpsc::UnboundedSender<Bytes>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Io {
    /// Starts the reader and writer of `stream`.
    pub fn start(conn: ConnId, stream: TcpStream, events: Events) -> Io {
        let (rd, wr) = stream.into_split();
        let (queue, rx) = mpsc::unbounded_channel();
        Io {
            queue,
            reader: tokio::spawn(read_frames(conn, rd, events.clone())),
            writer: tokio::spawn(write_frames(conn, wr, rx, events)),
        }
    }

    /// Queues an encoded message.
    pub fn send(&self, message: Bytes) {
        // The writer only stops after reporting a failure, which closes the connection.
        let _ = self.queue.send(message);
    }

    /// Closes gracefully: the writer sends what is queued then FIN; the reader keeps draining
    /// until the peer closes too (closing with unread data would send a RST that can destroy
    /// our NOTIFICATION in flight). Both are cut after [`LINGER`]. The returned handle ends
    /// when the connection is gone.
    pub fn close(self) -> JoinHandle<()> {
        let Io {
            queue,
            reader,
            writer,
        } = self;
        drop(queue);
        tokio::spawn(async move {
            let (r, w) = (reader.abort_handle(), writer.abort_handle());
            let _ = tokio::time::timeout(LINGER, async {
                let _ = writer.await;
                let _ = reader.await;
            })
            .await;
            w.abort();
            r.abort();
        })
    }

    /// Closes at once, without flushing (the socket closes when both tasks are dropped).
    pub fn abort(self) -> JoinHandle<()> {
        self.reader.abort();
        self.writer.abort();
        let Io { reader, writer, .. } = self;
        tokio::spawn(async move {
            let _ = writer.await;
            let _ = reader.await;
        })
    }
}

async fn read_frames(conn: ConnId, mut rd: OwnedReadHalf, events: Events) {
    // We never advertise extended messages, so 4096 octets is the limit in both directions.
    let ctx = Context::default();
    let mut buf = BytesMut::with_capacity(2 * codec::MAX_MESSAGE_LEN);
    loop {
        loop {
            match frame_len(&buf, &ctx) {
                Ok(Some(len)) => {
                    let frame = buf.split_to(len).freeze();
                    if events.send((conn, ConnEvent::Frame(frame))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = events.send((conn, ConnEvent::Malformed(e))).await;
                    return drain(rd).await;
                }
            }
        }
        buf.reserve(codec::MAX_MESSAGE_LEN);
        let event = match rd.read_buf(&mut buf).await {
            Ok(0) => ConnEvent::Closed("the peer closed the connection".into()),
            Ok(_) => continue,
            Err(e) => ConnEvent::Closed(format!("reading: {e}")),
        };
        let _ = events.send((conn, event)).await;
        return;
    }
}

/// Reads and discards until the peer closes (bounded by the closer's [`LINGER`]).
async fn drain(mut rd: OwnedReadHalf) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = rd.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

async fn write_frames(
    conn: ConnId,
    mut wr: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    events: Events,
) {
    while let Some(message) = queue.recv().await {
        if let Err(e) = wr.write_all(&message).await {
            let _ = events
                .send((conn, ConnEvent::Closed(format!("writing: {e}"))))
                .await;
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// The codec's NOTIFICATION for one of the state machine's.
pub fn to_codec(n: &Notification) -> codec::Notification {
    codec::Notification::new(ErrorCode::from_wire(n.code, n.subcode), n.data.clone())
}

/// The state machine's NOTIFICATION for one of the codec's.
pub fn from_codec(n: &codec::Notification) -> Notification {
    let (code, subcode) = n.code.to_wire();
    Notification::new(code, subcode).with_data(n.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::codec::{Message, Update};
    use crate::bgp::fsm::Direction;

    #[test]
    fn notifications_convert_both_ways() {
        let n = Notification::new(6, 2).with_data(vec![1, 2]);
        let c = to_codec(&n);
        assert_eq!(c.code.to_wire(), (6, 2));
        assert_eq!(from_codec(&c), n);
    }

    #[tokio::test]
    async fn frames_are_cut_across_reads_and_a_bad_header_stops_reading() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut client, (server, _)) = (client.unwrap(), server.unwrap());
        let (tx, mut rx) = mpsc::channel(8);
        let conn = ConnId {
            direction: Direction::Outbound,
            seq: 1,
        };
        let io = Io::start(conn, server, tx);
        let ctx = Context::default();
        let keepalive = Message::Keepalive.encode(&ctx).unwrap();
        let update = Message::Update(Update::default()).encode(&ctx).unwrap();
        let mut stream = [keepalive.to_vec(), update.to_vec()].concat();
        stream.extend_from_slice(&[0u8; 19]);
        // Two writes splitting the UPDATE in the middle.
        client.write_all(&stream[..25]).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(&stream[25..]).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.unwrap().1);
        }
        assert!(matches!(&got[0], ConnEvent::Frame(f) if *f == keepalive));
        assert!(matches!(&got[1], ConnEvent::Frame(f) if *f == update));
        assert!(matches!(&got[2], ConnEvent::Malformed(e) if e.notification().is_some()));
        // Our queued message reaches the peer, then FIN.
        io.send(keepalive.clone());
        let closed = io.close();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, keepalive.to_vec());
        drop(client);
        closed.await.unwrap();
    }
}
