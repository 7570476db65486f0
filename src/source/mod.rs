//! The sources: everything that sits in the loop, each a [`crate::core::Source`].
//!
//! - [`socket`]: the TCP and Unix sockets, as byte pipes and listeners;
//! - [`conn`]: a stream connection, and its state machine;
//! - [`listener`]: accepting, with caps and a back-off;
//! - [`connector`]: connecting, and retrying;
//! - [`resolving`]: a connect or a UDP socket waiting for its host name;
//! - [`udp`]: a UDP socket;
//! - [`fd`]: any other descriptor, with a handler of its own.
//!
//! A source knows the core and the layers below it, never the public
//! `Reactor` above; sources do not know each other, except that listeners
//! and connectors make connections.

pub(crate) mod conn;
pub(crate) mod connector;
pub mod fd;
pub(crate) mod listener;
pub(crate) mod resolving;
pub(crate) mod socket;
pub(crate) mod udp;
