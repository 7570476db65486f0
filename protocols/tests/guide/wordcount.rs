//! `wordcount`: answers each line, or each datagram, with how many words
//! it has (the plugin written step by step in the guide, §3).

use std::net::SocketAddr;

use twirl::line::{LineHandler, LineReceiver, Lines};
use twirl::{Addr, DatagramProtocol, DatagramTransport};

use crate::plugin::Plugin;
use crate::sample::{Answer, Sample, Via};

/// How many words `text` has.
pub fn count(text: &[u8]) -> usize {
    text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).count()
}

/// Over a stream: one answer line per line.
pub struct WordCount;

impl LineHandler for WordCount {
    fn line_received(&mut self, line: &[u8], t: &mut Lines<'_>) {
        t.write(format!("{}\n", count(line)).as_bytes());
    }
}

/// Over UDP: one answer datagram per datagram, back to its sender.
pub struct WordCountUdp;

impl DatagramProtocol for WordCountUdp {
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr, t: &mut dyn DatagramTransport) {
        t.send_to(format!("{}\n", count(data)).as_bytes(), from);
    }
}

/// The registry entry.
pub const PLUGIN: Plugin = Plugin {
    name: "wordcount",
    summary: "answers each line (or datagram) with its number of words",
    lab: "the guide, section 3",
    defaults: &["tcp:7200", "udp:7200"],
    options: &[],
    stream: Some(|_| Box::new(|_: &Addr| LineReceiver::new(WordCount))),
    datagram: Some(|_| Box::new(WordCountUdp)),
    client: None,
    client_flags: &[],
    // One exchange per transport: the shared tests run them.
    samples: &[
        Sample { via: Via::Stream, request: b"one two three\n", answer: Answer::Exact(b"3\n") },
        Sample { via: Via::Datagram, request: b"a b", answer: Answer::Exact(b"2\n") },
    ],
    raw: None,
};
