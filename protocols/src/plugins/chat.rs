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
//! Arrivals and departures cost each member O(1), even in a burst of
//! thousands (each one told to everyone would be O(n²)): the room spends at
//! most [`NOTICE_WRITES_PER_SEC`] writes a second on announcing them one by
//! one (a room of 10 hears up to 2,000 a second, a room of 2,000 hears 10);
//! past that it counts them, and says `* 37 more joined, 12 more left` a
//! moment later ([`SUMMARY_AFTER`]). Members are indexed by id, so a
//! departure costs O(1) too.
//!
//! ```text
//! $ twirl cat tcp:127.0.0.1:7107          (or nc 127.0.0.1 7107)
//! * you are 127.0.0.1:50312; 1 other here
//! hello
//! [127.0.0.1:50298] hi there
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twirl::bytes::{BufMut, Bytes, BytesMut};
use twirl::endpoint::ClientEndpoint;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, ConnId, Context, Disconnect, Factory};

use crate::exchange::interactive;
use crate::plugin::{ClientError, Plugin};

/// Bytes a member may have waiting before it is disconnected for not reading.
pub const BACKLOG_CAP: usize = 256 * 1024;
/// Longest line accepted.
pub const MAX_LINE: usize = 4096;

/// Writes a second the room spends on announcing arrivals and departures
/// one by one (one write per member told).
pub const NOTICE_WRITES_PER_SEC: usize = 20_000;
/// How long counted arrivals and departures wait to be summed up.
pub const SUMMARY_AFTER: Duration = Duration::from_millis(100);
/// The timer tag of the summary of unannounced arrivals and departures.
const SUMMARY: u64 = 1;

/// Everyone in the room.
#[derive(Default)]
pub struct Room {
    members: Vec<(ConnId, String)>,
    /// Where each member is in `members`.
    index: HashMap<ConnId, usize>,
    /// The current one-second window, and the announcements made in it.
    window: Option<Instant>,
    announced: usize,
    /// Arrivals and departures not announced one by one yet.
    unannounced: (u32, u32),
    /// The member whose timer will announce them.
    summary_by: Option<ConnId>,
}

impl Room {
    /// Adds a member.
    pub fn join(&mut self, id: ConnId, label: String) {
        self.index.insert(id, self.members.len());
        self.members.push((id, label));
    }

    /// Removes a member, in O(1).
    fn leave(&mut self, id: ConnId) {
        let Some(i) = self.index.remove(&id) else { return };
        self.members.swap_remove(i);
        if let Some((moved, _)) = self.members.get(i) {
            self.index.insert(*moved, i);
        }
    }

    /// How many are here.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when nobody is here.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Announces an arrival (`joined`) or a departure to everyone but
    /// `from`, unless this second's announcements are used up: then it is
    /// counted for the summary. Returns false when it was only counted.
    fn announce(&mut self, from: ConnId, line: &str, joined: bool, now: Instant, cx: &mut dyn Context) -> bool {
        if self.window.is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1)) {
            self.window = Some(now);
            self.announced = 0;
        }
        if self.announced + self.members.len() > NOTICE_WRITES_PER_SEC {
            if joined {
                self.unannounced.0 += 1;
            } else {
                self.unannounced.1 += 1;
            }
            return false;
        }
        self.announced += self.members.len();
        let mut msg = self.take_summary();
        msg.push_str(line);
        self.broadcast(from, Bytes::from(msg), cx);
        true
    }

    /// The summary line of what was not announced (empty if nothing).
    fn take_summary(&mut self) -> String {
        let (joined, left) = std::mem::take(&mut self.unannounced);
        match (joined, left) {
            (0, 0) => String::new(),
            (j, 0) => format!("* {j} more joined\n"),
            (0, l) => format!("* {l} more left\n"),
            (j, l) => format!("* {j} more joined, {l} more left\n"),
        }
    }

    /// Tells everyone what was counted and not announced.
    fn announce_summary(&mut self, cx: &mut dyn Context) {
        self.summary_by = None;
        let msg = self.take_summary();
        if !msg.is_empty() {
            self.broadcast(ConnId::from_raw(0), Bytes::from(msg), cx);
        }
    }

    /// Sends `msg` to every member but `from`, disconnecting members whose
    /// backlog passed the cap. Every member is given the same bytes: a
    /// member whose socket is full queues a reference, not a copy, so a
    /// line waiting for a thousand slow readers is held once.
    fn broadcast(&self, from: ConnId, msg: Bytes, cx: &mut dyn Context) {
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
                    cx.write_bytes_to(*id, msg.clone());
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
        let id = t.id();
        let others = self.room.borrow().len();
        self.room.borrow_mut().join(id, label.clone());
        let s = if others == 1 { "" } else { "s" };
        t.write(format!("* you are {label}; {others} other{s} here\n").as_bytes());
        let now = t.now();
        let mut room = self.room.borrow_mut();
        if !room.announce(id, &format!("* {label} joined\n"), true, now, &mut **t) && room.summary_by.is_none() {
            room.summary_by = Some(id);
            t.call_later(SUMMARY_AFTER, SUMMARY);
        }
        drop(room);
        self.me = Some((id, label));
    }

    fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
        if tag == SUMMARY {
            self.room.borrow_mut().announce_summary(&mut **t);
        }
    }

    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        let Some((id, label)) = &self.me else { return };
        let mut msg = BytesMut::with_capacity(label.len() + line.len() + 4);
        msg.put_u8(b'[');
        msg.put_slice(label.as_bytes());
        msg.put_slice(b"] ");
        msg.put_slice(line);
        msg.put_u8(b'\n');
        self.room.borrow().broadcast(*id, msg.freeze(), &mut **t);
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let Some((id, label)) = self.me.take() else { return };
        let mut room = self.room.borrow_mut();
        room.leave(id);
        log::debug!("chat: {label} left ({reason})");
        let now = cx.now();
        let announced = room.announce(id, &format!("* {label} left\n"), false, now, cx);
        // This member's timers die with it: if it was to tell the summary,
        // or this departure was only counted, another member's timer will.
        if room.summary_by == Some(id) {
            room.summary_by = None;
        }
        if room.summary_by.is_some() || room.unannounced == (0, 0) {
            return;
        }
        let next = room.members.first().map(|(m, _)| *m);
        room.summary_by = next;
        // The other member's callbacks may run (and borrow the room).
        drop(room);
        let scheduled = next.is_some_and(|m| {
            cx.with_conn(m, &mut |t| {
                t.call_later(SUMMARY_AFTER, SUMMARY);
            })
        });
        if !scheduled {
            let mut room = self.room.borrow_mut();
            room.summary_by = None;
            if !announced {
                room.announce_summary(cx);
            }
        }
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
        room.borrow_mut().join(other, "127.0.0.1:7".into());
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
        assert_eq!(room.borrow().len(), 1);
    }

    #[test]
    fn a_member_that_does_not_read_is_disconnected_not_buffered_forever() {
        let room = Rc::new(RefCell::new(Room::default()));
        let stuck = ConnId::from_raw(9);
        room.borrow_mut().join(stuck, "127.0.0.1:9".into());
        let mut h = member(&room);
        h.cx.buffered_of.insert(stuck, BACKLOG_CAP - 30);
        h.connect();
        assert!(h.cx.aborted_others.is_empty(), "the 25-byte join notice fits");
        h.feed(b"this line does not fit\n");
        assert_eq!(h.cx.aborted_others, vec![stuck]);
    }

    #[test]
    fn a_burst_of_arrivals_costs_each_member_o1() {
        let room = Rc::new(RefCell::new(Room::default()));
        let first = ConnId::from_raw(5);
        room.borrow_mut().join(first, "127.0.0.1:5".into());
        let mut members = Vec::new();
        for i in 0..1000u16 {
            let mut h = member(&room).with_peer(Addr::Inet(([127, 0, 0, 1], 10_000 + i).into()));
            h.cx.buffered_of.insert(first, 0);
            h.connect();
            members.push(h);
        }
        let to_first: usize =
            members.iter().map(|h| h.cx.writes_to.iter().filter(|(id, _)| *id == first).count()).sum();
        // One by one while the second's writes last (n members told each),
        // then counted: about sqrt(2 * 20,000) arrivals, not 1,000.
        assert!((150..=250).contains(&to_first), "{to_first} notices reached the first member");
        for h in &mut members {
            h.advance(SUMMARY_AFTER);
        }
        let summary: Vec<String> = members
            .iter()
            .flat_map(|h| h.cx.writes_to.iter().filter(|(id, _)| *id == first))
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .filter(|l| l.contains("more"))
            .collect();
        assert_eq!(summary, [format!("* {} more joined\n", 1000 - to_first)]);
    }
}
