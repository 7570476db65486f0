//! Containing panics: a bug in one protocol's callback must not take the
//! reactor, and everyone else's connections, down with it.
//!
//! Every callback into plugin code runs inside [`guarded`]. A panic becomes
//! a [`Panic`] carrying its message (shown as "protocol panicked: ..."), the caller
//! aborts just the connection concerned and logs it with the plugin's name
//! and the peer, and the loop goes on. Catching costs nothing until a panic
//! happens: unwinding tables, no runtime checks.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into an error.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic
/// the protocol whose state may be torn is dropped with its connection, and
/// the reactor's own state is only touched through the transport, whose
/// methods leave it consistent at every return.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panic(message(&*p).to_string()))
}

/// A caught panic: its message.
#[derive(Debug)]
pub(crate) struct Panic(pub String);

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol panicked: {}", self.0)
    }
}

impl From<Panic> for io::Error {
    fn from(p: Panic) -> io::Error {
        io::Error::other(p.to_string())
    }
}

impl From<Panic> for crate::transport::Disconnect {
    fn from(p: Panic) -> Self {
        crate::transport::Disconnect::Panicked(p.0)
    }
}

fn message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let e = guarded(|| -> u8 { panic!("boom {}", 7) }).unwrap_err();
        let s = guarded(|| -> u8 { std::panic::panic_any("static") }).unwrap_err();
        std::panic::set_hook(prev);
        assert_eq!(e.to_string(), "protocol panicked: boom 7");
        assert_eq!(s.to_string(), "protocol panicked: static");
        assert_eq!(guarded(|| 5).unwrap(), 5);
    }
}
