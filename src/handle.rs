//! Reaching the reactor from other threads: stop it, or run a function on
//! its thread (Twisted's `callFromThread`). A mio `Waker` interrupts `poll`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! let mut reactor = twirl::Reactor::new()?;
//! let handle = reactor.handle();
//! let worker = std::thread::spawn(move || {
//!     handle.call_from_thread(|r| {
//!         r.call_later(Duration::from_millis(1), |r| r.stop());
//!     });
//! });
//! reactor.run()?; // returns once the worker's call has stopped it
//! worker.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use mio::{Registry, Token, Waker};

use crate::reactor::Reactor;

type ThreadCall = Box<dyn FnOnce(&mut Reactor) + Send>;

pub(crate) struct Shared {
    waker: Waker,
    calls: Mutex<Vec<ThreadCall>>,
    stop: AtomicBool,
}

impl Shared {
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<Shared> {
        Ok(Shared { waker: Waker::new(registry, token)?, calls: Mutex::new(Vec::new()), stop: AtomicBool::new(false) })
    }

    pub(crate) fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn take_calls(&self) -> Vec<ThreadCall> {
        // A panic while holding this lock can only come from Vec::push
        // running out of memory; the queue itself stays consistent.
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake the reactor: {e}");
        }
    }
}

/// A cloneable, `Send` handle on a [`Reactor`], usable from any thread.
#[derive(Clone)]
pub struct ReactorHandle {
    pub(crate) shared: std::sync::Arc<Shared>,
}

impl ReactorHandle {
    /// Asks the reactor to stop gracefully, as SIGTERM does.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }

    /// Runs `f` on the reactor's thread at its next turn.
    pub fn call_from_thread(&self, f: impl FnOnce(&mut Reactor) + Send + 'static) {
        self.shared.calls.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
        self.shared.wake();
    }
}
