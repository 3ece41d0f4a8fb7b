//! Which policy is better once cost is accounted for: a point (pod-seconds, requests over the
//! SLA) dominates another when it is no worse on both and strictly better on one; a frontier
//! dominates another when every point of the other is dominated by one of its own.

use serde::Serialize;

/// Cost and harm of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// The knob's value for this run.
    pub knob: f64,
    /// Replica-seconds paid for.
    pub pod_seconds: f64,
    /// Requests that waited longer than the SLA, refused ones included.
    pub sla_violations: u64,
    pub scale_events: u32,
    /// Found by the search between grid values ([`super::refine`]), not on the grid.
    pub refined: bool,
}

impl Point {
    /// No more pod-seconds and no more violations than `other`, and strictly fewer of one.
    pub fn dominates(&self, other: &Point) -> bool {
        let no_worse =
            self.pod_seconds <= other.pod_seconds && self.sla_violations <= other.sla_violations;
        let better =
            self.pod_seconds < other.pod_seconds || self.sla_violations < other.sla_violations;
        no_worse && better
    }
}

/// The points of `theirs` that no point of `ours` dominates (empty: `ours` dominates).
pub fn undominated<'a>(ours: &[Point], theirs: &'a [Point]) -> Vec<&'a Point> {
    theirs
        .iter()
        .filter(|t| !ours.iter().any(|o| o.dominates(t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(knob: f64, pod_seconds: f64, sla_violations: u64) -> Point {
        Point {
            knob,
            pod_seconds,
            sla_violations,
            scale_events: 0,
            refined: false,
        }
    }

    #[test]
    fn a_point_dominates_only_when_no_worse_on_both_and_better_on_one() {
        let a = p(1.0, 100.0, 10);
        assert!(a.dominates(&p(2.0, 100.0, 11)));
        assert!(a.dominates(&p(2.0, 101.0, 10)));
        assert!(a.dominates(&p(2.0, 150.0, 50)));
        // Equal on both: neither dominates.
        assert!(!a.dominates(&p(2.0, 100.0, 10)));
        // Cheaper but worse, or better but dearer: a trade, not dominance.
        assert!(!a.dominates(&p(2.0, 90.0, 20)));
        assert!(!a.dominates(&p(2.0, 120.0, 5)));
    }

    #[test]
    fn a_frontier_dominates_when_every_point_of_the_other_is_beaten() {
        let ours = [p(1.0, 100.0, 50), p(2.0, 150.0, 5), p(3.0, 200.0, 0)];
        let theirs = [p(0.9, 110.0, 60), p(0.7, 150.0, 9), p(0.5, 260.0, 0)];
        assert!(undominated(&ours, &theirs).is_empty());
        // A point cheaper than all of ours is not dominated, whatever its violations.
        let cheap = [p(0.9, 90.0, 1_000), p(0.5, 260.0, 0)];
        let left = undominated(&ours, &cheap);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].knob, 0.9);
        // Zero violations at lower cost than our zero-violation point: not dominated.
        let lean = [p(0.6, 180.0, 0)];
        assert_eq!(undominated(&ours, &lean).len(), 1);
        // An empty frontier dominates nothing.
        assert_eq!(undominated(&[], &theirs).len(), 3);
    }
}
