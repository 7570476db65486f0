//! Timer memory and scaling: bytes per pending timer with 1M pending (heap
//! bytes counted by a counting allocator, and RSS), and nanoseconds per
//! schedule, cancel and fire with 1k, 100k and 1M pending.
//!
//! `timers [--pending 1000000]` prints one `RESULT key=value ...` line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use twirl::Reactor;
use twirl::timer::{TimerHandle, TimerQueue};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss() -> u64 {
    twirl_bench::read_rss(std::process::id()).unwrap_or(0)
}

/// xorshift64: deadlines spread over a second, reproducibly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn delay(&mut self) -> Duration {
        Duration::from_nanos(self.next() % 1_000_000_000)
    }
}

/// ns per schedule, cancel and fire with `pending` timers queued, in steady
/// state (the queue keeps its size, so no growth of its vectors is timed):
/// schedule one timer and cancel it; fire the earliest and schedule another.
fn scaling(pending: usize) -> (f64, f64, f64) {
    const OPS: usize = 200_000;
    let t0 = Instant::now();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut q: TimerQueue<u64> = TimerQueue::new(t0);
    for i in 0..pending {
        q.schedule(t0, rng.delay(), None, i as u64);
    }
    // Warm up: let the queue reach its steady capacity (stale entries from
    // lazy cancellation included).
    for _ in 0..OPS {
        let h = q.schedule(t0, rng.delay(), None, 0);
        q.cancel(h);
    }
    let mut handles = Vec::with_capacity(1024);
    let (mut sched_ns, mut cancel_ns) = (0u128, 0u128);
    for _ in 0..OPS / 1024 {
        let start = Instant::now();
        for _ in 0..1024 {
            handles.push(q.schedule(t0, rng.delay(), None, 0));
        }
        let mid = Instant::now();
        for h in handles.drain(..) {
            q.cancel(h);
        }
        cancel_ns += mid.elapsed().as_nanos();
        sched_ns += mid.duration_since(start).as_nanos();
    }
    let n = (OPS / 1024 * 1024) as f64;
    // Fire: everything is due an hour on; replace each timer fired by one
    // that is due then too.
    let later = t0 + Duration::from_secs(3600);
    let start = Instant::now();
    let mut fired = 0u64;
    for i in 0..OPS {
        if q.pop_due(later).is_some() {
            fired += 1;
        }
        q.schedule(t0, rng.delay(), None, i as u64);
    }
    let fire = start.elapsed().as_nanos() as f64 / fired.max(1) as f64;
    std::hint::black_box(&q);
    (sched_ns as f64 / n, cancel_ns as f64 / n, fire)
}

fn main() {
    let args = match twirl_bench::Args::from_env() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("timers: {e}");
            std::process::exit(2);
        }
    };
    let n: usize = args.num("pending", 1_000_000).unwrap_or(1_000_000).max(1);

    // The reactor's own queue, through its public API: closures capturing
    // nothing, so the boxes allocate nothing and only the queue is counted.
    let mut reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("timers: cannot start a reactor: {e}");
            std::process::exit(1);
        }
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (heap0, rss0) = (live(), rss());
    let handles: Vec<TimerHandle> =
        (0..n).map(|_| reactor.call_later(Duration::from_secs(60) + rng.delay(), |_| {})).collect();
    let handle_bytes = handles.capacity() * std::mem::size_of::<TimerHandle>();
    let reactor_heap = (live() - heap0 - handle_bytes) as f64 / n as f64;
    let reactor_rss = (rss().saturating_sub(rss0) as f64 - handle_bytes as f64) / n as f64;
    for h in handles.iter().step_by(2) {
        reactor.cancel_timer(*h);
    }
    let after_cancel = (live() - heap0 - handle_bytes) as f64 / (n / 2).max(1) as f64;
    drop(handles);
    drop(reactor);

    let (heap0, rss0) = (live(), rss());
    let t0 = Instant::now();
    let mut q: TimerQueue<u64> = TimerQueue::new(t0);
    for i in 0..n {
        q.schedule(t0, rng.delay(), None, i as u64);
    }
    let queue_heap = (live() - heap0) as f64 / n as f64;
    let queue_rss = rss().saturating_sub(rss0) as f64 / n as f64;
    drop(q);

    let (s1k, c1k, f1k) = scaling(1_000);
    let (s100k, c100k, f100k) = scaling(100_000);
    let (s1m, c1m, f1m) = scaling(n);
    println!(
        "RESULT pending={n} reactor_heap_bytes_per_timer={reactor_heap:.1} reactor_rss_bytes_per_timer={reactor_rss:.1} \
         reactor_heap_bytes_per_live_timer_after_half_cancelled={after_cancel:.1} \
         queue_u64_heap_bytes_per_timer={queue_heap:.1} queue_u64_rss_bytes_per_timer={queue_rss:.1} \
         schedule_ns_1k={s1k:.1} cancel_ns_1k={c1k:.1} fire_ns_1k={f1k:.1} \
         schedule_ns_100k={s100k:.1} cancel_ns_100k={c100k:.1} fire_ns_100k={f100k:.1} \
         schedule_ns_1m={s1m:.1} cancel_ns_1m={c1m:.1} fire_ns_1m={f1m:.1}"
    );
}
