//! Any file descriptor in the loop: raw sockets, pipes, a terminal.
//!
//! Stream and datagram sockets have their own transports; everything else
//! can still be watched by the reactor through an [`FdHandler`]: the handler
//! owns the descriptor, is told when it is ready, and does its own reads and
//! writes. `twirl cat` watches stdin this way, and the `icmp` plugin a raw
//! ICMP socket.
//!
//! The descriptor must be non-blocking, and readiness is edge-triggered:
//! after a `readable` event, read until `WouldBlock`, or no new event comes.
//! Regular files cannot be watched (epoll refuses them with `EPERM`).
//!
//! # Examples
//!
//! ```
//! use std::io::Read;
//! use std::os::fd::{AsRawFd, RawFd};
//! use twirl::fd::{FdHandler, FdInterest, FdNext};
//! use twirl::{Context, Reactor, Readiness};
//!
//! /// Reads a pipe until EOF, then stops the reactor.
//! struct PipeReader(std::os::unix::net::UnixStream, Vec<u8>);
//!
//! impl FdHandler for PipeReader {
//!     fn fd(&self) -> RawFd {
//!         self.0.as_raw_fd()
//!     }
//!     fn ready(&mut self, _: Readiness, cx: &mut dyn Context) -> FdNext {
//!         let mut buf = [0u8; 1024];
//!         for _ in 0..64 {
//!             match self.0.read(&mut buf) {
//!                 Ok(0) => {
//!                     cx.stop_reactor();
//!                     return FdNext::Remove;
//!                 }
//!                 Ok(n) => self.1.extend_from_slice(&buf[..n]),
//!                 Err(_) => return FdNext::Wait, // WouldBlock: wait for the next event
//!             }
//!         }
//!         FdNext::Again // 64 reads done, more may be left: continue next turn
//!     }
//! }
//!
//! let (mut tx, rx) = std::os::unix::net::UnixStream::pair()?;
//! rx.set_nonblocking(true)?;
//! std::io::Write::write_all(&mut tx, b"hi")?;
//! drop(tx);
//! let mut reactor = Reactor::new()?;
//! reactor.add_fd(PipeReader(rx, Vec::new()), FdInterest::Read)?;
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::RawFd;

use mio::Interest;
use mio::unix::SourceFd;

use crate::conn::CoreCx;
use crate::guard::guarded;
use crate::reactor::{Core, Readiness, Source};
use crate::transport::{ConnId, Context};

/// Which readiness to watch for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FdInterest {
    /// Readable only.
    Read,
    /// Writable only.
    Write,
    /// Both.
    ReadWrite,
}

impl FdInterest {
    fn mio(self) -> Interest {
        match self {
            FdInterest::Read => Interest::READABLE,
            FdInterest::Write => Interest::WRITABLE,
            FdInterest::ReadWrite => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

/// What an [`FdHandler`] wants after a callback.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FdNext {
    /// Stay in the loop and wait for the next readiness event.
    Wait,
    /// Stay, and be called again next turn with full readiness: the handler
    /// stopped before `WouldBlock`, so the edge-triggered poller will not
    /// report what is left.
    Again,
    /// Leave the loop (`removed` is called).
    Remove,
}

/// Something that owns a descriptor and wants to hear when it is ready.
pub trait FdHandler: 'static {
    /// The descriptor; it must stay open while the handler is registered.
    fn fd(&self) -> RawFd;

    /// The handler joined the loop: a place to start timers.
    fn added(&mut self, cx: &mut dyn Context) {
        let _ = cx;
    }

    /// The descriptor is ready. Say what next: [`FdNext::Wait`] after
    /// reading (or writing) until `WouldBlock`; [`FdNext::Again`] after
    /// stopping early (a per-call budget spent), to be called again next
    /// turn since no new event will come for what is left; or
    /// [`FdNext::Remove`] to leave the loop.
    fn ready(&mut self, readiness: Readiness, cx: &mut dyn Context) -> FdNext;

    /// A timer set with [`Context::call_later`] fired.
    fn timer_fired(&mut self, tag: u64, cx: &mut dyn Context) -> FdNext {
        let _ = (tag, cx);
        FdNext::Wait
    }

    /// The handler left the loop (it asked to, was removed, or the reactor stopped).
    fn removed(&mut self, cx: &mut dyn Context) {
        let _ = cx;
    }
}

pub(crate) struct FdEntry {
    handler: Box<dyn FdHandler>,
}

impl Core {
    pub(crate) fn add_fd(&mut self, mut handler: Box<dyn FdHandler>, interest: FdInterest) -> io::Result<u64> {
        let token = self.insert(Source::Busy);
        let fd = handler.fd();
        if let Err(e) = self.registry.register(&mut SourceFd(&fd), mio::Token(token as usize), interest.mio()) {
            self.remove(token);
            return Err(e);
        }
        log::debug!("{} watching fd {fd}", ConnId(token));
        if let Err(e) = guarded(|| handler.added(&mut CoreCx { core: self, token })) {
            self.stats.panics += 1;
            log::error!("{} fd {fd}: in added: {e}", ConnId(token));
            let _ = self.registry.deregister(&mut SourceFd(&fd));
            self.remove(token);
            return Err(e.into());
        }
        self.put_back(token, Source::Fd(Box::new(FdEntry { handler })));
        // Already-ready descriptors are reported by the registration itself.
        Ok(token)
    }

    pub(crate) fn fd_ready(&mut self, token: u64, mut entry: Box<FdEntry>, r: Readiness) {
        let keep = guarded(|| entry.handler.ready(r, &mut CoreCx { core: self, token }));
        self.keep_or_remove(token, entry, keep);
    }

    pub(crate) fn fd_timer(&mut self, token: u64, mut entry: Box<FdEntry>, tag: u64) {
        let keep = guarded(|| entry.handler.timer_fired(tag, &mut CoreCx { core: self, token }));
        self.keep_or_remove(token, entry, keep);
    }

    /// A handler that asked to go, or panicked, leaves the loop.
    fn keep_or_remove(&mut self, token: u64, entry: Box<FdEntry>, keep: Result<FdNext, crate::guard::Panic>) {
        match keep {
            Ok(FdNext::Wait) => self.put_back(token, Source::Fd(entry)),
            Ok(FdNext::Again) => {
                self.ready.push(token);
                self.put_back(token, Source::Fd(entry));
            }
            Ok(FdNext::Remove) => self.remove_fd_source(token, entry),
            Err(e) => {
                self.stats.panics += 1;
                log::error!("{} fd {}: {e}; removed from the loop", ConnId(token), entry.handler.fd());
                self.remove_fd_source(token, entry);
            }
        }
    }

    #[allow(clippy::boxed_local)] // the box comes straight out of its slot; it is freed here
    pub(crate) fn remove_fd_source(&mut self, token: u64, mut entry: Box<FdEntry>) {
        self.remove(token);
        let fd = entry.handler.fd();
        // The handler may keep its descriptor open after leaving the loop:
        // deregister explicitly rather than rely on close.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        if let Err(e) = guarded(|| entry.handler.removed(&mut CoreCx { core: self, token })) {
            self.stats.panics += 1;
            log::error!("{} fd {fd}: in removed: {e}", ConnId(token));
        }
        log::debug!("{} stopped watching fd {fd}", ConnId(token));
    }
}
