//! A connect or a UDP socket waiting for its host name: the name is
//! resolved on a resolver thread (the loop never blocks on DNS), which
//! leaves its answer here and fires this source's [`TimerKind::Resolved`];
//! then whatever waited takes over the same slot, so the id given out at
//! the start stays true.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::core::{Core, Fate, Readiness, Source, TimerKind};
use crate::transport::Disconnect;

/// Where a resolver thread leaves its answer.
pub(crate) type Answer = Arc<Mutex<Option<io::Result<SocketAddr>>>>;

/// What waits for an address: a stream client, or a UDP socket to open.
pub(crate) trait AfterResolve {
    /// The name resolved to `addr`: go on in the slot `token`.
    fn resolved(self: Box<Self>, core: &mut Core, token: u64, addr: SocketAddr) -> Fate;
    /// It did not resolve, or the wait was cancelled.
    fn failed(self: Box<Self>, core: &mut Core, e: io::Error);
}

/// What a connect closed or aborted by id before it connected reports.
pub(crate) fn cancelled(why: &Disconnect) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, format!("connect cancelled: {why}"))
}

/// The stand-in while a name is resolved.
pub(crate) struct Resolving {
    waiting: Option<Box<dyn AfterResolve>>,
    answer: Answer,
    cancelled: Option<Disconnect>,
}

impl Resolving {
    pub(crate) fn new(waiting: Box<dyn AfterResolve>, answer: Answer) -> Resolving {
        Resolving { waiting: Some(waiting), answer, cancelled: None }
    }
}

impl Source for Resolving {
    fn ready(&mut self, _: &mut Core, _: u64, _: Readiness) -> Fate {
        Fate::Keep
    }

    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, _: u64) -> Fate {
        if kind != TimerKind::Resolved {
            return Fate::Keep;
        }
        let answer = self.answer.lock().map(|mut a| a.take()).unwrap_or(None);
        let (Some(answer), Some(waiting)) = (answer, self.waiting.take()) else { return Fate::Keep };
        match answer {
            Ok(addr) => waiting.resolved(core, token, addr),
            Err(e) => {
                waiting.failed(core, e);
                Fate::Done
            }
        }
    }

    fn abort(&mut self, why: Disconnect) -> bool {
        self.cancelled = Some(why);
        true
    }

    fn close(&mut self) -> bool {
        self.abort(Disconnect::AbortedByOther)
    }

    fn stop_listening(&mut self) -> bool {
        self.abort(Disconnect::AbortedByOther)
    }

    fn settle(&mut self, core: &mut Core, _: u64) -> Fate {
        match (self.cancelled.take(), self.waiting.take()) {
            (Some(why), Some(waiting)) => {
                waiting.failed(core, cancelled(&why));
                Fate::Done
            }
            (_, waiting) => {
                self.waiting = waiting;
                Fate::Keep
            }
        }
    }

    fn stop(&mut self, _: &mut Core, _: u64) -> Fate {
        Fate::Done
    }
}
