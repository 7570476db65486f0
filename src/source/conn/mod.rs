//! A stream connection in the reactor: the [state machine](machine) on a
//! socket, as a [`Source`] in the loop.

pub(crate) mod machine;

use std::rc::Rc;

use crate::addr::Addr;
use crate::core::idle::Idleness;
use crate::core::{Core, CoreCx, Fate, Readiness, Source, TimerKind};
use crate::flow::Payload;
use crate::policy::Policy;
use crate::protocol::Protocol;
use crate::source::socket::Stream;
use crate::stats::Stats;
use crate::transport::{ConnId, Disconnect, Transport};

use machine::ConnIo;

/// Told when a connection ends, after its protocol: a client's factory,
/// which may connect again. An accepted connection has nothing to tell
/// (`()`, which takes no room: a connection's size is what an idle one
/// costs).
pub(crate) trait OnEnd: 'static {
    fn ended(&mut self, core: &mut Core, reason: &Disconnect);
}

impl OnEnd for () {
    fn ended(&mut self, _: &mut Core, _: &Disconnect) {}
}

pub(crate) struct Conn<E: OnEnd> {
    protocol: Box<dyn Protocol>,
    io: ConnIo<Stream>,
    on_end: E,
}

impl<E: OnEnd> Conn<E> {
    /// Puts a connected socket, already registered under `token`, in the
    /// loop: `connection_made`, then whatever that asked for.
    pub(crate) fn start(
        core: &mut Core,
        token: u64,
        protocol: Box<dyn Protocol>,
        (stream, peer): (Stream, Addr),
        policy: Rc<Policy>,
        on_end: E,
    ) {
        let io = ConnIo::new(ConnId(token), stream, peer, policy);
        let mut conn = Box::new(Conn { protocol, io, on_end });
        let mut cx = CoreCx { core, token };
        machine::start_idle(&mut conn.io, &mut cx);
        let ended = machine::start(&mut *conn.protocol, &mut conn.io, &mut cx);
        match conn.outcome(core, token, ended) {
            Fate::Done => core.remove(token),
            Fate::Keep | Fate::Replaced => core.put_back(token, conn),
        }
    }

    /// Keeps the connection, or ends it for `ended`'s reason.
    fn outcome(&mut self, core: &mut Core, token: u64, ended: Option<Disconnect>) -> Fate {
        match ended {
            None => Fate::Keep,
            Some(reason) => {
                self.end_with(core, token, reason);
                Fate::Done
            }
        }
    }

    fn end_with(&mut self, core: &mut Core, token: u64, reason: Disconnect) {
        machine::finish(&mut *self.protocol, &mut self.io, &mut CoreCx { core, token }, &reason);
        self.io.policy.release(&self.io.peer.addr());
        self.on_end.ended(core, &reason);
    }
}

impl<E: OnEnd> Source for Conn<E> {
    fn ready(&mut self, core: &mut Core, token: u64, r: Readiness) -> Fate {
        let mut buf = std::mem::take(&mut core.read_buf);
        let n = crate::core::stream_read_buffer(&core.config).min(buf.len());
        let ended = machine::ready(&mut *self.protocol, &mut self.io, &mut CoreCx { core, token }, r, &mut buf[..n]);
        core.read_buf = buf;
        self.outcome(core, token, ended)
    }

    fn timer(&mut self, core: &mut Core, token: u64, kind: TimerKind, tag: u64) -> Fate {
        let ended = machine::timer(&mut *self.protocol, &mut self.io, &mut CoreCx { core, token }, kind, tag);
        self.outcome(core, token, ended)
    }

    fn settle(&mut self, core: &mut Core, token: u64) -> Fate {
        let ended = machine::settle(&mut *self.protocol, &mut self.io, &mut CoreCx { core, token });
        self.outcome(core, token, ended)
    }

    fn stop(&mut self, core: &mut Core, token: u64) -> Fate {
        if self.protocol.is_layer() {
            // A layer (TLS) closes in its own words first (close_notify).
            let cx = &mut CoreCx { core, token };
            let ended = machine::with_transport(&mut *self.protocol, &mut self.io, cx, &mut |t| t.lose_connection());
            return self.outcome(core, token, ended);
        }
        self.io.closing = true;
        self.settle(core, token)
    }

    fn end(&mut self, core: &mut Core, token: u64) -> Fate {
        // Everything sent and only the peer's EOF awaited, as when a
        // lingering close runs out: a clean end. Output left unsent: not.
        let why = if self.io.lingering && self.io.wbuf.is_empty() { Disconnect::Clean } else { Disconnect::Stopped };
        self.end_with(core, token, why);
        Fate::Done
    }

    fn write(&mut self, data: Payload<'_>, stats: &mut Stats) -> bool {
        // From outside its callbacks: nothing to cork.
        self.io.write(data, stats, None)
    }

    fn wants_settle(&self) -> bool {
        machine::wants_settle(&self.io)
    }

    fn close(&mut self) -> bool {
        self.io.closing = true;
        true
    }

    fn abort(&mut self, why: Disconnect) -> bool {
        self.io.end(why);
        true
    }

    fn idleness(&self, now_ms: u32) -> Idleness {
        machine::idleness(&self.io, now_ms)
    }

    fn buffered(&self) -> Option<usize> {
        Some(self.io.wbuf.len())
    }

    fn is_layered(&self) -> bool {
        self.protocol.is_layer()
    }

    fn with_transport(&mut self, core: &mut Core, token: u64, f: &mut dyn FnMut(&mut dyn Transport)) -> Option<Fate> {
        let ended = machine::with_transport(&mut *self.protocol, &mut self.io, &mut CoreCx { core, token }, f);
        Some(self.outcome(core, token, ended))
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection's memory is this struct and its slab slot (the
    /// idle timeout is a sweep, not a timer each): keep it small.
    #[test]
    fn a_connection_stays_small() {
        // Issue #13 asks for at most 128 bytes: 88 here (96 from malloc),
        // 24 in the slab, 4 of generation. In debug builds mio adds a
        // selector id to every socket.
        let limit = if cfg!(debug_assertions) { 104 } else { 88 };
        let conn = std::mem::size_of::<super::Conn<()>>();
        assert!(conn <= limit, "Conn grew to {conn} bytes");
    }
}
