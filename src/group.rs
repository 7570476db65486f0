//! Reactors that serve together, one per thread (`twirl serve --threads N`),
//! and how the protocols of one reach those of another.
//!
//! Each reactor shares nothing with the others on the hot path: its own
//! sockets (the kernel spreads connections across listeners bound with
//! `SO_REUSEPORT`, [`crate::Config::reuse_port`]), its own connections,
//! its own state. State that must be seen across threads (a chat room whose
//! members landed on different threads) is kept per thread and kept in
//! step by *messages*: a closure posted to each other reactor's
//! [`ReactorHandle`], run on that reactor's thread at its next turn, in the
//! order posted. No lock is taken per connection or per message; a post
//! costs one queue push and one wake-up of the target loop.
//!
//! Whoever starts the threads makes the group ([`Group::of`]) and each
//! thread [`enter`](Group::enter)s its member before building its
//! protocols, which find it with [`Group::current`].
//!
//! # Examples
//!
//! ```
//! use std::sync::mpsc;
//! use twirl::Reactor;
//! use twirl::group::Group;
//!
//! let (a, b) = (Reactor::new()?, Reactor::new()?);
//! let members = Group::of(vec![a.handle(), b.handle()]);
//! assert_eq!((members[1].index(), members[1].len()), (1, 2));
//! let (tx, rx) = mpsc::channel();
//! members[0].post_to_others(move |_r: &mut Reactor| {
//!     let _ = tx.send("ran on the other reactor's thread");
//! });
//! let mut b = b;
//! b.call_later(std::time::Duration::from_millis(10), |r| r.stop());
//! b.run()?;
//! assert!(rx.try_recv().is_ok());
//! # drop(a);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::sync::Arc;

use crate::handle::ReactorHandle;
use crate::reactor::Reactor;

/// One reactor's place in a group of reactors serving together.
#[derive(Clone)]
pub struct Group {
    handles: Arc<[ReactorHandle]>,
    index: usize,
}

thread_local! {
    /// The member this thread entered.
    static CURRENT: RefCell<Option<Group>> = const { RefCell::new(None) };
}

impl Group {
    /// The members of a group of these reactors, in order (member `i` is
    /// the reactor of `handles[i]`).
    pub fn of(handles: Vec<ReactorHandle>) -> Vec<Group> {
        let handles: Arc<[ReactorHandle]> = handles.into();
        (0..handles.len()).map(|index| Group { handles: handles.clone(), index }).collect()
    }

    /// This reactor's number in the group, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many reactors serve together.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True for a group of none (never made by [`Group::of`] with handles).
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `f` on every other reactor of the group, on its own thread, at
    /// its next turn. Posts from one thread reach each other reactor in
    /// the order they were made.
    pub fn post_to_others(&self, f: impl Fn(&mut Reactor) + Send + Sync + Clone + 'static) {
        for (i, h) in self.handles.iter().enumerate() {
            if i != self.index {
                h.call_from_thread(f.clone());
            }
        }
    }

    /// The handles of every reactor, this one's included (at [`index`](Self::index)).
    pub fn handles(&self) -> &[ReactorHandle] {
        &self.handles
    }

    /// Makes this the group the current thread's protocols see.
    pub fn enter(self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self));
    }

    /// The group the current thread entered, if any (none: a reactor
    /// serving alone).
    pub fn current() -> Option<Group> {
        CURRENT.with(|c| c.borrow().clone())
    }
}
