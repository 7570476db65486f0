//! The timer queue with 1,000,000 timers pending: schedule, cancel, fire.
//! (Memory per pending timer is measured by the `timers` binary, which
//! counts allocations; `bench` reports it against the 64-byte target.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use twirl::timer::TimerQueue;

struct Rng(u64);
impl Rng {
    fn delay(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_nanos(self.0 % 1_000_000_000)
    }
}

fn filled(n: usize, t0: Instant, rng: &mut Rng) -> TimerQueue<u64> {
    let mut q = TimerQueue::new(t0);
    for i in 0..n {
        q.schedule(t0, rng.delay(), None, i as u64);
    }
    q
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_queue");
    for n in [1_000usize, 1_000_000] {
        let t0 = Instant::now();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut q = filled(n, t0, &mut rng);
        // Schedule one and cancel it: the queue stays at n pending.
        g.bench_with_input(BenchmarkId::new("schedule_cancel", n), &n, |b, _| {
            b.iter(|| {
                let h = q.schedule(t0, rng.delay(), None, 0);
                black_box(q.cancel(h));
            })
        });
        // Fire the earliest due timer and schedule a replacement that is due too.
        let later = t0 + Duration::from_secs(3600);
        g.bench_with_input(BenchmarkId::new("fire_and_replace", n), &n, |b, _| {
            b.iter(|| {
                let f = q.pop_due(later);
                q.schedule(t0, rng.delay(), None, 0);
                black_box(f)
            })
        });
        black_box(q.len());
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = timers
}
criterion_main!(benches);
