//! # twirl-protocols
//!
//! The socket-lab protocols as [`twirl`] plugins. Each module under
//! [`plugins`] is a short lesson: which lab it answers, how, and the few
//! callbacks that do it.
//!
//! The rooms, from the bottom up:
//!
//! - [`plugin`]: what a plugin is (the [`Plugin`](plugin::Plugin) entry, its client's
//!   signature and error);
//! - [`exchange`] and [`text`]: the plumbing the plugins share (clients that
//!   wait for one reply, text-line framing);
//! - [`client_args`]: the flags a plugin's client takes, and the check of unknown ones;
//! - [`sample`]: the sample exchange each plugin's entry carries for the shared tests;
//! - [`options`]: the `KEY=VALUE` options a plugin declares and `twirl serve` passes it;
//! - [`plugins`]: one module per protocol;
//! - [`registry`]: the list of plugins, [`PLUGINS`](registry::PLUGINS), and [`find`](registry::find);
//! - [`serve`]: `PLUGIN[@ENDPOINT]` words to bound listeners;
//! - [`dashboard`]: `--dashboard`, the reactor's numbers live in a browser
//!   (served with the `http` plugin's parser).
//!
//! The `twirl` command itself is the `twirl-cli` crate (`protocols/cli`),
//! and the deadlock lab is `twirl-lab` (`protocols/lab`).

#![warn(missing_docs)]

pub mod client_args;
pub mod dashboard;
pub mod exchange;
pub mod options;
pub mod plugin;
pub mod plugins;
pub mod registry;
pub mod sample;
pub mod serve;
pub mod text;
