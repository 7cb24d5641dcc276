//! Percentiles and the printed table.

use serde::Serialize;

/// Percentiles of a sample, nearest-rank.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pct {
    /// Sample size.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
}

impl Pct {
    /// Percentiles of `v`; `None` when empty.
    pub fn of(mut v: Vec<f64>) -> Option<Pct> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Pct {
            n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[n - 1],
            min: v[0],
            mean: v.iter().sum::<f64>() / n as f64,
        })
    }
}

/// The median of a few numbers (rounds of a burst).
pub fn median(v: &[f64]) -> Option<f64> {
    Pct::of(v.to_vec()).map(|p| p.p50)
}

/// A target from the issue: the value must be at most, or at least, this.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// `value ≤ x`.
    AtMost(f64),
    /// `value ≥ x`.
    AtLeast(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(x) => v <= x,
            Goal::AtLeast(x) => v >= x,
        }
    }
}

/// The unit a value is printed in.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Megabytes (MiB, from KiB readings).
    Mb,
    /// Tickets per second.
    PerSec,
    /// A plain count.
    Count,
    /// A ratio of two measurements.
    Ratio,
}

fn fmt(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms if v.abs() < 10.0 => format!("{v:.2} ms"),
        Unit::Ms if v.abs() < 1000.0 => format!("{v:.1} ms"),
        Unit::Ms => format!("{:.2} s", v / 1000.0),
        Unit::Mb => format!("{v:.1} MB"),
        Unit::PerSec => format!("{v:.0}/s"),
        Unit::Count => format!("{v:.0}"),
        Unit::Ratio => format!("{v:.2}×"),
    }
}

struct Row {
    phase: String,
    metric: String,
    value: String,
    goal: String,
    verdict: &'static str,
    peer: String,
    ratio: String,
}

/// The results table, printed at the end.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
    peer_name: Option<String>,
    /// Targets missed.
    pub missed: Vec<String>,
}

impl Table {
    /// A table; `peer_name` titles the peer's column.
    pub fn new(peer_name: Option<String>) -> Table {
        Table {
            peer_name,
            ..Table::default()
        }
    }

    /// Adds a row. `peer` is the peer's value of the same metric; the ratio
    /// printed is pagerd / peer.
    pub fn row(
        &mut self,
        phase: &str,
        metric: &str,
        value: Option<f64>,
        unit: Unit,
        goal: Option<Goal>,
        peer: Option<f64>,
    ) {
        let goal_text = match goal {
            Some(Goal::AtMost(x)) => format!("≤ {}", fmt(x, unit)),
            Some(Goal::AtLeast(x)) => format!("≥ {}", fmt(x, unit)),
            None => String::new(),
        };
        let verdict = match (goal, value) {
            (Some(g), Some(v)) if g.met(v) => "met",
            (Some(_), Some(_)) => "MISSED",
            (Some(_), None) => "n/a",
            _ => "",
        };
        if verdict == "MISSED" {
            self.missed.push(format!("{phase} {metric}"));
        }
        let ratio = match (value, peer) {
            (Some(v), Some(p)) if p != 0.0 => format!("{:.2}", v / p),
            _ => String::new(),
        };
        self.rows.push(Row {
            phase: phase.to_string(),
            metric: metric.to_string(),
            value: value.map_or_else(|| "-".to_string(), |v| fmt(v, unit)),
            goal: goal_text,
            verdict,
            peer: peer.map(|p| fmt(p, unit)).unwrap_or_default(),
            ratio,
        });
    }

    /// Renders the table as aligned text.
    pub fn render(&self) -> String {
        let mut header = vec!["phase", "metric", "pagerd", "target", "verdict"];
        let peer_title = self.peer_name.clone().unwrap_or_default();
        if self.peer_name.is_some() {
            header.push(&peer_title);
            header.push("pagerd/peer");
        }
        let cells: Vec<Vec<&str>> = self
            .rows
            .iter()
            .map(|r| {
                let mut c = vec![r.phase.as_str(), &r.metric, &r.value, &r.goal, r.verdict];
                if self.peer_name.is_some() {
                    c.push(&r.peer);
                    c.push(&r.ratio);
                }
                c
            })
            .collect();
        let width = |i: usize| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..header.len()).map(width).collect();
        let line = |c: &[&str]| {
            let mut s = String::new();
            for (i, cell) in c.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                // Numbers read better right-aligned; names left-aligned.
                if i >= 2 && i != 4 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                }
                s.push_str("  ");
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&header);
        out.push_str(&line(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ));
        let mut last_phase = "";
        for c in &cells {
            let mut c = c.clone();
            if c[0] == last_phase {
                c[0] = "";
            } else {
                last_phase = c[0];
            }
            out.push_str(&line(&c));
        }
        out
    }
}
