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

use crate::core::{Core, CoreCx, Fate, Readiness, Source, TimerKind};
use crate::guard::{Panic, guarded};
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

pub(crate) struct FdSource {
    handler: Box<dyn FdHandler>,
}

impl FdSource {
    /// Registers the handler's descriptor and calls `added`; returns its token.
    pub(crate) fn add(core: &mut Core, mut handler: Box<dyn FdHandler>, interest: FdInterest) -> io::Result<u64> {
        let token = core.reserve();
        let fd = handler.fd();
        if let Err(e) = core.registry.register(&mut SourceFd(&fd), mio::Token(token as usize), interest.mio()) {
            core.remove(token);
            return Err(e);
        }
        log::debug!("{} watching fd {fd}", ConnId(token));
        if let Err(e) = guarded(|| handler.added(&mut CoreCx { core, token })) {
            core.stats.panics += 1;
            log::error!("{} fd {fd}: in added: {e}", ConnId(token));
            let _ = core.registry.deregister(&mut SourceFd(&fd));
            core.cancel_timers_of(token);
            core.remove(token);
            return Err(e.into());
        }
        core.put_back(token, Box::new(FdSource { handler }));
        // Already-ready descriptors are reported by the registration itself.
        Ok(token)
    }

    /// Stays, continues next turn, or leaves, as the handler said.
    fn next(&mut self, core: &mut Core, token: u64, next: Result<FdNext, Panic>) -> Fate {
        match next {
            Ok(FdNext::Wait) => Fate::Keep,
            Ok(FdNext::Again) => {
                core.ready.push(token);
                Fate::Keep
            }
            Ok(FdNext::Remove) => self.stop(core, token),
            Err(e) => {
                core.stats.panics += 1;
                log::error!("{} fd {}: {e}; removed from the loop", ConnId(token), self.handler.fd());
                self.stop(core, token)
            }
        }
    }
}

impl Source for FdSource {
    fn ready(&mut self, core: &mut Core, token: u64, r: Readiness) -> Fate {
        let next = guarded(|| self.handler.ready(r, &mut CoreCx { core, token }));
        self.next(core, token, next)
    }

    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, tag: u64) -> Fate {
        if kind != TimerKind::Proto {
            return Fate::Keep;
        }
        let next = guarded(|| self.handler.timer_fired(tag, &mut CoreCx { core, token }));
        self.next(core, token, next)
    }

    /// Leaves the loop: deregisters (the handler may keep its descriptor
    /// open), cancels its timers and calls `removed`.
    fn stop(&mut self, core: &mut Core, token: u64) -> Fate {
        let fd = self.handler.fd();
        let _ = core.registry.deregister(&mut SourceFd(&fd));
        core.cancel_timers_of(token);
        if let Err(e) = guarded(|| self.handler.removed(&mut CoreCx { core, token })) {
            core.stats.panics += 1;
            log::error!("{} fd {fd}: in removed: {e}", ConnId(token));
        }
        core.cancel_timers_of(token);
        log::debug!("{} stopped watching fd {fd}", ConnId(token));
        Fate::Done
    }

    fn is_fd(&self) -> bool {
        true
    }
}
