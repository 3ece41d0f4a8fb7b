//! Drift-free pacing: the i-th event is due at `start + i / rate`, computed from a fixed start,
//! never by sleeping a fixed interval after each step (which accumulates every step's overrun).

use std::time::Duration;

use tokio::time::Instant;

/// Deadlines for a steady rate, counted from a fixed start time.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    /// Events per second; always finite and > 0.
    rate: f64,
    next: u64,
}

impl Pacer {
    /// A pacer whose first event is due at `start`. Panics on a rate that is not finite and
    /// positive: rates are validated when configuration is parsed.
    pub fn new(start: Instant, rate: f64) -> Self {
        assert!(
            rate.is_finite() && rate > 0.0,
            "pacing rate must be finite and > 0, got {rate}"
        );
        Self {
            start,
            rate,
            next: 0,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When event `i` is due.
    pub fn deadline(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// The deadline of the next event, advancing the counter.
    pub fn next_deadline(&mut self) -> Instant {
        let due = self.deadline(self.next);
        self.next += 1;
        due
    }

    /// Changes the rate from now on, without a jump: the next event keeps its deadline and the
    /// ones after it follow the new rate.
    pub fn set_rate(&mut self, now: Instant, rate: f64) {
        assert!(
            rate.is_finite() && rate > 0.0,
            "pacing rate must be finite and > 0, got {rate}"
        );
        let anchor = self.deadline(self.next).max(now);
        self.start = anchor;
        self.rate = rate;
        self.next = 0;
    }

    /// Waits until the next event is due, then returns its deadline. If the caller fell behind,
    /// this returns at once with a deadline in the past: the caller can measure its lag.
    pub async fn tick(&mut self) -> Instant {
        let due = self.next_deadline();
        tokio::time::sleep_until(due).await;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift() {
        let start = Instant::now();
        let mut p = Pacer::new(start, 3.0);
        let d: Vec<_> = (0..301).map(|_| p.next_deadline()).collect();
        assert_eq!(d[0], start);
        // 300 events at 3/s: exactly 100 s later, whatever the rounding of each step.
        let total = d[300] - start;
        assert!((total.as_secs_f64() - 100.0).abs() < 1e-6, "{total:?}");
    }

    #[test]
    fn rate_change_keeps_next_deadline() {
        let start = Instant::now();
        let mut p = Pacer::new(start, 1.0);
        p.next_deadline();
        let next_before = p.deadline(1);
        p.set_rate(start, 10.0);
        assert_eq!(p.next_deadline(), next_before);
        let after = p.next_deadline();
        assert!(((after - next_before).as_secs_f64() - 0.1).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn tick_paces_in_virtual_time() {
        let start = Instant::now();
        let mut p = Pacer::new(start, 2.0);
        for _ in 0..21 {
            p.tick().await;
        }
        let elapsed = Instant::now() - start;
        assert_eq!(elapsed, Duration::from_secs(10));
    }
}
