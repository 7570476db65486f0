//! Retry policy for clients: exponential back-off with jitter, a maximum
//! delay and a maximum number of retries (Twisted's `ReconnectingClientFactory`).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use twirl::Backoff;
//!
//! let mut b = Backoff::new(Duration::from_millis(100)).jitter(0.0).max_retries(3);
//! assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
//! assert_eq!(b.next_delay(), Some(Duration::from_millis(200)));
//! assert_eq!(b.next_delay(), Some(Duration::from_millis(400)));
//! assert_eq!(b.next_delay(), None);
//! b.reset();
//! assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
//! ```

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::addr::Addr;
use crate::protocol::{ClientFactory, Protocol};
use crate::transport::{Context, Disconnect};

/// Exponential back-off: each delay is the previous times `factor`, capped
/// at `max_delay`, spread by ±`jitter` (a fraction) so many clients that lost
/// the same server do not all come back at the same instant.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    max_retries: Option<u32>,
    retries: u32,
    rng: u64,
}

impl Backoff {
    /// Starts at `initial`, doubles, caps at 60 s, 10% jitter, retries forever.
    pub fn new(initial: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            initial,
            factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.1,
            max_retries: None,
            retries: 0,
            rng: seed | 1,
        }
    }

    /// Sets the growth factor (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// Sets the largest delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// Sets the jitter as a fraction of the delay (0 to 1).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// Gives up after `n` retries in a row.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Retries so far since the last reset.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Starts over (after a success).
    pub fn reset(&mut self) {
        self.retries = 0;
    }

    /// The delay before the next try, or `None` when retries are exhausted.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_retries.is_some_and(|m| self.retries >= m) {
            return None;
        }
        let exp = self.factor.powi(i32::try_from(self.retries).unwrap_or(i32::MAX));
        self.retries += 1;
        let base = (self.initial.as_secs_f64() * exp).min(self.max_delay.as_secs_f64());
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Some(Duration::from_secs_f64((base * spread).min(self.max_delay.as_secs_f64())))
    }
}

/// Lets a protocol or anyone else tell a [`Reconnecting`] factory to stop.
#[derive(Clone, Debug, Default)]
pub struct StopTrying(Rc<Cell<bool>>);

impl StopTrying {
    /// No more reconnects after the current connection ends.
    pub fn stop(&self) {
        self.0.set(true);
    }
    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.get()
    }
}

/// Wraps a [`ClientFactory`] so that failed and lost connections are retried
/// with [`Backoff`]; a successful connection resets the back-off.
pub struct Reconnecting<F> {
    /// The wrapped factory.
    pub inner: F,
    backoff: Backoff,
    stop: StopTrying,
}

impl<F: ClientFactory> Reconnecting<F> {
    /// Wraps `inner` with the given policy.
    pub fn new(inner: F, backoff: Backoff) -> Self {
        Reconnecting { inner, backoff, stop: StopTrying::default() }
    }

    /// A handle that stops further reconnects.
    pub fn stopper(&self) -> StopTrying {
        self.stop.clone()
    }

    fn retry(&mut self) -> Option<Duration> {
        if self.stop.is_stopped() {
            return None;
        }
        let d = self.backoff.next_delay();
        match d {
            Some(d) => log::info!("reconnecting in {:.2}s (retry {})", d.as_secs_f64(), self.backoff.retries()),
            None => log::warn!("giving up after {} retries", self.backoff.retries()),
        }
        d
    }
}

impl<F: ClientFactory> ClientFactory for Reconnecting<F> {
    fn build_protocol(&mut self, peer: &Addr) -> Box<dyn Protocol> {
        self.backoff.reset();
        self.inner.build_protocol(peer)
    }

    fn connection_failed(&mut self, error: &io::Error, cx: &mut dyn Context) -> Option<Duration> {
        let _ = self.inner.connection_failed(error, cx);
        self.retry()
    }

    fn connection_lost(&mut self, reason: &Disconnect, cx: &mut dyn Context) -> Option<Duration> {
        let _ = self.inner.connection_lost(reason, cx);
        self.retry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_at_max_delay_and_jitter_stays_in_band() {
        let mut b = Backoff::new(Duration::from_secs(1)).max_delay(Duration::from_secs(5)).jitter(0.2);
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().unwrap().as_secs_f64()).collect();
        assert!((0.8..=1.2).contains(&d[0]), "{d:?}");
        assert!((1.6..=2.4).contains(&d[1]), "{d:?}");
        assert!(d[4..].iter().all(|&x| (4.0..=5.0).contains(&x)), "{d:?}");
    }

    #[test]
    fn reconnecting_resets_on_success_and_obeys_stop() {
        struct Idle;
        impl Protocol for Idle {
            fn data_received(&mut self, _: &[u8], _: &mut dyn crate::Transport) {}
        }
        struct Nothing;
        impl ClientFactory for Nothing {
            fn build_protocol(&mut self, _: &Addr) -> Box<dyn Protocol> {
                Box::new(Idle)
            }
        }
        let mut f = Reconnecting::new(Nothing, Backoff::new(Duration::from_millis(10)).jitter(0.0));
        let mut h = crate::testing::Harness::new(Idle);
        let cx = &mut h.cx;
        let err = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(f.connection_failed(&err, cx), Some(Duration::from_millis(10)));
        assert_eq!(f.connection_failed(&err, cx), Some(Duration::from_millis(20)));
        let _ = f.build_protocol(&Addr::Unix(None));
        assert_eq!(f.connection_lost(&Disconnect::Clean, cx), Some(Duration::from_millis(10)));
        f.stopper().stop();
        assert_eq!(f.connection_lost(&Disconnect::Clean, cx), None);
    }
}
