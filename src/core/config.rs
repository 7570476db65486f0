//! The loop's tuning knobs ([`Config`]) and what a readiness event says ([`Readiness`]).

use std::time::Duration;

use crate::flow::Limits;

/// Tuning knobs, with documented defaults ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// Default buffer limits for every connection.
    pub limits: Limits,
    /// How much a connection's first read of a turn takes, from the one
    /// read buffer the loop owns (connections keep none). Default 8 KiB.
    /// A read that comes back full means more is waiting: the next read of
    /// the same turn takes twice as much, up to
    /// [`max_read_buffer`](Self::max_read_buffer). A client with a little
    /// in flight is read in small pieces (cheaper for it on loopback), one
    /// with megabytes in flight in large ones (fewer system calls, larger
    /// segments).
    pub read_buffer: usize,
    /// The most one stream read takes (see [`read_buffer`](Self::read_buffer)).
    /// Default 64 KiB.
    pub max_read_buffer: usize,
    /// Bytes one connection may read per turn before others get theirs.
    /// Default 64 KiB: small enough that one streaming connection delays a
    /// turn by little (the fairness benchmark), large enough to amortise the poll.
    pub read_budget: usize,
    /// Bytes one connection may flush per turn. Default 64 KiB.
    pub write_budget: usize,
    /// Connections one listener may accept per turn. Default 128.
    pub accept_budget: usize,
    /// Largest datagram accepted; larger ones are reported truncated. Default 65,536.
    pub max_datagram: usize,
    /// Datagrams queued per UDP socket while the kernel buffer is full. Default 512.
    pub udp_send_queue: usize,
    /// How long an outgoing connection may take. Default 30 s.
    pub connect_timeout: Duration,
    /// After `lose_connection`, how long to drain the peer's unread data so
    /// our last bytes are not destroyed by a reset. Default 2 s.
    pub linger: Duration,
    /// On stop, how long connections get to flush. Default 2 s.
    pub shutdown_grace: Duration,
    /// Events taken from one `poll`. Default 1024.
    pub events_capacity: usize,
    /// Bytes of output all connections together may hold buffered; past it
    /// the connections holding the most are aborted until the rest fits
    /// (`Stats::budget_aborts`). Default: a sixteenth of the machine's
    /// memory, at least 64 MiB and at most 512 MiB ([`default_memory_budget`]).
    pub memory_budget: usize,
    /// What a UDP server socket will not answer ([`UdpReplies`]).
    pub udp_replies: UdpReplies,
    /// Binds TCP listeners and UDP sockets with `SO_REUSEPORT`, so that
    /// several reactors (one per thread, `twirl serve --threads N`) can
    /// each bind the same address and the kernel spreads connections and
    /// datagrams across them. Default false: a second bind fails, as it
    /// should when nobody meant to share.
    pub reuse_port: bool,
    /// How long a TLS handshake may take before the connection is closed
    /// (a plaintext client, garbage, an abandoned handshake). Default 10 s;
    /// a `tls:` endpoint's `handshake_timeout=SECS` overrides it.
    pub tls_handshake_timeout: Duration,
}

/// Which replies a UDP server socket (`Reactor::listen_udp`) refuses to
/// send, so that one spoofed datagram cannot start a loop between two
/// services or make this server a reflector. Sockets opened with
/// `Reactor::connect_udp` (clients) are not limited. Refused replies are
/// dropped, counted (`Stats::replies_refused`) and logged at debug level.
///
/// ```
/// let r = twirl::UdpReplies::default();
/// assert!(r.refused_ports.contains(&7) && r.refused_ports.contains(&123));
/// assert_eq!((r.per_second, r.burst, r.limit_loopback), (100, 200, false));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpReplies {
    /// Never reply to these source ports: services that answer unsolicited
    /// datagrams (echo 7, discard 9, daytime 13, chargen 19, time 37,
    /// NTP 123). `twirl serve` adds every plugin's default UDP port. Replies
    /// to this reactor's own UDP endpoints are always refused too.
    pub refused_ports: Vec<u16>,
    /// Replies per second to one IP address (a token bucket); 0: no limit.
    pub per_second: u32,
    /// How many replies one address may get in a burst.
    pub burst: u32,
    /// Whether the rate applies to loopback addresses too. Default false:
    /// a local client is not a spoofing victim, and benchmarks run there.
    pub limit_loopback: bool,
}

impl Default for UdpReplies {
    fn default() -> Self {
        UdpReplies { refused_ports: vec![7, 9, 13, 19, 37, 123], per_second: 100, burst: 200, limit_loopback: false }
    }
}

/// The default [`Config::memory_budget`]: a sixteenth of physical memory,
/// clamped to 64 MiB..=512 MiB (64 MiB if the size cannot be read).
pub fn default_memory_budget() -> usize {
    const MIB: usize = 1024 * 1024;
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let phys = usize::try_from(pages).unwrap_or(0).saturating_mul(usize::try_from(page).unwrap_or(0));
    (phys / 16).clamp(64 * MIB, 512 * MIB)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            read_buffer: 8 * 1024,
            max_read_buffer: 64 * 1024,
            read_budget: 64 * 1024,
            write_budget: 64 * 1024,
            accept_budget: 128,
            max_datagram: 65_536,
            udp_send_queue: 512,
            connect_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(2),
            events_capacity: 1024,
            memory_budget: default_memory_budget(),
            udp_replies: UdpReplies::default(),
            reuse_port: false,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What one readiness event reported, as handed to a raw [`crate::fd::FdHandler`].
///
/// Readiness is edge-triggered: it is reported when it changes, so a handler
/// must read (or write) until `WouldBlock` before it is told again.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or EOF, or a pending connection) may be read.
    pub readable: bool,
    /// The descriptor may be written.
    pub writable: bool,
    /// The peer closed its writing side (or hung up).
    pub read_closed: bool,
    /// An error is pending on the descriptor.
    pub error: bool,
    /// Urgent (TCP out-of-band) data arrived: a read stops short at its
    /// mark, so a short read no longer means the socket is drained.
    pub urgent: bool,
}

impl Readiness {
    /// Readiness for a source continued from the ready queue: try everything,
    /// and read until `WouldBlock` since no event vouches for a drained socket.
    pub(crate) const ALL: Readiness =
        Readiness { readable: true, writable: true, read_closed: true, error: false, urgent: false };
}
