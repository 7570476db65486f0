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
//! server's memory with every line. A line goes straight to each member
//! whose socket has room. A member whose socket is full falls *behind*: the
//! room keeps the lines it is owed in one log shared by every member
//! behind (each line held once, whoever owes it), and the member pulls
//! them when its socket drains ([`twirl::Transport::notify_drained`]). So
//! 500 members that stop reading hold one copy of what they missed, not
//! 500. A member owed more than [`BACKLOG_CAP`] (the `backlog=BYTES`
//! option of `twirl serve chat`) is disconnected, the
//! reason logged once, and the departure announced.
//!
//! Arrivals and departures cost each member O(1), even in a burst of
//! thousands (each one told to everyone would be O(n²)): the room spends at
//! most [`NOTICE_WRITES_PER_SEC`] writes a second on announcing them one by
//! one (a room of 10 hears up to 2,000 a second, a room of 2,000 hears 10);
//! past that it counts them, and says `* 37 more joined, 12 more left` a
//! moment later ([`SUMMARY_AFTER`]). Members are indexed by id, so a
//! departure costs O(1) too.
//!
//! With `twirl serve --threads N`, each thread has a room of its own for
//! the members it accepted, and every line said in one is posted to the
//! others ([`twirl::group::Group::post_to_others`]): each room hands it
//! to its own members, so everyone hears everyone, in the order each
//! member spoke; arrivals and departures are announced in every room the
//! same way. (The welcome's "N others here" counts the thread's own room.)
//!
//! ```text
//! $ twirl cat tcp:127.0.0.1:7107          (or nc 127.0.0.1 7107)
//! * you are 127.0.0.1:50312; 1 other here
//! hello
//! [127.0.0.1:50298] hi there
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use twirl::bytes::{BufMut, Bytes, BytesMut};
use twirl::endpoint::ClientEndpoint;
use twirl::group::Group;
use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, ConnId, Context, Disconnect, Factory, Transport};

use crate::exchange::interactive;
use crate::options::{OptionKind, OptionSpec, Options};
use crate::plugin::{ClientError, Plugin};
use crate::sample::{Answer, Sample, Via};

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

/// One member: its id, its label, and, while it is behind, the number of
/// the next logged line it is owed.
struct Member {
    id: ConnId,
    label: String,
    behind: Option<u64>,
}

/// A line owed to members that are behind.
struct Logged {
    from: ConnId,
    msg: Bytes,
    /// Bytes logged up to and including this line.
    end: u64,
}

/// The most a member pulls from the log at once: what does not fit its
/// socket waits in its own buffer, so this bounds what that holds.
const PULL_BATCH: usize = 16 * 1024;

/// Everyone in the room.
#[derive(Default)]
pub struct Room {
    members: Vec<Member>,
    /// Where each member is in `members`.
    index: HashMap<ConnId, usize>,
    /// Lines owed to members that are behind, oldest first, each held once.
    log: VecDeque<Logged>,
    /// The number of `log[0]`.
    first_seq: u64,
    /// Bytes ever logged.
    logged: u64,
    /// Members behind.
    behind: usize,
    /// Members that fell behind during the last broadcast: each must be
    /// told to pull when its socket drains, once the room is not borrowed
    /// (see [`arm`]).
    to_arm: Vec<ConnId>,
    /// The current one-second window, and the announcements made in it.
    window: Option<Instant>,
    announced: usize,
    /// Arrivals and departures not announced one by one yet.
    unannounced: (u32, u32),
    /// The member whose timer will announce them.
    summary_by: Option<ConnId>,
    /// Bytes a member may be owed before it is cut off; `None`: [`BACKLOG_CAP`].
    backlog_cap: Option<usize>,
    /// The reactors serving with this one, and this room's number among
    /// this thread's rooms (the same on every thread).
    group: Option<(Group, usize)>,
}

thread_local! {
    /// This thread's rooms, in the order they were made: a line from
    /// another thread's room `k` goes to room `k` here.
    static ROOMS: RefCell<Vec<Weak<RefCell<Room>>>> = const { RefCell::new(Vec::new()) };
}

/// Makes a room and, when this thread serves in a group, files it so that
/// the other threads' lines reach it.
fn new_room(cap: usize) -> Rc<RefCell<Room>> {
    let room = Rc::new(RefCell::new(Room::with_backlog_cap(cap)));
    if let Some(group) = Group::current().filter(|g| g.len() > 1) {
        let k = ROOMS.with(|rooms| {
            let mut rooms = rooms.borrow_mut();
            rooms.push(Rc::downgrade(&room));
            rooms.len() - 1
        });
        room.borrow_mut().group = Some((group, k));
    }
    room
}

/// An arrival or departure in room `k` of another thread: announce it in
/// this thread's room `k` too (counted for the summary if this room's
/// announcements are used up).
fn announced_elsewhere(k: usize, line: &str, joined: bool, r: &mut twirl::Reactor) {
    let Some(room) = ROOMS.with(|rooms| rooms.borrow().get(k).and_then(Weak::upgrade)) else { return };
    r.with_context(|cx| {
        let now = cx.now();
        let shown = room.borrow_mut().announce(ConnId::from_raw(0), line, joined, now, cx);
        if !shown {
            summary_due(&room, cx);
        }
        arm(&room, cx);
    });
}

/// Arrivals and departures were counted, not announced: makes sure a
/// member's timer will sum them up (the first member's, if nobody's is
/// set), or, with nobody left to hold one, says the summary now.
fn summary_due(room: &RefCell<Room>, cx: &mut dyn Context) {
    let next = {
        let mut room = room.borrow_mut();
        if room.summary_by.is_some() || room.unannounced == (0, 0) {
            return;
        }
        room.summary_by = room.members.first().map(|m| m.id);
        room.summary_by
    };
    // The member's callbacks may run (and borrow the room).
    let scheduled = next.is_some_and(|m| {
        cx.with_conn(m, &mut |t| {
            t.call_later(SUMMARY_AFTER, SUMMARY);
        })
    });
    if !scheduled {
        room.borrow_mut().announce_summary(cx);
    }
}

/// Tells the other threads' rooms of an arrival or departure here.
fn tell_elsewhere(room: &Room, line: &str, joined: bool) {
    if let Some((group, k)) = &room.group {
        let (k, line) = (*k, line.to_string());
        group.post_to_others(move |r| announced_elsewhere(k, &line, joined, r));
    }
}

/// A line said in room `k` of another thread: hand it to this thread's
/// room `k`, as if said by nobody here.
fn said_elsewhere(k: usize, msg: Bytes, r: &mut twirl::Reactor) {
    let Some(room) = ROOMS.with(|rooms| rooms.borrow().get(k).and_then(Weak::upgrade)) else { return };
    r.with_context(|cx| {
        room.borrow_mut().broadcast(ConnId::from_raw(0), msg, cx);
        arm(&room, cx);
    });
}

impl Room {
    /// An empty room whose members may be owed `cap` bytes (the `backlog`
    /// option) instead of [`BACKLOG_CAP`].
    pub fn with_backlog_cap(cap: usize) -> Room {
        Room { backlog_cap: Some(cap), ..Room::default() }
    }

    /// Adds a member.
    pub fn join(&mut self, id: ConnId, label: String) {
        self.index.insert(id, self.members.len());
        self.members.push(Member { id, label, behind: None });
    }

    /// Removes a member, in O(1).
    fn leave(&mut self, id: ConnId) {
        let Some(i) = self.index.remove(&id) else { return };
        let gone = self.members.swap_remove(i);
        if let Some(moved) = self.members.get(i) {
            self.index.insert(moved.id, i);
        }
        if gone.behind.is_some() {
            self.behind -= 1;
            self.trim();
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

    /// Sends `msg` to every member but `from`: at once to those whose
    /// socket has room, through the log to those behind. Every member is
    /// given the same bytes. Members owed more than the cap are
    /// disconnected.
    fn broadcast(&mut self, from: ConnId, msg: Bytes, cx: &mut dyn Context) {
        let seq = self.first_seq + self.log.len() as u64;
        for m in &mut self.members {
            if m.id == from || m.behind.is_some() {
                continue;
            }
            match cx.buffered_len_of(m.id) {
                None => {}
                Some(0) => {
                    cx.write_bytes_to(m.id, msg.clone());
                    // What its socket did not take waits in its buffer:
                    // the lines after this one wait in the log.
                    if cx.buffered_len_of(m.id).is_some_and(|n| n > 0) {
                        m.behind = Some(seq + 1);
                        self.behind += 1;
                        self.to_arm.push(m.id);
                    }
                }
                Some(_) => {
                    m.behind = Some(seq);
                    self.behind += 1;
                    self.to_arm.push(m.id);
                }
            }
        }
        if self.behind == 0 {
            // Nobody owes anything: the log stays empty, its numbering
            // goes on from here.
            self.first_seq = seq + 1;
            return;
        }
        self.logged += msg.len() as u64;
        self.log.push_back(Logged { from, msg, end: self.logged });
        self.cut_off_the_stuck(cx);
        self.trim();
    }

    /// Bytes of the log a member is owed from line `next` on.
    fn owed(&self, next: u64) -> u64 {
        let i = (next - self.first_seq) as usize;
        match self.log.get(i) {
            Some(first) => self.logged - (first.end - first.msg.len() as u64),
            None => 0,
        }
    }

    /// Disconnects members owed more than the cap (their buffer included),
    /// and takes them out of the room at once, so that each is logged once.
    fn cut_off_the_stuck(&mut self, cx: &mut dyn Context) {
        let mut stuck = Vec::new();
        for m in &self.members {
            let Some(next) = m.behind else { continue };
            let backlog = self.owed(next) + cx.buffered_len_of(m.id).unwrap_or(0) as u64;
            if backlog > self.backlog_cap.unwrap_or(BACKLOG_CAP) as u64 {
                log::warn!("chat: disconnecting {}: not reading ({backlog} bytes waiting)", m.label);
                stuck.push(m.id);
            }
        }
        for id in stuck {
            cx.abort_conn(id);
            self.leave(id);
        }
    }

    /// Drops the lines every member behind has been given.
    fn trim(&mut self) {
        let oldest = self.members.iter().filter_map(|m| m.behind).min();
        let end = self.first_seq + self.log.len() as u64;
        let keep_from = oldest.unwrap_or(end);
        for _ in self.first_seq..keep_from {
            self.log.pop_front();
        }
        self.first_seq = keep_from;
    }

    /// Member `me`'s socket drained: hands it the next lines it is owed,
    /// as many as its socket takes (up to [`PULL_BATCH`]); asks to be told
    /// again if it is still behind.
    fn pull(&mut self, me: ConnId, t: &mut dyn Transport) {
        let Some(&i) = self.index.get(&me) else { return };
        let Some(mut next) = self.members[i].behind else { return };
        let end = self.first_seq + self.log.len() as u64;
        let mut batch = 0;
        while next < end && t.buffered_len() == 0 && batch < PULL_BATCH {
            let line = &self.log[(next - self.first_seq) as usize];
            next += 1;
            if line.from != me {
                batch += line.msg.len();
                t.write_bytes(line.msg.clone());
            }
        }
        if next == end {
            self.members[i].behind = None;
            self.behind -= 1;
        } else {
            self.members[i].behind = Some(next);
            t.notify_drained();
        }
        self.trim();
    }
}

/// Tells the members that fell behind to pull when their socket drains
/// (each from its own transport: the room must not be borrowed then).
fn arm(room: &RefCell<Room>, cx: &mut dyn Context) {
    let ids = std::mem::take(&mut room.borrow_mut().to_arm);
    for id in ids {
        cx.with_conn(id, &mut |t| t.notify_drained());
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
        let line = format!("* {label} joined\n");
        tell_elsewhere(&room, &line, true);
        if !room.announce(id, &line, true, now, &mut **t) && room.summary_by.is_none() {
            room.summary_by = Some(id);
            t.call_later(SUMMARY_AFTER, SUMMARY);
        }
        drop(room);
        arm(&self.room, &mut **t);
        self.me = Some((id, label));
    }

    fn timer_fired(&mut self, tag: u64, t: &mut Lines<'_>) {
        if tag == SUMMARY {
            self.room.borrow_mut().announce_summary(&mut **t);
            arm(&self.room, &mut **t);
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
        let msg = msg.freeze();
        let mut room = self.room.borrow_mut();
        if let Some((group, k)) = &room.group {
            let (k, elsewhere) = (*k, msg.clone());
            group.post_to_others(move |r| said_elsewhere(k, elsewhere.clone(), r));
        }
        room.broadcast(*id, msg, &mut **t);
        drop(room);
        arm(&self.room, &mut **t);
    }

    fn drained(&mut self, t: &mut Lines<'_>) {
        if let Some((id, _)) = &self.me {
            self.room.borrow_mut().pull(*id, &mut **t);
        }
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) {
        let Some((id, label)) = self.me.take() else { return };
        let mut room = self.room.borrow_mut();
        room.leave(id);
        log::debug!("chat: {label} left ({reason})");
        let now = cx.now();
        let line = format!("* {label} left\n");
        tell_elsewhere(&room, &line, false);
        room.announce(id, &line, false, now, cx);
        // This member's timers die with it: if it was to tell the summary,
        // or this departure was only counted, another member's timer will.
        if room.summary_by == Some(id) {
            room.summary_by = None;
        }
        drop(room);
        summary_due(&self.room, cx);
        arm(&self.room, cx);
    }
}

/// The `backlog` option: bytes a member may be owed before it is cut off.
const BACKLOG: OptionSpec = OptionSpec {
    name: "backlog",
    meaning: "bytes a member that stops reading may be owed before it is disconnected",
    kind: OptionKind::Count { min: 1024, max: 1 << 30 },
    default: Some("262144"),
};

fn factory(options: &Options) -> Box<dyn Factory> {
    let cap = options.count(BACKLOG.name).unwrap_or(BACKLOG_CAP);
    let room = new_room(cap);
    Box::new(move |_: &Addr| LineReceiver::new(Chat::new(room.clone())).max_line_length(MAX_LINE))
}

/// `twirl client chat tcp:HOST:PORT`: type lines, see everyone else's.
fn client(endpoint: &ClientEndpoint, args: &[String]) -> Result<(), ClientError> {
    if !args.is_empty() {
        return Err(ClientError::usage("chat takes no arguments: type lines on stdin"));
    }
    interactive(endpoint)
}

/// The sample check: a lone member is welcomed first (other notices may
/// follow while other members come and go).
fn welcomed(got: &[u8]) -> Result<(), String> {
    if got.starts_with(b"* you are ") && got.contains(&b'\n') {
        Ok(())
    } else {
        Err(format!("no welcome line: {:?}", String::from_utf8_lossy(got)))
    }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "chat",
    summary: "relays each line to everyone else connected (seed 003's netcat chat)",
    lab: "seed 003 netcat chat",
    defaults: &["tcp:7107"],
    options: &[BACKLOG],
    stream: Some(factory),
    datagram: None,
    client: Some(client),
    client_flags: &[],
    samples: &[Sample { via: Via::Stream, request: b"hello\n", answer: Answer::Check(welcomed) }],
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
