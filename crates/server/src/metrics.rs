//! Process counters for `/metrics` (Prometheus text exposition format 0.0.4).
//!
//! Counters are relaxed atomics bumped on the request path; gauges about streams,
//! chunks and clips are read from the engine at scrape time, so nothing here can
//! drift from the truth.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Appends one metric family with a single unlabelled sample to `out`: its `HELP`
/// and `TYPE` lines (`kind`: `counter` or `gauge`) and its value. Every part of the
/// server renders its `/metrics` rows through this.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Request and ingest counters.
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 6],
    ingest_ok: AtomicU64,
    ingest_errors: AtomicU64,
    ingest_bytes: AtomicU64,
}

impl Metrics {
    /// Counts one answered request by status class (1xx..5xx).
    pub fn record_request(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.by_class[class].fetch_add(1, Relaxed);
    }

    /// Counts one accepted upload of `bytes`.
    pub fn record_ingest(&self, bytes: usize) {
        self.ingest_ok.fetch_add(1, Relaxed);
        self.ingest_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts one refused upload.
    pub fn record_ingest_error(&self) {
        self.ingest_errors.fetch_add(1, Relaxed);
    }

    /// Renders the counters followed by `gauges` (name, help, value).
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP dvrclip_http_requests_total Requests answered, by status class.\n");
        out.push_str("# TYPE dvrclip_http_requests_total counter\n");
        for (class, n) in self.by_class.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "dvrclip_http_requests_total{{class=\"{class}xx\"}} {}",
                n.load(Relaxed)
            );
        }
        let counters = [
            (
                "dvrclip_ingest_uploads_total",
                "Uploads accepted.",
                &self.ingest_ok,
            ),
            (
                "dvrclip_ingest_errors_total",
                "Uploads refused.",
                &self.ingest_errors,
            ),
            (
                "dvrclip_ingest_bytes_total",
                "Bytes accepted.",
                &self.ingest_bytes,
            ),
        ];
        for (name, help, v) in counters {
            family(&mut out, name, "counter", help, v.load(Relaxed));
        }
        for (name, help, v) in gauges {
            family(&mut out, name, "gauge", help, *v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let m = Metrics::default();
        m.record_request(200);
        m.record_request(404);
        m.record_request(404);
        m.record_ingest(10);
        let text = m.render(&[("dvrclip_streams", "Streams.", 3)]);
        assert!(text.contains("dvrclip_http_requests_total{class=\"4xx\"} 2\n"));
        assert!(text.contains("dvrclip_ingest_bytes_total 10\n"));
        assert!(text.contains("# TYPE dvrclip_streams gauge\ndvrclip_streams 3\n"));
    }
}
