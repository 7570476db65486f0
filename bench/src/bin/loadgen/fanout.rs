//! The chat fan-out workload: one sender, `--members` members (500), against
//! `twirl serve chat@tcp:PORT`, where each line from one member goes to every
//! other member as `[IP:PORT] line`.
//!
//! 1. **Join.** The members connect, each with a small receive buffer
//!    (`--member-rcvbuf`, 4096: the kernel doubles it) and an Ethernet-sized
//!    MSS (`--member-mss`, 1460), then the sender. On loopback the server's
//!    kernel would otherwise hold megabytes for each member (its send buffer
//!    grows to 4 MiB with the 64 KiB loopback MSS) and twirl's own buffers
//!    would never be used; with these options the kernel takes about 90 KB
//!    per member (server send queue plus member receive queue), as on a real
//!    network. Everyone reads the arrival notices until `--settle` has passed
//!    with all joined (the chat sums up bursts of arrivals 100 ms later).
//! 2. **Fan-out.** The server's RSS is read (`rss_before`) and its peak reset
//!    (`/proc/PID/clear_refs`); the members stop reading, and the sender sends
//!    `--lines` lines (200) of `--size` bytes (1024, newline included) as
//!    fast as the server takes them. When the server has read them all and
//!    the kernel queues of every member (from `/proc/net/tcp`) stop changing,
//!    the server has done all it can: its RSS then (`rss_fanout`) and its
//!    peak since the reset (`rss_peak`) are read.
//! 3. **Drain.** The members read everything, verifying that each one gets
//!    every line, in order, byte for byte, as `[SENDER] line`; the run ends
//!    when all have all of them.
//!
//! The per-member volume (200 lines of 1042 bytes as delivered: 208 KB) is
//! below the chat's per-member backlog cap (256 KiB of twirl's buffers)
//! even if the kernel took none of it, so no member should be disconnected;
//! one that is fails the run.
//!
//! **One copy of the backlog** (`one_copy`): the bytes of the lines that at
//! least one member's socket had not entirely taken at the measuring point,
//! that is the largest number of lines any member's kernel queues were still
//! short of, times the delivered line's length. A server that keeps one
//! shared copy of each line until every member's socket has taken it holds
//! this much; one that copies each line into each member's buffer holds
//! about `all_copies` (the sum over members of the bytes not yet taken by
//! each one's socket). The result is `rss_growth = rss_fanout - rss_before`
//! against `one_copy` (the target: at most 2×), and the server's CPU (user
//! plus kernel, from the fan-out's start to the drain's end) per delivered
//! line (`cpu_us_per_line`: lines × members delivered).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use twirl_bench::{TcpQueues, loopback_tcp_queues, message, read_status_bytes, reset_peak_rss};

use super::{MAX_PENDING, Mark, Opts, READ_BUF, Res, STALL, connect, connected, window_fields};

/// Longest line a member accepts (the chat's own limit is 4096 plus the label).
const MAX_LINE: usize = 8192;

/// What the members are doing.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Phase {
    /// Connecting and reading the arrival notices.
    Join,
    /// Not reading: the sender's lines pile up in the server.
    FanOut,
    /// Reading everything back.
    Drain,
}

/// One end of the room: a member, or the sender.
struct Member {
    sock: TcpStream,
    /// Its address, as the server labels it.
    local: SocketAddr,
    up: bool,
    /// It got its `* you are ...` greeting.
    greeted: bool,
    /// Bytes read so far.
    offset: u64,
    /// An unfinished line.
    partial: Vec<u8>,
    /// Lines from the sender received so far.
    lines: usize,
    /// Bytes the kernel had taken for it at the measuring point (read, in
    /// its receive queue, or in the server's send queue).
    taken: Option<u64>,
    /// Lines that ended past `taken`: not entirely out of the server.
    pending_lines: usize,
    /// Where the last line from the sender ended.
    end: u64,
    /// Notices (`* ...`) after the fan-out began.
    late_notices: usize,
    /// The server closed it.
    gone: bool,
}

impl Member {
    fn new(sock: TcpStream) -> Res<Member> {
        let local = sock.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        Ok(Member {
            sock,
            local,
            up: false,
            greeted: false,
            offset: 0,
            partial: Vec::new(),
            lines: 0,
            taken: None,
            pending_lines: 0,
            end: 0,
            late_notices: 0,
            gone: false,
        })
    }
}

/// A member's socket: small receive buffer and MSS set before connecting, so
/// that they are what the handshake announces.
fn member_socket(o: &Opts) -> Res<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    if o.member_rcvbuf > 0 {
        s.set_recv_buffer_size(o.member_rcvbuf).map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    if o.member_mss > 0 {
        s.set_tcp_mss(o.member_mss).map_err(|e| format!("TCP_MAXSEG: {e}"))?;
    }
    match s.connect(&o.addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect {}: {e}", o.addr)),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// The room as the load generator sees it.
struct Room {
    members: Vec<Member>,
    sender: Option<Member>,
    /// What each member must get for line k: `[SENDER] line\n`.
    expected: Vec<Vec<u8>>,
    phase: Phase,
    buf: Vec<u8>,
    progress_at: Instant,
}

impl Room {
    /// Reads what one member (or the sender, `id == None`) has been sent and
    /// checks every whole line.
    fn read(&mut self, id: Option<usize>) -> Res<()> {
        let phase = self.phase;
        let Room { members, sender, expected, buf, progress_at, .. } = self;
        let (m, who) = match id {
            Some(i) => (&mut members[i], format!("member {i}")),
            None => (sender.as_mut().ok_or("no sender")?, "the sender".to_string()),
        };
        if !m.up {
            if !connected(&m.sock)? {
                return Ok(());
            }
            m.up = true;
        }
        if m.gone || (id.is_some() && phase == Phase::FanOut) {
            return Ok(()); // members do not read during the fan-out
        }
        loop {
            let n = match m.sock.read(buf) {
                Ok(n) if n > 0 => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A member the server dropped is counted (the run fails at
                // its end); the sender dropped ends it now.
                Ok(_) | Err(_) if id.is_some() && phase != Phase::Join => {
                    m.gone = true;
                    *progress_at = Instant::now();
                    return Ok(());
                }
                Ok(_) => return Err(format!("{who} was disconnected by the server after {} bytes", m.offset)),
                Err(e) => return Err(format!("{who}: read: {e} after {} bytes", m.offset)),
            };
            *progress_at = Instant::now();
            let mut data = &buf[..n];
            while !data.is_empty() {
                let (piece, rest, whole) = match data.iter().position(|&b| b == b'\n') {
                    Some(p) => (&data[..=p], &data[p + 1..], true),
                    None => (data, &data[data.len()..], false),
                };
                m.partial.extend_from_slice(piece);
                m.offset += piece.len() as u64;
                data = rest;
                if m.partial.len() > MAX_LINE {
                    return Err(format!("{who}: a line longer than {MAX_LINE} bytes"));
                }
                if !whole {
                    break;
                }
                let line = std::mem::take(&mut m.partial);
                if line.starts_with(b"* ") {
                    if line.starts_with(b"* you are ") {
                        m.greeted = true;
                    } else if phase != Phase::Join {
                        m.late_notices += 1;
                    }
                } else if id.is_none() {
                    return Err(format!("the sender got a line that is not a notice: {:?}", show(&line)));
                } else if let Some(want) = expected.get(m.lines) {
                    if &line != want {
                        return Err(format!(
                            "{who}: line {} is wrong: got {:?}, want {:?}",
                            m.lines,
                            show(&line),
                            show(want)
                        ));
                    }
                    m.lines += 1;
                    m.end = m.offset;
                    if m.taken.is_some_and(|t| m.offset > t) {
                        m.pending_lines += 1;
                    }
                } else {
                    return Err(format!("{who}: a line after the last one: {:?}", show(&line)));
                }
                m.partial = line;
                m.partial.clear();
            }
        }
    }

    /// Bytes the kernel holds or has delivered for each member: read, in the
    /// member's receive queue, or in the server's send queue.
    fn taken(&self, server_port: u16, q: &std::collections::HashMap<(u16, u16), TcpQueues>) -> Res<Vec<u64>> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let port = m.local.port();
                let mine = q.get(&(port, server_port)).ok_or(format!("member {i} is not in /proc/net/tcp"))?;
                let theirs =
                    q.get(&(server_port, port)).ok_or(format!("member {i}'s server end is not in /proc/net/tcp"))?;
                Ok(m.offset + mine.rx + theirs.tx)
            })
            .collect()
    }
}

/// A line, shortened for an error message.
fn show(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    if s.len() > 80 { format!("{}...", &s[..s.floor_char_boundary(80)]) } else { s.into_owned() }
}

/// Runs the fan-out (see the module documentation).
pub(super) fn run(o: &Opts) -> Res<String> {
    let pid = o.pid.ok_or("the fanout workload needs --pid")?;
    if !o.addr.ip().is_loopback() {
        return Err("the fanout workload reads /proc/net/tcp and needs a 127.0.0.1 server".into());
    }
    let status = |field: &str| read_status_bytes(pid, field).map_err(|e| format!("reading the server's {field}: {e}"));
    let started = Instant::now();
    let hard_deadline = started + Duration::from_secs(90) + o.settle;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let mut room = Room {
        members: Vec::with_capacity(o.members),
        sender: None,
        expected: Vec::new(),
        phase: Phase::Join,
        buf: vec![0; READ_BUF],
        progress_at: started,
    };
    let sender_token = Token(o.members);

    // 1. Join: the members, then the sender; read notices until settled.
    let mut settled_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > hard_deadline {
            return Err("hard deadline passed while joining".into());
        }
        if now.duration_since(room.progress_at) > STALL + STALL {
            return Err(format!("joining stalled: {} of {} members greeted", greeted(&room), o.members));
        }
        while room.members.len() < o.members && room.members.len() - greeted(&room) < MAX_PENDING {
            let mut sock = member_socket(o)?;
            poll.registry()
                .register(&mut sock, Token(room.members.len()), Interest::READABLE)
                .map_err(|e| format!("register: {e}"))?;
            room.members.push(Member::new(sock)?);
        }
        if room.sender.is_none() && greeted(&room) == o.members {
            let mut sock = connect(o.addr)?;
            poll.registry()
                .register(&mut sock, sender_token, Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("register: {e}"))?;
            room.sender = Some(Member::new(sock)?);
        }
        if settled_at.is_none() && room.sender.as_ref().is_some_and(|s| s.greeted) {
            settled_at = Some(now + o.settle);
        }
        if settled_at.is_some_and(|t| now >= t) {
            break;
        }
        match poll.poll(&mut events, Some(Duration::from_millis(20))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            let id = (ev.token() != sender_token).then_some(ev.token().0);
            room.read(id)?;
        }
    }
    let Some(sender) = room.sender.as_mut() else { return Err("no sender".into()) };
    sender.sock.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (sender_port, server_port) = (sender.local.port(), o.addr.port());
    let label = sender.local.to_string();
    let mut out: Vec<u8> = Vec::with_capacity(o.lines * o.size);
    for k in 0..o.lines {
        let line = message(k as u64, o.size);
        let mut want = format!("[{label}] ").into_bytes();
        want.extend_from_slice(&line);
        room.expected.push(want);
        out.extend_from_slice(&line);
    }
    let line_len = room.expected.first().map_or(0, Vec::len);

    // 2. Fan-out.
    let rss_before = status("VmRSS")?;
    reset_peak_rss(pid).map_err(|e| format!("resetting the server's peak RSS (clear_refs): {e}"))?;
    room.phase = Phase::FanOut;
    let start = Mark::take(o.pid)?;
    let mut written = 0usize;
    let mut last_taken: Option<Vec<u64>> = None;
    let mut check_at = Instant::now();
    room.progress_at = Instant::now();
    let taken = loop {
        let now = Instant::now();
        if now > hard_deadline {
            return Err("hard deadline passed during the fan-out".into());
        }
        if now.duration_since(room.progress_at) > STALL {
            return Err(format!("fan-out stalled: the sender wrote {written} of {} bytes", out.len()));
        }
        if written < out.len() {
            let sender = room.sender.as_mut().ok_or("no sender")?;
            match sender.sock.write(&out[written..]) {
                Ok(n) => {
                    written += n;
                    room.progress_at = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("the sender: write: {e}")),
            }
        } else if now >= check_at {
            // Everything is written: wait until the server has read it all
            // and the members' kernel queues stop changing.
            check_at = now + Duration::from_millis(100);
            let q = loopback_tcp_queues().map_err(|e| format!("reading /proc/net/tcp: {e}"))?;
            let unread = q.get(&(sender_port, server_port)).map_or(0, |s| s.tx)
                + q.get(&(server_port, sender_port)).map_or(0, |s| s.rx);
            let taken = room.taken(server_port, &q)?;
            if unread == 0 && last_taken.as_ref() == Some(&taken) {
                break taken;
            }
            if last_taken.as_ref() != Some(&taken) {
                room.progress_at = now;
            }
            last_taken = Some(taken);
        }
        let timeout = if written < out.len() { Duration::from_millis(10) } else { Duration::from_millis(20) };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            if ev.token() == sender_token {
                room.read(None)?;
            }
        }
    };
    let fanout_end = Mark::take(o.pid)?;
    let rss_fanout = status("VmRSS")?;
    let rss_peak = status("VmHWM")?;
    let fanout_secs = fanout_end.at.duration_since(start.at).as_secs_f64();
    let fanout_cpu = fanout_end.server.since(&start.server);
    let kernel_per_member =
        room.members.iter().zip(&taken).map(|(m, t)| t - m.offset).sum::<u64>() as f64 / o.members.max(1) as f64;
    for (m, t) in room.members.iter_mut().zip(&taken) {
        m.taken = Some(*t);
    }

    // 3. Drain.
    room.phase = Phase::Drain;
    room.progress_at = Instant::now();
    for i in 0..room.members.len() {
        room.read(Some(i))?;
    }
    let finished = |room: &Room| room.members.iter().filter(|m| m.lines == o.lines || m.gone).count();
    let mut done = finished(&room);
    while done < o.members {
        let now = Instant::now();
        if now > hard_deadline {
            return Err(format!("hard deadline passed while draining ({done} of {} members done)", o.members));
        }
        if now.duration_since(room.progress_at) > STALL {
            return Err(format!("drain stalled: {done} of {} members have every line", o.members));
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            let id = (ev.token() != sender_token).then_some(ev.token().0);
            room.read(id)?;
        }
        done = finished(&room);
    }
    let gone: Vec<&Member> = room.members.iter().filter(|m| m.gone).collect();
    if let Some(first) = gone.first() {
        return Err(format!(
            "{} of {} members were disconnected by the server (the first after {} bytes and {} lines; the chat's \
             per-member backlog cap is 256 KiB of its own buffers)",
            gone.len(),
            o.members,
            first.offset,
            first.lines
        ));
    }
    let end = Mark::take(o.pid)?;
    let rss_end = status("VmRSS")?;
    let cpu = end.server.since(&start.server);
    let delivered = (o.lines * o.members) as f64;
    let one_copy = room.members.iter().map(|m| m.pending_lines).max().unwrap_or(0) * line_len;
    let all_copies: u64 = room.members.iter().zip(&taken).map(|(m, t)| m.end.saturating_sub(*t)).sum();
    let late_notices: usize = room.members.iter().map(|m| m.late_notices).sum();
    let rss_growth = rss_fanout as f64 - rss_before as f64;
    Ok(format!(
        "workload=fanout members={} lines={} size={} line_bytes={line_len} member_rcvbuf={} member_mss={} \
         delivered={delivered:.0} rss_before={rss_before} rss_fanout={rss_fanout} rss_peak={rss_peak} \
         rss_end={rss_end} rss_growth={rss_growth:.0} rss_peak_growth={:.0} one_copy={one_copy} \
         all_copies={all_copies} growth_per_copy={:.3} kernel_per_member={kernel_per_member:.0} \
         late_notices={late_notices} fanout_secs={fanout_secs:.3} fanout_cpu_us={:.0} cpu_us_per_line={:.3} \
         user_us_per_line={:.3} sys_us_per_line={:.3} disconnects=0 {}",
        o.members,
        o.lines,
        o.size,
        o.member_rcvbuf,
        o.member_mss,
        rss_peak as f64 - rss_before as f64,
        if one_copy > 0 { rss_growth / one_copy as f64 } else { f64::NAN },
        fanout_cpu.total_us(),
        cpu.total_us() / delivered,
        cpu.user_us / delivered,
        cpu.sys_us / delivered,
        window_fields(&start, &end)
    ))
}

/// Members that got their greeting.
fn greeted(room: &Room) -> usize {
    room.members.iter().filter(|m| m.greeted).count()
}
