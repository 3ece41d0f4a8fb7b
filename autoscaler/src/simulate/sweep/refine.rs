//! The search behind the dominance verdict: a fixed grid of safety margins can miss the setting
//! that beats an HPA point, so for every HPA point the grid leaves undominated the sweep looks
//! between grid values for one that dominates it.
//!
//! Raising the margin buys capacity: pod-seconds grow with it and violations shrink. Under that
//! rule the margins that cost no more than the HPA point lie below some boundary, and the one
//! with the fewest violations among them sits just under it; so the search narrows the bracket
//! around that boundary (the most generous evaluated margin that costs no more, and the next
//! evaluated one that costs more), a few evenly spaced margins per round, every open HPA point's
//! margins of a round run together. It stops when every point is dominated, a bracket is
//! narrower than [`MIN_WIDTH`], or after [`ROUNDS`] rounds: at most `ROUNDS × PER_ROUND` extra
//! runs per HPA point. Deterministic: the runs use the sweep's seed and the margins depend only
//! on the results.

use super::dominance::{Point, undominated};

/// Rounds of narrowing.
pub const ROUNDS: usize = 4;
/// Margins tried per open point per round (the bracket is cut into `PER_ROUND + 1` parts).
pub const PER_ROUND: usize = 2;
/// Brackets narrower than this are not cut further.
pub const MIN_WIDTH: f64 = 1e-3;

/// Looks for knob values whose points dominate the points of `theirs` that `ours` leaves
/// undominated. `range` bounds the search where no evaluated point brackets it; `run` evaluates
/// a batch of knob values (in parallel, in the sweep) and returns their points in order.
/// Returns the new points, marked `refined`, in the order they were run.
pub fn refine(
    ours: &[Point],
    theirs: &[Point],
    range: (f64, f64),
    mut run: impl FnMut(&[f64]) -> Vec<Point>,
) -> Vec<Point> {
    let mut all: Vec<Point> = ours.to_vec();
    let mut added = Vec::new();
    for _ in 0..ROUNDS {
        let mut knobs: Vec<f64> = Vec::new();
        for target in undominated(&all, theirs) {
            let (lo, hi) = bracket(&all, target, range);
            if hi - lo < MIN_WIDTH {
                continue;
            }
            for j in 1..=PER_ROUND {
                let k = lo + (hi - lo) * j as f64 / (PER_ROUND + 1) as f64;
                let seen = all.iter().any(|p| (p.knob - k).abs() < 1e-9)
                    || knobs.iter().any(|x| (x - k).abs() < 1e-9);
                if !seen {
                    knobs.push(k);
                }
            }
        }
        if knobs.is_empty() {
            break;
        }
        knobs.sort_by(f64::total_cmp);
        for (knob, point) in knobs.iter().zip(run(&knobs)) {
            let point = Point {
                knob: *knob,
                refined: true,
                ..point
            };
            all.push(point);
            added.push(point);
        }
    }
    added
}

/// The knob interval to search for a point dominating `target`: from the most generous
/// evaluated value that costs no more than it (or `range.0`) to the next evaluated value above
/// that costs more (or `range.1`).
fn bracket(points: &[Point], target: &Point, range: (f64, f64)) -> (f64, f64) {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| a.knob.total_cmp(&b.knob));
    let hi = sorted
        .iter()
        .find(|p| p.pod_seconds > target.pod_seconds)
        .map_or(range.1, |p| p.knob);
    let lo = sorted
        .iter()
        .rfind(|p| p.knob < hi && p.pod_seconds <= target.pod_seconds)
        .map_or(range.0, |p| p.knob);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy whose cost grows and violations shrink with the knob, as a margin does.
    fn monotone(knob: f64) -> Point {
        Point {
            knob,
            pod_seconds: 100.0 * knob,
            sla_violations: (1_000.0 / knob).round() as u64,
            scale_events: 0,
            refined: false,
        }
    }

    fn grid(values: &[f64]) -> Vec<Point> {
        values.iter().map(|&k| monotone(k)).collect()
    }

    #[test]
    fn the_search_finds_a_setting_between_grid_values_that_dominates() {
        // The HPA point (125 pod-seconds, 820 violations) sits between the grid's 1.0 (100,
        // 1000) and 1.5 (150, 667): margins from 1.22 to 1.25 dominate it.
        let ours = grid(&[1.0, 1.5, 2.0]);
        let theirs = [Point {
            knob: 0.7,
            pod_seconds: 125.0,
            sla_violations: 820,
            scale_events: 0,
            refined: false,
        }];
        assert_eq!(undominated(&ours, &theirs).len(), 1);
        let mut runs = 0;
        let found = refine(&ours, &theirs, (0.5, 4.0), |knobs| {
            runs += knobs.len();
            knobs.iter().map(|&k| monotone(k)).collect()
        });
        assert!(runs <= ROUNDS * PER_ROUND, "{runs} runs");
        assert!(
            found
                .iter()
                .all(|p| p.refined && p.knob > 1.0 && p.knob < 1.5)
        );
        let mut all = ours.clone();
        all.extend(&found);
        assert!(undominated(&all, &theirs).is_empty(), "{found:?}");
        let winner = found.iter().find(|p| p.dominates(&theirs[0])).unwrap();
        assert!((1.22..=1.25).contains(&winner.knob), "{winner:?}");
        // Deterministic: the same results give the same margins.
        let again = refine(&ours, &theirs, (0.5, 4.0), |knobs| {
            knobs.iter().map(|&k| monotone(k)).collect()
        });
        assert_eq!(found, again);
    }

    #[test]
    fn the_search_gives_up_within_its_budget_when_no_setting_dominates() {
        // 125 pod-seconds with 700 violations: a margin costing ≤ 125 has ≥ 800 violations.
        let ours = grid(&[1.0, 1.5, 2.0]);
        let theirs = [Point {
            knob: 0.6,
            pod_seconds: 125.0,
            sla_violations: 700,
            scale_events: 0,
            refined: false,
        }];
        let mut runs = 0;
        let found = refine(&ours, &theirs, (0.5, 4.0), |knobs| {
            runs += knobs.len();
            knobs.iter().map(|&k| monotone(k)).collect()
        });
        assert_eq!(runs, ROUNDS * PER_ROUND);
        assert_eq!(found.len(), runs);
        let mut all = ours.clone();
        all.extend(&found);
        assert_eq!(undominated(&all, &theirs).len(), 1);
        // It closed in on the cost boundary, 1.25, from both sides.
        let nearest = found
            .iter()
            .map(|p| (p.knob - 1.25).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(nearest < 0.5 / 27.0, "{found:?}");
    }

    #[test]
    fn a_point_cheaper_than_the_whole_grid_is_searched_for_below_it() {
        let ours = grid(&[1.0, 1.5]);
        // 80 pod-seconds, 1300 violations: margin 0.8 costs 80 with 1250.
        let theirs = [Point {
            knob: 0.9,
            pod_seconds: 80.5,
            sla_violations: 1_300,
            scale_events: 0,
            refined: false,
        }];
        let found = refine(&ours, &theirs, (0.5, 4.0), |knobs| {
            knobs.iter().map(|&k| monotone(k)).collect()
        });
        let mut all = ours.clone();
        all.extend(&found);
        assert!(undominated(&all, &theirs).is_empty(), "{found:?}");
        // Nothing to search when the grid already dominates.
        let dominated = [Point {
            pod_seconds: 160.0,
            ..theirs[0]
        }];
        let none = refine(&ours, &dominated, (0.5, 4.0), |_| panic!("no run needed"));
        assert!(none.is_empty());
    }
}
