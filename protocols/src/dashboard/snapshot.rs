//! The numbers the dashboard shows, as one JSON document: the reactor's
//! [`Stats`](twirl::Stats) (every field of its `key=value` line, so a new
//! counter shows up by itself), its limits and budgets, each watched
//! listener's tally, and each open connection's write buffer.

use std::time::Instant;

use serde_json::{Map, Value, json};
use twirl::{Reactor, Stats};

use super::watch::SharedTally;

/// Every reactor's stats, given this one's (the reactors of a group).
pub type AllStats = dyn Fn(&Stats) -> Vec<Stats>;

/// The most connections listed one by one (the rest are counted).
pub const MAX_LISTED: usize = 64;

/// Every field of a stats line (`key=value ...`) as a JSON object of numbers.
///
/// ```
/// let r = twirl::Reactor::new().unwrap();
/// let o = twirl_protocols::dashboard::snapshot::stats_object(&r.stats().to_string());
/// assert_eq!(o["turns"], 0);
/// assert!(o.contains_key("timers_pending"));
/// ```
pub fn stats_object(line: &str) -> Map<String, Value> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(v))))
        .collect()
}

/// The document served at `/stats.json`, taken now (`started`: when the
/// dashboard began, for the `t_ms` clock the page computes rates with).
/// With `threads`, `stats` is the total over every reactor and `threads`
/// lists each one's.
pub fn take(reactor: &mut Reactor, tallies: &[SharedTally], started: Instant, threads: Option<&AllStats>) -> Value {
    let config = reactor.config();
    let limits = config.limits;
    let budgets = json!({
        "memory_budget": config.memory_budget,
        "read_budget": config.read_budget,
        "write_budget": config.write_budget,
        "accept_budget": config.accept_budget,
    });
    let mut listeners = Vec::new();
    let mut conns = Vec::new();
    let mut total = 0;
    for tally in tallies {
        let (ids, entry) = {
            let t = tally.borrow();
            let entry = json!({
                "name": t.name, "endpoint": t.endpoint, "accepted": t.accepted, "open": t.open.len(),
                "closed": t.closed, "pauses": t.pauses, "resumes": t.resumes,
            });
            (t.open.iter().copied().collect::<Vec<_>>(), entry)
        };
        listeners.push(entry);
        total += ids.len();
        let name = tally.borrow().name.clone();
        for id in ids.into_iter().take(MAX_LISTED.saturating_sub(conns.len())) {
            let mut buffered = 0;
            let mut paused = false;
            reactor.with_transport(id, |t| {
                buffered = t.buffered_len();
                paused = t.writing_paused();
            });
            conns.push(json!({
                "id": id.to_string(), "listener": name, "buffered": buffered, "paused": paused,
            }));
        }
    }
    let own = reactor.stats();
    let (stats, each) = match threads {
        Some(all) => {
            let each = all(&own);
            let mut total = Stats::default();
            for s in &each {
                total += s;
            }
            (total, each.iter().map(|s| Value::Object(stats_object(&s.to_string()))).collect())
        }
        None => (own, Vec::new()),
    };
    json!({
        "t_ms": started.elapsed().as_millis() as u64,
        "stats": stats_object(&stats.to_string()),
        "threads": each,
        "limits": { "high_water": limits.high_water, "low_water": limits.low_water, "hard_cap": limits.hard_cap },
        "budgets": budgets,
        "listeners": listeners,
        "connections": conns,
        "connections_total": total,
    })
}
