//! `chat`: seed 003's netcat chat (`nc -l 5000` on one side, `nc x 5000`
//! on the other), grown into a room for any number of people.
//!
//! Each line from one client goes to every other client as
//! `[IP:PORT] line`; arrivals and departures are announced as
//! `* IP:PORT joined` and `* IP:PORT left`. All members are connections of
//! one listener, and the room is the state their protocols share: it is
//! single-threaded, so a plain `Rc<RefCell<..>>` does.
//!
//! A member that stops reading must not stall the others nor grow the
//! server's memory without bound. Writes never block, so the others are not
//! stalled; and before each delivery the room looks at the member's backlog
//! (bytes written to it but not yet taken by its socket). Past
//! [`BACKLOG_CAP`] the member is disconnected, the reason logged and the
//! departure announced.
//!
//! ```text
//! $ twirl cat tcp:127.0.0.1:7107          (or nc 127.0.0.1 7107)
//! * you are 127.0.0.1:50312; 1 other here
//! hello
//! [127.0.0.1:50298] hi there
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use twirl::endpoint::ClientEndpoint;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, ConnId, Context, Disconnect, Factory};

use crate::exchange::interactive;
use crate::plugin::{ClientError, Plugin};

/// Bytes a member may have waiting before it is disconnected for not reading.
pub const BACKLOG_CAP: usize = 256 * 1024;
/// Longest line accepted.
pub const MAX_LINE: usize = 4096;

/// Everyone in the room.
#[derive(Default)]
pub struct Room {
    members: Vec<(ConnId, String)>,
}

impl Room {
    /// Sends `msg` to every member but `from`, disconnecting members whose
    /// backlog passed the cap.
    fn broadcast(&self, from: ConnId, msg: &[u8], cx: &mut dyn Context) {
        for (id, label) in &self.members {
            if *id == from {
                continue;
            }
            match cx.buffered_len_of(*id) {
                Some(backlog) if backlog + msg.len() > BACKLOG_CAP => {
                    log::warn!("chat: disconnecting {label}: not reading ({backlog} bytes waiting)");
                    cx.abort_conn(*id);
                }
                Some(_) => {
                    cx.write_to(*id, msg);
                }
                None => {}
            }
        }
    }
}

/// One member.
pub struct Chat {
    room: Rc<RefCell<Room>>,
    me: Option<(ConnId, String)>,
}

impl Chat {
    /// A member of `room`.
    pub fn new(room: Rc<RefCell<Room>>) -> Self {
        Chat { room, me: None }
    }
}

impl LineHandler for Chat {
    fn connection_made(&mut self, t: &mut Lines<'_>) {
        let label = t.peer_addr().to_string();
        let (id, others) = {
            let mut room = self.room.borrow_mut();
            let others = room.members.len();
            room.members.push((t.id(), label.clone()));
            (t.id(), others)
        };
        let s = if others == 1 { "" } else { "s" };
        t.write(format!("* you are {label}; {others} other{s} here\n").as_bytes());
        self.room.borrow().broadcast(id, format!("* {label} joined\n").as_bytes(), &mut **t);
        self.me = Some((id, label));
    }

    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        let Some((id, label)) = &self.me else { return };
        let mut msg = Vec::with_capacity(label.len() + line.len() + 4);
        msg.push(b'[');
        msg.extend_from_slice(label.as_bytes());
        msg.extend_from_slice(b"] ");
        msg.extend_from_slice(line);
        msg.push(b'\n');
        self.room.borrow().broadcast(*id, &msg, &mut **t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let Some((id, label)) = self.me.take() else { return };
        self.room.borrow_mut().members.retain(|(m, _)| *m != id);
        log::info!("chat: {label} left ({reason})");
        self.room.borrow().broadcast(id, format!("* {label} left\n").as_bytes(), cx);
    }
}

fn factory() -> Box<dyn Factory> {
    let room = Rc::new(RefCell::new(Room::default()));
    Box::new(move |_: &Addr| LineReceiver::new(Chat::new(room.clone())).max_line_length(MAX_LINE))
}

/// `twirl client chat tcp:HOST:PORT`: type lines, see everyone else's.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if !args.is_empty() {
        return Err(ClientError::usage("chat takes no arguments: type lines on stdin"));
    }
    interactive(endpoint)
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "chat",
    summary: "relays each line to everyone else connected (seed 003's netcat chat)",
    lab: "seed 003 netcat chat",
    defaults: &["tcp:7107"],
    stream: Some(factory),
    datagram: None,
    client: Some(client),
    raw: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::Harness;

    fn member(room: &Rc<RefCell<Room>>) -> Harness<LineReceiver<Chat>> {
        Harness::new(LineReceiver::new(Chat::new(room.clone())))
    }

    #[test]
    fn lines_go_to_the_others_with_the_sender_address() {
        let room = Rc::new(RefCell::new(Room::default()));
        let other = ConnId::from_raw(77);
        room.borrow_mut().members.push((other, "127.0.0.1:7".into()));
        let mut h = member(&room);
        h.cx.buffered_of.insert(other, 0);
        h.connect();
        assert_eq!(h.take_text(), "* you are 127.0.0.1:50000; 1 other here\n");
        h.feed(b"hello\r\n");
        let to_other: Vec<String> =
            h.cx.writes_to.iter().map(|(_, d)| String::from_utf8_lossy(d).into_owned()).collect();
        assert_eq!(to_other, ["* 127.0.0.1:50000 joined\n", "[127.0.0.1:50000] hello\n"]);
        assert!(h.take_output().is_empty(), "no echo to the sender");
        h.feed_eof();
        assert!(h.is_closed());
        assert_eq!(h.cx.writes_to.last().unwrap().1, b"* 127.0.0.1:50000 left\n");
        assert_eq!(room.borrow().members.len(), 1);
    }

    #[test]
    fn a_member_that_does_not_read_is_disconnected_not_buffered_forever() {
        let room = Rc::new(RefCell::new(Room::default()));
        let stuck = ConnId::from_raw(9);
        room.borrow_mut().members.push((stuck, "127.0.0.1:9".into()));
        let mut h = member(&room);
        h.cx.buffered_of.insert(stuck, BACKLOG_CAP - 30);
        h.connect();
        assert!(h.cx.aborted_others.is_empty(), "the 25-byte join notice fits");
        h.feed(b"this line does not fit\n");
        assert_eq!(h.cx.aborted_others, vec![stuck]);
    }
}
