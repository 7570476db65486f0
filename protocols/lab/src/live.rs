//! The lab's runs as they happen, for `twirl deadlock --dashboard`: each
//! run's title, its samples (bytes sent, received, and held in twirl's
//! write buffers) as the watchdog takes them, and how it ended. The
//! watchdog writes; the dashboard's reactor reads a JSON copy.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::sample::Sample;

/// One run so far.
#[derive(Clone, Debug, Default)]
struct Run {
    number: usize,
    title: String,
    cap: Option<usize>,
    outcome: Option<String>,
    /// Milliseconds, sent, received, buffered.
    samples: Vec<(u64, u64, u64, u64)>,
}

/// A shared feed of the runs (cloning shares it). The default feeds no one.
#[derive(Clone, Default)]
pub struct Feed(Option<Arc<Mutex<Vec<Run>>>>);

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Feed(on)" } else { "Feed(off)" })
    }
}

impl Feed {
    /// A feed that records.
    pub fn new() -> Feed {
        Feed(Some(Arc::default()))
    }

    fn with(&self, f: impl FnOnce(&mut Vec<Run>)) {
        if let Some(runs) = &self.0
            && let Ok(mut runs) = runs.lock()
        {
            f(&mut runs);
        }
    }

    /// Run `number` begins.
    pub(crate) fn begin(&self, number: usize, title: &str, cap: Option<usize>) {
        self.with(|runs| runs.push(Run { number, title: title.to_string(), cap, ..Run::default() }));
    }

    /// A sample of the current run.
    pub(crate) fn sample(&self, s: &Sample) {
        self.with(|runs| {
            if let Some(run) = runs.last_mut() {
                run.samples.push((s.t.as_millis() as u64, s.sent, s.received, s.buffered));
            }
        });
    }

    /// Run `number` ended so.
    pub(crate) fn end(&self, number: usize, outcome: &str) {
        self.with(|runs| {
            if let Some(run) = runs.iter_mut().find(|r| r.number == number) {
                run.outcome = Some(outcome.to_string());
            }
        });
    }

    /// Everything so far, as JSON: `{"runs":[{"number","title","cap","outcome","samples":[[ms,sent,received,buffered],...]}]}`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"runs\":[");
        self.with(|runs| {
            for (i, r) in runs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let samples: Vec<String> =
                    r.samples.iter().map(|(t, s, rc, b)| format!("[{t},{s},{rc},{b}]")).collect();
                out.push_str(&format!(
                    "{{\"number\":{},\"title\":{},\"cap\":{},\"outcome\":{},\"samples\":[{}]}}",
                    r.number,
                    json_string(&r.title),
                    r.cap.map_or("null".to_string(), |c| c.to_string()),
                    r.outcome.as_deref().map_or("null".to_string(), json_string),
                    samples.join(",")
                ));
            }
        });
        out.push_str("]}");
        out
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn records_runs_and_writes_json() {
        let off = Feed::default();
        off.begin(1, "x", None);
        assert_eq!(off.to_json(), "{\"runs\":[]}");
        let f = Feed::new();
        f.begin(2, "a \"b\"", Some(10));
        f.sample(&Sample { t: Duration::from_millis(20), sent: 1, received: 2, buffered: 3 });
        f.end(2, "completed");
        assert_eq!(
            f.to_json(),
            "{\"runs\":[{\"number\":2,\"title\":\"a \\\"b\\\"\",\"cap\":10,\"outcome\":\"completed\",\"samples\":[[20,1,2,3]]}]}"
        );
    }
}
