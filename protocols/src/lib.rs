//! # twirl-protocols
//!
//! The socket-lab protocols as [`twirl`] plugins, their [`registry`], and
//! what the `twirl` command is made of. Each plugin module is a short lesson:
//! which lab it answers, how, and the few callbacks that do it.

#![warn(missing_docs)]

pub mod amf;
pub mod binarytime;
pub mod caps;
pub mod cat;
pub mod chargen;
pub mod chat;
pub mod client;
pub mod daytime;
pub mod deadlock;
pub mod discard;
pub mod echo;
pub mod icmp;
pub mod json;
pub mod registry;
pub mod reorder;
pub mod reverse;
pub mod serve;
pub mod sntp;
pub mod structs;
pub mod text;
pub mod time;
pub mod upper;
