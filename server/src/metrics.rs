//! Prometheus metrics, kept in a small registry of our own: request counts by route and status,
//! latency histograms by route and by engine stage, and decisions. (Hand-written because it is ~100
//! lines; a metrics crate would add a registry, exporters and globals we do not need.)

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: [f64; 12] = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (le, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    stages: BTreeMap<&'static str, Histogram>,
    decisions: BTreeMap<(&'static str, &'static str), u64>,
}

/// The service's metrics.
#[derive(Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.0.lock() {
            f(&mut inner);
        }
    }

    /// One finished request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|m| {
            *m.requests.entry((route.to_string(), status)).or_default() += 1;
            m.latency.entry(route.to_string()).or_default().observe(seconds);
        });
    }

    /// Time spent in the engine's stages for one photo.
    pub fn stages(&self, t: &wajah::Timings) {
        self.with(|m| {
            for (stage, ms) in [
                ("decode", t.decode_ms),
                ("detect", t.detect_ms),
                ("align", t.align_ms),
                ("quality", t.quality_ms),
                ("embed", t.embed_ms),
            ] {
                m.stages.entry(stage).or_default().observe(ms / 1e3);
            }
        });
    }

    /// A match decision of `operation` (verify, compare, identify).
    pub fn decision(&self, operation: &'static str, verdict: wajah::Verdict) {
        self.with(|m| *m.decisions.entry((operation, verdict.as_str())).or_default() += 1);
    }

    /// Prometheus text format, with `enrolled` searchable subjects.
    pub fn render(&self, enrolled: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP wajah_enrolled Searchable enrolled subjects.\n# TYPE wajah_enrolled gauge\n");
        let _ = writeln!(out, "wajah_enrolled {enrolled}");
        self.with(|m| {
            out.push_str("# HELP wajah_requests_total HTTP requests by route and status.\n# TYPE wajah_requests_total counter\n");
            for ((route, status), n) in &m.requests {
                let _ = writeln!(out, "wajah_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
            out.push_str("# HELP wajah_request_seconds Request latency by route.\n# TYPE wajah_request_seconds histogram\n");
            for (route, h) in &m.latency {
                h.render(&mut out, "wajah_request_seconds", &format!("route=\"{route}\""));
            }
            out.push_str("# HELP wajah_stage_seconds Engine time per photo by stage.\n# TYPE wajah_stage_seconds histogram\n");
            for (stage, h) in &m.stages {
                h.render(&mut out, "wajah_stage_seconds", &format!("stage=\"{stage}\""));
            }
            out.push_str("# HELP wajah_decisions_total Match decisions by operation and outcome.\n# TYPE wajah_decisions_total counter\n");
            for ((op, outcome), n) in &m.decisions {
                let _ = writeln!(out, "wajah_decisions_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}");
            }
        });
        out
    }
}
