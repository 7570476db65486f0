//! The plugins: one module per protocol, each with the lab it answers, its
//! server, its client and its [`Plugin`](crate::plugin::Plugin) entry
//! (`PLUGIN`), which [`registry`](crate::registry) lists.
//!
//! `echo` is the template for a new one.

pub mod amf;
pub mod binarytime;
pub mod caps;
pub mod chargen;
pub mod chat;
pub mod daytime;
pub mod discard;
pub mod echo;
pub mod http;
pub mod icmp;
pub mod json;
pub mod portforward;
pub mod reorder;
pub mod reverse;
pub mod sntp;
pub mod structs;
pub mod time;
pub mod upper;
