//! One report type for every workload and target, serialized with serde:
//! what ran, with which parameters, and each figure with which way is better.

use std::collections::BTreeMap;

use serde::Serialize;

/// One figure of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) value: f64,
    /// Throughput: higher is better; latency, CPU, memory: lower is.
    pub(crate) higher_is_better: bool,
}

/// The result of one workload on one target.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) workload: String,
    pub(crate) target: &'static str,
    pub(crate) params: BTreeMap<&'static str, f64>,
    pub(crate) figures: Vec<Figure>,
}

impl Report {
    pub(crate) fn new(workload: impl Into<String>, target: &'static str) -> Report {
        Report { workload: workload.into(), target, params: BTreeMap::new(), figures: Vec::new() }
    }

    /// Records a parameter (or a count that is not a figure of merit).
    pub(crate) fn param(mut self, name: &'static str, value: f64) -> Report {
        self.params.insert(name, value);
        self
    }

    /// A figure where more is better.
    pub(crate) fn higher(mut self, name: &'static str, value: f64) -> Report {
        self.figures.push(Figure { name, value, higher_is_better: true });
        self
    }

    /// A figure where less is better.
    pub(crate) fn lower(mut self, name: &'static str, value: f64) -> Report {
        self.figures.push(Figure { name, value, higher_is_better: false });
        self
    }

    /// One line of JSON.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// One row of a comparison: the same figure on both targets.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) rttp: f64,
    pub(crate) nats: f64,
    pub(crate) ratio: f64,
    pub(crate) goal: &'static str,
}

/// Pairs the figures of the same workloads run on both targets, by name.
pub(crate) fn compare(rttp: &[Report], nats: &[Report]) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in rttp {
        let Some(n) = nats.iter().find(|n| n.workload == r.workload) else { continue };
        for f in &r.figures {
            let Some(g) = n.figures.iter().find(|g| g.name == f.name) else { continue };
            let goal = if f.higher_is_better { ">= 1.0" } else { "<= 1.0" };
            rows.push(Row {
                figure: format!("{} {}", r.workload, f.name),
                rttp: f.value,
                nats: g.value,
                ratio: f.value / g.value,
                goal,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_pair_by_workload_and_name_and_serialize() {
        let r =
            Report::new("rooms", "rttp").param("clients", 3.0).higher("deliveries_per_s", 20.0).lower("p50_ms", 1.0);
        let n = Report::new("rooms", "nats").higher("deliveries_per_s", 10.0).lower("p50_ms", 2.0);
        let other = Report::new("idle", "nats").lower("bytes_per_session", 1.0);
        let rows = compare(std::slice::from_ref(&r), &[other, n]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].figure.as_str(), rows[0].ratio, rows[0].goal), ("rooms deliveries_per_s", 2.0, ">= 1.0"));
        assert_eq!((rows[1].ratio, rows[1].goal), (0.5, "<= 1.0"));
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["params"]["clients"], 3.0);
        assert_eq!(v["figures"][0]["name"], "deliveries_per_s");
    }
}
