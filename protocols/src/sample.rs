//! One sample exchange per plugin and transport, carried in its registry
//! entry ([`Plugin::samples`](crate::plugin::Plugin::samples)): a request
//! a well-behaved client sends and how to judge the answer.
//!
//! The shared end-to-end tests (`protocols/tests/support`) run every
//! plugin's samples against a real server, under faults, churn and hostile
//! neighbours; a new plugin is covered by them as soon as its entry
//! carries a sample for each transport it speaks (a registry test checks
//! that it does).
//!
//! # Examples
//!
//! ```
//! use twirl_protocols::sample::{Answer, Sample, Via};
//!
//! const ECHO_TCP: Sample = Sample { via: Via::Stream, request: b"ping\n", answer: Answer::Exact(b"ping\n") };
//! assert!(ECHO_TCP.judge(b"ping\n").is_ok());
//! assert!(ECHO_TCP.judge(b"pong\n").is_err());
//! ```

/// How the request travels and where the answer comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Connect, send the request, half-close, read until the server closes
    /// (cleanly: a reset fails the sample).
    Stream,
    /// Connect, send the request, read this many bytes (a server that
    /// keeps sending, such as chargen).
    StreamFirst(usize),
    /// One datagram; the answer comes back to the sending socket.
    Datagram,
    /// One datagram; the answer goes to the sender's port + 1 (reorder).
    DatagramToNextPort,
}

impl Via {
    /// True for the stream forms (TCP and Unix).
    pub fn is_stream(self) -> bool {
        matches!(self, Via::Stream | Via::StreamFirst(_))
    }
}

/// What a good answer is.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// Exactly these bytes.
    Exact(&'static [u8]),
    /// Whatever this check accepts (an answer that depends on the clock,
    /// the peer's address...); its error says what is wrong.
    Check(fn(&[u8]) -> Result<(), String>),
    /// No answer at all (discard over UDP): nothing to judge.
    Nothing,
}

/// A request and how to judge its answer.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// How it travels.
    pub via: Via,
    /// The bytes a client sends.
    pub request: &'static [u8],
    /// A good answer.
    pub answer: Answer,
}

impl Sample {
    /// Judges an answer: `Ok` when it is a good one, else what is wrong.
    pub fn judge(&self, got: &[u8]) -> Result<(), String> {
        match self.answer {
            Answer::Exact(want) if got == want => Ok(()),
            Answer::Exact(want) => Err(format!(
                "got {:?}, want {:?}",
                String::from_utf8_lossy(&got[..got.len().min(300)]),
                String::from_utf8_lossy(want)
            )),
            Answer::Check(f) => f(got),
            Answer::Nothing => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_by_its_answer() {
        let s = Sample {
            via: Via::Datagram,
            request: b"x",
            answer: Answer::Check(|b| if b.len() == 2 { Ok(()) } else { Err("len".into()) }),
        };
        assert!(s.judge(b"ab").is_ok());
        assert_eq!(s.judge(b"a"), Err("len".to_string()));
        let n = Sample { via: Via::Datagram, request: b"x", answer: Answer::Nothing };
        assert!(n.judge(b"anything").is_ok());
        assert!(Via::StreamFirst(3).is_stream() && !Via::DatagramToNextPort.is_stream());
    }
}
