//! `twirl arp`: seed 000's ARP (RFC 826) homework. `decode HEX` prints
//! every field of a frame; `watch IFACE` prints the requests and replies an
//! interface carries.

pub mod packet;
pub mod watch;
