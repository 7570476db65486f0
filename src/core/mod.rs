//! The core every source stands on: the slab of sources and their tokens,
//! the timer queue, the counters, the lists of sources to continue or to
//! settle, and the context every callback gets.
//!
//! The core knows sources only through the [`Source`] trait: a listener, a
//! connection or a UDP socket is a box in a slot, taken out while its
//! callbacks run (so that they may reach the core, and through it other
//! sources) and put back, or dropped, by what it answers ([`Fate`]).
//!
//! A token is the slot's index in its low 32 bits and the slot's generation
//! in the high 32. Each slot counts its own generations, from 1; a slot
//! whose generation reaches `u32::MAX` is retired for good instead of
//! wrapping. So no token, and no [`crate::ConnId`] made from one, is ever
//! given to a later source: an event, timer or id for a closed connection
//! misses instead of reaching a newer one.

pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod idle;

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::Instant;

use mio::Registry;
use slab::Slab;

use crate::endpoint::ClientEndpoint;
use crate::flow::{Cork, Payload};
use crate::protocol::{DatagramProtocol, Protocol};
use crate::stats::Stats;
use crate::timer::{TimerHandle, TimerQueue};
use crate::transport::{ConnId, Disconnect, Transport};

pub use config::{Config, Readiness, UdpReplies, default_memory_budget};
pub(crate) use context::{CoreCx, Host};

/// What a source answers after handling something: stay in its slot, or
/// leave the loop (its slot is freed and the box dropped, closing its socket).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Keep,
    Done,
    /// The source handed its slot to another (a connect that completed
    /// became a connection): leave the slot as it is, drop this box.
    Replaced,
}

/// Which of a source's timers fired.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// A protocol's own timer; its tag goes to `timer_fired`.
    Proto,
    /// A closing connection waited long enough for the peer's EOF.
    Linger,
    /// A connection's idle check.
    Idle,
    /// A connection's maximum lifetime ran out.
    Lifetime,
    /// A listener's accept back-off.
    RetryAccept,
    /// A connect attempt took too long.
    ConnectTimeout,
    /// A client waiting to connect again.
    Reconnect,
    /// A name a connect waited for was resolved.
    Resolved,
}

/// What the loop does when a timer fires.
pub(crate) enum TimerAction {
    /// Hand the timer to the source `token` (missed if it is gone).
    Source { token: u64, tag: u64, kind: TimerKind },
    /// A closure over the public reactor (`Reactor::call_later`).
    Call(Box<dyn Deferred>),
    /// A repeating closure (`Reactor::call_every`).
    Every(Box<dyn Repeating>),
    /// The idle sweep ([`idle`]).
    IdleSweep,
}

/// Opens outgoing connections for callbacks ([`Context::connect`]). The
/// layer above installs it: the core knows no sources, and resolving a
/// name needs a thread that can wake the loop.
///
/// [`Context::connect`]: crate::Context::connect
pub(crate) trait Opener {
    /// Starts connecting `protocol` to `to`; returns the token its
    /// connection will have.
    fn connect(&self, core: &mut Core, to: &ClientEndpoint, protocol: Box<dyn Protocol>) -> io::Result<u64>;
    /// Opens a UDP socket connected to `to` for `protocol`; returns its token.
    fn connect_udp(&self, core: &mut Core, to: &ClientEndpoint, protocol: Box<dyn DatagramProtocol>)
    -> io::Result<u64>;
}

/// A closure the layer above runs once on a timer. The core does not know
/// that layer's type: it hands the closure to it as `&mut dyn Any`, and the
/// closure, which does know, downcasts. One allocation per timer.
pub(crate) trait Deferred {
    fn run(self: Box<Self>, above: &mut dyn Any);
}

/// A closure the layer above runs on every tick of a repeating timer.
pub(crate) trait Repeating {
    fn run(&mut self, above: &mut dyn Any);
}

/// Something in the loop: a connection, a listener, a connector, a UDP
/// socket, a watched descriptor. Every method gets the core and the
/// source's own token.
pub(crate) trait Source: 'static {
    /// A readiness event, or a continuation asked for last turn
    /// ([`Readiness::ALL`]).
    fn ready(&mut self, core: &mut Core, token: u64, r: Readiness) -> Fate;

    /// One of its timers fired.
    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, tag: u64) -> Fate {
        let _ = (core, token, kind, tag);
        Fate::Keep
    }

    /// Apply what was asked of it from elsewhere (a write or close by id).
    fn settle(&mut self, core: &mut Core, token: u64) -> Fate {
        let _ = (core, token);
        Fate::Keep
    }

    /// The reactor is stopping: stop taking new work, start closing.
    fn stop(&mut self, core: &mut Core, token: u64) -> Fate;

    /// The shutdown grace is over: end now (and leave, unless `Keep`).
    fn end(&mut self, core: &mut Core, token: u64) -> Fate {
        let _ = (core, token);
        Fate::Done
    }

    /// Whether it has been silent past its idle timeout, as the sweep
    /// asks every source ([`idle`]); `now_ms` is [`Core::clock_ms`].
    fn idleness(&self, now_ms: u32) -> idle::Idleness {
        let _ = now_ms;
        idle::Idleness::Unwatched
    }

    /// True for a descriptor watched with `Reactor::add_fd`.
    fn is_fd(&self) -> bool {
        false
    }

    /// True for the stand-in of a source that is out running.
    fn is_busy(&self) -> bool {
        false
    }

    /// Stream connections: write from elsewhere; false if not a stream or
    /// its writing side is closed (the bytes were dropped).
    fn write(&mut self, data: Payload<'_>, stats: &mut Stats) -> bool {
        let _ = (data, stats);
        false
    }

    /// After a write from elsewhere: whether the source has something for
    /// [`settle`](Self::settle) to act on (a connection that must be told
    /// to pause, or end).
    fn wants_settle(&self) -> bool {
        true
    }

    /// Listeners and UDP sockets: close at the next settle; false for
    /// anything else.
    fn stop_listening(&mut self) -> bool {
        false
    }

    /// Listeners and UDP sockets: ready the descriptor to be inherited by
    /// a program this process starts; `None` for anything else.
    fn pass_on(&mut self) -> Option<io::Result<std::os::fd::RawFd>> {
        None
    }

    /// Listeners and UDP sockets: the descriptor they serve, for a
    /// duplicate; `None` for anything else.
    fn descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Stream connections: close after flushing; false if not a stream.
    fn close(&mut self) -> bool {
        false
    }

    /// Stream connections: close now for `why`; false if not a stream.
    fn abort(&mut self, why: Disconnect) -> bool {
        let _ = why;
        false
    }

    /// Stream connections: bytes buffered for sending.
    fn buffered(&self) -> Option<usize> {
        None
    }

    /// Stream connections whose protocol is a layer (TLS): writes and
    /// closes by id go through [`with_transport`](Self::with_transport),
    /// so that the layer sees them.
    fn is_layered(&self) -> bool {
        false
    }

    /// Stream connections: run `f` with the transport, then settle; `None`
    /// if not a stream.
    fn with_transport(&mut self, core: &mut Core, token: u64, f: &mut dyn FnMut(&mut dyn Transport)) -> Option<Fate> {
        let _ = (core, token, f);
        None
    }
}

/// A slot whose generations are used up: it stays occupied for good.
struct Retired;

impl Source for Retired {
    fn ready(&mut self, _: &mut Core, _: u64, _: Readiness) -> Fate {
        Fate::Keep
    }
    fn stop(&mut self, _: &mut Core, _: u64) -> Fate {
        Fate::Keep
    }
    fn end(&mut self, _: &mut Core, _: u64) -> Fate {
        Fate::Keep
    }
}

/// Stands in a slot while its source is out running. A zero-sized type:
/// boxing it allocates nothing, and a slot is one thin-or-fat pointer
/// with no `Option` around it (16 bytes a connection, not 24).
struct Busy;

impl Source for Busy {
    fn ready(&mut self, _: &mut Core, _: u64, _: Readiness) -> Fate {
        Fate::Keep
    }
    fn stop(&mut self, _: &mut Core, _: u64) -> Fate {
        Fate::Keep
    }
    fn is_busy(&self) -> bool {
        true
    }
}

/// A slot: the source, or [`Busy`] while it is taken out to run.
type Slot = Box<dyn Source>;

/// Everything a callback may touch: the reactor minus its poller.
pub(crate) struct Core {
    pub registry: Registry,
    slots: Slab<Slot>,
    /// Each slab index's generation: that of its source, or of its last one.
    generations: Vec<u32>,
    pub timers: TimerQueue<TimerAction>,
    /// The timers each source set, cancelled when it leaves the loop.
    owned: HashMap<u64, Vec<TimerHandle>>,
    pub now: Instant,
    /// When the loop started: [`Core::clock_ms`] counts from it.
    epoch: Instant,
    /// The idle sweep's timer and interval, while it runs.
    idle_sweep: Option<(TimerHandle, std::time::Duration)>,
    /// Sources to continue next turn (budget ran out, or reading resumed).
    pub ready: Vec<u64>,
    /// Sources written to or closed from another's callback: settle them.
    pub dirty: Vec<u64>,
    /// The one read buffer, lent to whichever source reads.
    pub read_buf: Vec<u8>,
    /// The one cork, held by whichever connection's callback runs.
    pub cork: Cork,
    /// How callbacks open connections, once the layer above installed it.
    pub opener: Option<Rc<dyn Opener>>,
    /// Each consumer's producer (`Context::register_producer`), by token.
    pub producers: HashMap<u64, u64>,
    pub config: Config,
    pub stats: Stats,
    pub stop_requested: bool,
    /// When the graceful stop gives up waiting, once stopping.
    pub stopping: Option<Instant>,
}

/// The bytes stream reads may use: up to the largest read.
pub(crate) fn stream_read_buffer(config: &Config) -> usize {
    config.max_read_buffer.max(config.read_buffer).max(1024)
}

pub(crate) fn split(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

impl Core {
    pub(crate) fn new(registry: Registry, config: Config) -> Core {
        let now = Instant::now();
        Core {
            registry,
            slots: Slab::new(),
            generations: Vec::new(),
            timers: TimerQueue::new(now),
            owned: HashMap::new(),
            now,
            epoch: now,
            idle_sweep: None,
            ready: Vec::new(),
            dirty: Vec::new(),
            // Stream reads use the first `read_buffer` bytes; datagrams need
            // room for the largest accepted one.
            read_buf: vec![0; stream_read_buffer(&config).max(config.max_datagram)],
            cork: Cork::default(),
            opener: None,
            producers: HashMap::new(),
            config,
            stats: Stats::default(),
            stop_requested: false,
            stopping: None,
        }
    }

    /// Reserves a slot (empty, as if its source were out running) and
    /// returns its token; [`put_back`](Self::put_back) fills it.
    pub(crate) fn reserve(&mut self) -> u64 {
        loop {
            let idx = self.slots.insert(Box::new(Busy));
            if idx >= self.generations.len() {
                self.generations.resize(idx + 1, 0);
            }
            let generation = self.generations[idx];
            if generation == u32::MAX - 1 {
                // Its last generation: retire the slot rather than wrap.
                self.generations[idx] = u32::MAX;
                self.slots[idx] = Box::new(Retired);
                continue;
            }
            self.generations[idx] = generation + 1;
            return (u64::from(generation + 1) << 32) | idx as u64;
        }
    }

    /// Adds a source; returns its token.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, source: Box<dyn Source>) -> u64 {
        let token = self.reserve();
        self.put_back(token, source);
        token
    }

    fn live_index(&self, token: u64) -> Option<usize> {
        let (idx, generation) = split(token);
        (self.slots.contains(idx) && self.generations.get(idx) == Some(&generation)).then_some(idx)
    }

    /// True while the source named by `token` is in the loop.
    pub(crate) fn is_live(&self, token: u64) -> bool {
        self.live_index(token).is_some()
    }

    /// Takes a live source out of its slot, leaving [`Busy`] there.
    pub(crate) fn take(&mut self, token: u64) -> Option<Box<dyn Source>> {
        let idx = self.live_index(token)?;
        if self.slots[idx].is_busy() {
            return None;
        }
        Some(std::mem::replace(&mut self.slots[idx], Box::new(Busy)))
    }

    pub(crate) fn put_back(&mut self, token: u64, source: Box<dyn Source>) {
        if let Some(idx) = self.live_index(token) {
            self.slots[idx] = source;
        }
    }

    /// Frees the slot (and forgets its producer, if it was a consumer that
    /// never became a connection: a connect that failed).
    pub(crate) fn remove(&mut self, token: u64) {
        if let Some(idx) = self.live_index(token) {
            self.slots.remove(idx);
            if !self.producers.is_empty() {
                self.producers.remove(&token);
            }
        }
    }

    fn source_mut(&mut self, token: u64) -> Option<&mut Box<dyn Source>> {
        let idx = self.live_index(token)?;
        Some(&mut self.slots[idx]).filter(|s| !s.is_busy())
    }

    /// Takes the source out, runs `f` on it, and puts it back or frees its
    /// slot as `f` answers; false if there was no such source (or it was
    /// already out running).
    pub(crate) fn run(&mut self, token: u64, f: impl FnOnce(&mut dyn Source, &mut Core) -> Fate) -> bool {
        let Some(mut source) = self.take(token) else { return false };
        match f(&mut *source, self) {
            Fate::Keep => self.put_back(token, source),
            Fate::Done => self.remove(token),
            Fate::Replaced => {}
        }
        true
    }

    /// Hands one readiness event to its source, then settles what it touched.
    pub(crate) fn dispatch(&mut self, token: u64, r: Readiness) {
        self.run(token, |s, core| s.ready(core, token, r));
        self.process_dirty();
    }

    /// Hands a timer to its source; false if the source is gone.
    pub(crate) fn source_timer(&mut self, token: u64, kind: TimerKind, tag: u64) -> bool {
        let ran = self.run(token, |s, core| s.timer(core, token, kind, tag));
        self.process_dirty();
        // A source out running (a timer it set for itself, fired from its
        // own callback) is still alive.
        ran || self.is_live(token)
    }

    /// Tokens of every source in the loop.
    pub(crate) fn tokens(&self) -> Vec<u64> {
        self.slots.iter().map(|(i, _)| (u64::from(self.generations[i]) << 32) | i as u64).collect()
    }

    /// Writes to a stream connection by id; false if it is not open or its
    /// writing side is closed.
    pub(crate) fn write_to(&mut self, token: u64, data: Payload<'_>) -> bool {
        let Some(idx) = self.live_index(token) else { return false };
        if self.slots[idx].is_layered() {
            let mut took = false;
            let found = self.with_transport(token, &mut |t| {
                took = !t.is_closing();
                match &data {
                    Payload::Owned(b) => t.write_bytes(b.clone()),
                    Payload::Borrowed(d) => t.write(d),
                }
            });
            return found && took;
        }
        let source = &mut self.slots[idx];
        let ok = source.write(data, &mut self.stats);
        // Settled after the callback that wrote, only if the write left
        // something to act on: a message fanned out to 500 connections in
        // each of 60 lines of a read must not queue 30,000 settles.
        if ok && source.wants_settle() {
            self.dirty.push(token);
        }
        ok
    }

    pub(crate) fn close_conn(&mut self, token: u64) -> bool {
        if self.live_index(token).is_some_and(|i| self.slots[i].is_layered()) {
            return self.with_transport(token, &mut |t| t.lose_connection());
        }
        let ok = self.source_mut(token).is_some_and(|s| s.close());
        if ok {
            self.dirty.push(token);
        }
        ok
    }

    /// Closes a listener or a UDP socket by id, at once (a client told
    /// "closed" must find the port closed); false if it is neither (or is
    /// out running: a UDP socket closes itself through its transport).
    pub(crate) fn stop_listening(&mut self, token: u64) -> bool {
        let mut closed = false;
        self.run(token, |s, core| {
            closed = s.stop_listening();
            if closed { s.settle(core, token) } else { Fate::Keep }
        });
        closed
    }

    /// A duplicate of a listener's or UDP socket's descriptor.
    pub(crate) fn duplicate(&mut self, token: u64) -> Option<io::Result<std::os::fd::OwnedFd>> {
        Some(self.source_mut(token)?.descriptor()?.try_clone_to_owned())
    }

    /// See [`Source::pass_on`].
    pub(crate) fn pass_on(&mut self, token: u64) -> Option<io::Result<std::os::fd::RawFd>> {
        self.source_mut(token)?.pass_on()
    }

    pub(crate) fn abort_conn(&mut self, token: u64) -> bool {
        let ok = self.source_mut(token).is_some_and(|s| s.abort(Disconnect::AbortedByOther));
        if ok {
            self.dirty.push(token);
        }
        ok
    }

    pub(crate) fn buffered_len_of(&self, token: u64) -> Option<usize> {
        let idx = self.live_index(token)?;
        self.slots[idx].buffered()
    }

    /// Runs `f` with a stream connection's transport from outside its callbacks.
    pub(crate) fn with_transport(&mut self, token: u64, f: &mut dyn FnMut(&mut dyn Transport)) -> bool {
        let Some(mut source) = self.take(token) else { return false };
        let fate = source.with_transport(self, token, f);
        match fate {
            Some(Fate::Done) => self.remove(token),
            Some(Fate::Replaced) => {}
            Some(Fate::Keep) | None => self.put_back(token, source),
        }
        fate.is_some()
    }

    /// `consumer`'s output passed its high-water mark (`paused`) or drained
    /// below the low one: stop or resume reading its producer, if it has
    /// one.
    pub(crate) fn producer_flow(&mut self, consumer: u64, paused: bool) {
        if self.producers.is_empty() {
            return;
        }
        let Some(&producer) = self.producers.get(&consumer) else { return };
        if !self.is_live(producer) {
            self.producers.remove(&consumer);
            return;
        }
        log::trace!(target: "twirl::loop", "{} {} reading: its consumer {} {}", ConnId(producer), if paused { "stops" } else { "resumes" }, ConnId(consumer), if paused { "is full" } else { "drained" });
        self.with_transport(producer, &mut |t| if paused { t.pause_reading() } else { t.resume_reading() });
    }

    /// Records that `token` set `timer`, so it dies with it.
    pub(crate) fn own_timer(&mut self, token: u64, timer: TimerHandle) {
        // Token 0 names no source: a client factory's callbacks run with it.
        if token == 0 {
            return;
        }
        let list = self.owned.entry(token).or_default();
        // Fired and cancelled timers leave handles behind: prune them when
        // the list doubles, so it stays proportional to the live ones.
        if list.len() >= 4 && list.len().is_power_of_two() {
            let timers = &self.timers;
            list.retain(|h| timers.is_active(*h));
        }
        list.push(timer);
    }

    /// Cancels every timer `token` set.
    pub(crate) fn cancel_timers_of(&mut self, token: u64) {
        if self.owned.is_empty() {
            return;
        }
        for h in self.owned.remove(&token).unwrap_or_default() {
            self.timers.cancel(h);
        }
    }

    /// Past the memory budget, aborts the connections holding the most
    /// buffered output until what is left fits. Costs one comparison while
    /// under budget; a sort of the connections once over it.
    pub(crate) fn enforce_budget(&mut self) {
        let budget = self.config.memory_budget as u64;
        if self.stats.buffered <= budget {
            return;
        }
        let mut holders: Vec<(usize, u64)> = self
            .slots
            .iter()
            .filter_map(|(i, s)| {
                let held = s.buffered()?;
                (held > 0).then(|| (held, (u64::from(self.generations[i]) << 32) | i as u64))
            })
            .collect();
        holders.sort_unstable_by(|a, b| b.cmp(a));
        let mut total = self.stats.buffered;
        for (held, token) in holders {
            if total <= budget {
                break;
            }
            let why = Disconnect::MemoryBudget { budget: budget as usize, total: total as usize, held };
            crate::loglimit::conn_event(log::Level::Warn, format_args!("{}: {why}; aborting it", ConnId(token)));
            if let Some(s) = self.source_mut(token)
                && s.abort(why)
            {
                self.stats.budget_aborts += 1;
                self.dirty.push(token);
                total = total.saturating_sub(held as u64);
            }
        }
        self.process_dirty();
    }

    /// Settles connections touched from another's callback.
    pub(crate) fn process_dirty(&mut self) {
        for _ in 0..100_000 {
            let Some(token) = self.dirty.pop() else { return };
            self.run(token, |s, core| s.settle(core, token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Source for Nothing {
        fn ready(&mut self, _: &mut Core, _: u64, _: Readiness) -> Fate {
            Fate::Done
        }
        fn stop(&mut self, _: &mut Core, _: u64) -> Fate {
            Fate::Done
        }
    }

    fn core() -> Core {
        let poll = mio::Poll::new().expect("poll");
        Core::new(poll.registry().try_clone().expect("registry"), Config::default())
    }

    #[test]
    fn a_token_is_never_given_to_a_later_source() {
        let mut core = core();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let t = core.insert(Box::new(Nothing));
            assert!(seen.insert(t), "token {t:#x} given twice");
            core.remove(t);
            assert!(!core.is_live(t));
        }
        assert_eq!(core.slots.capacity().min(1), 1);
        // A slot at its last generation is retired, never wrapped.
        let t = core.insert(Box::new(Nothing));
        let (idx, _) = split(t);
        core.remove(t);
        core.generations[idx] = u32::MAX - 2;
        let last = core.insert(Box::new(Nothing));
        assert_eq!(split(last), (idx, u32::MAX - 1));
        core.remove(last);
        let next = core.insert(Box::new(Nothing));
        assert_ne!(split(next).0, idx, "the exhausted slot is retired, not reused");
        assert!(seen.insert(last) && seen.insert(next));
        assert!(!core.is_live(last) && core.is_live(next));
        assert!(!core.run(last, |_, _| Fate::Keep), "a stale token reaches nothing");
    }
}
