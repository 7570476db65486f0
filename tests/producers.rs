//! Producers across connections (Twisted's `registerProducer`): a fast
//! sender relayed to a slow reader is held back at the reader's pace, and
//! the relay holds about one high-water mark, not the transfer.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::rc::Rc;

use common::{TIMEOUT, connect, connect_small_rcvbuf, pattern, spawn_reactor};
use twirl::{Addr, Config, ConnId, Context, Disconnect, Protocol, Transport};

/// Who is connected: the first to arrive sends, the second receives.
#[derive(Default)]
struct Pair {
    sender: Option<ConnId>,
    receiver: Option<ConnId>,
}

/// The sender's bytes go to the receiver; the receiver's output is the
/// sender's consumer, so the sender is not read while it is full.
struct Relay(Rc<RefCell<Pair>>);
impl Protocol for Relay {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let mut pair = self.0.borrow_mut();
        match pair.sender {
            None => {
                pair.sender = Some(t.id());
                t.write(b"s");
            }
            Some(sender) => {
                pair.receiver = Some(t.id());
                assert!(t.register_producer(t.id(), sender), "both are open");
                t.write(b"r");
            }
        }
    }
    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        let receiver = self.0.borrow().receiver;
        if let Some(r) = receiver {
            t.write_to(r, data);
        }
    }
    fn read_eof(&mut self, t: &mut dyn Transport) {
        let receiver = self.0.borrow().receiver;
        if let Some(r) = receiver.filter(|r| *r != t.id()) {
            t.close_conn(r);
        }
    }
    fn connection_lost(&mut self, _: &Disconnect, _: &mut dyn Context) {}
}

#[test]
fn a_consumer_full_of_output_stops_its_producer_being_read() {
    let r = spawn_reactor(Config::default(), |r| {
        let pair = Rc::new(RefCell::new(Pair::default()));
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Addr| Relay(pair.clone())).expect("listen").addr
    });
    // Each is told its part once the relay has it in place.
    let mut part = [0u8; 1];
    let mut sender = connect(r.value);
    sender.read_exact(&mut part).expect("the sender's part");
    assert_eq!(&part, b"s");
    let mut receiver = connect_small_rcvbuf(r.value);
    receiver.read_exact(&mut part).expect("the receiver's part");
    assert_eq!(&part, b"r");

    // 32 MiB, far more than the kernel buffers on both paths hold.
    let data = pattern(32 << 20, 5);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            sender.set_write_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
            let mut sent = 0;
            while sent < data.len() {
                match sender.write(&data[sent..(sent + 65536).min(data.len())]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            (sender, sent)
        })
    };
    let (mut sender, sent) = writer.join().expect("writer");
    assert!(sent < data.len(), "the sender was held back, not buffered: all {sent} bytes went");
    let stats = r.call(|r| r.stats());
    // The producer is paused when the consumer settles, after the
    // producer's turn of reads: one mark, plus at most one turn's reads.
    let c = Config::default();
    let bound = c.limits.high_water + c.read_budget + c.max_read_buffer;
    assert!(stats.buffered <= bound as u64, "the relay holds about one high-water mark: {stats}");

    // The receiver reads; the sender goes on to the end; every byte arrives.
    let rest = data[sent..].to_vec();
    let finisher = std::thread::spawn(move || {
        sender.set_write_timeout(Some(TIMEOUT)).unwrap();
        sender.write_all(&rest).expect("the rest, once the receiver reads");
        sender.shutdown(Shutdown::Write).expect("half-close");
        sender
    });
    let mut got = Vec::with_capacity(data.len());
    receiver.read_to_end(&mut got).expect("everything, then EOF");
    let _sender = finisher.join().expect("finisher");
    assert_eq!(got.len(), data.len());
    assert!(got == data, "relayed in order, byte for byte");
    r.stop();
}

/// Sends `len` bytes of a file to whoever connects, then closes; an error
/// is written as a line instead.
struct SendFile {
    sender: twirl::producer::FileSender,
}
impl SendFile {
    fn more(&mut self, t: &mut dyn Transport) {
        match self.sender.send_more(t) {
            Ok(twirl::producer::Sent::More) => {}
            Ok(twirl::producer::Sent::Done) => t.lose_connection(),
            Err(e) => {
                t.write(format!("\nerror: {e}\n").as_bytes());
                t.lose_connection();
            }
        }
    }
}
impl Protocol for SendFile {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.more(t);
    }
    fn data_received(&mut self, _: &[u8], _: &mut dyn Transport) {}
    fn drained(&mut self, t: &mut dyn Transport) {
        self.more(t);
    }
}

#[test]
fn a_file_sendfile_cannot_read_is_read_and_written_instead() {
    // The kernel refuses sendfile from /proc/self/status (EINVAL): the
    // transport falls back to reading and writing it.
    let r = spawn_reactor(Config::default(), |r| {
        let factory = |_: &Addr| {
            let file = std::fs::File::open("/proc/self/status").expect("/proc/self/status");
            SendFile { sender: twirl::producer::FileSender::new(file, 0, 100) }
        };
        r.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).expect("listen").addr
    });
    let mut s = connect(r.value);
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to the close");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(got.len(), 100, "{text}");
    assert!(text.starts_with("Name:\t"), "{text}");
}
