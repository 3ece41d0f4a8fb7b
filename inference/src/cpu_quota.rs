//! How many CPUs this process may use: the default worker count.
//!
//! In a container the kernel enforces a CPU limit through the cgroup v2 `cpu.max` file
//! (`"<quota> <period>"` or `"max <period>"`), while the machine may have many more cores. A pool
//! sized to the cores would be throttled by the CFS quota and its latency would suffer, so the
//! quota wins when there is one. Without a readable quota, the standard library's
//! `available_parallelism` (CPU affinity, cgroup v1) is the answer.

use std::num::NonZeroUsize;
use std::path::Path;

/// Where cgroup v2 exposes the CPU limit of the process's own cgroup inside a container.
const CPU_MAX: &str = "/sys/fs/cgroup/cpu.max";

/// CPUs the process may use: the cgroup v2 quota rounded up, capped by the available
/// parallelism, at least 1.
pub fn usable_cpus() -> NonZeroUsize {
    let parallelism = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    match quota_from_file(Path::new(CPU_MAX)) {
        Some(quota) => quota.min(parallelism),
        None => parallelism,
    }
}

fn quota_from_file(path: &Path) -> Option<NonZeroUsize> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_cpu_max(&text))
}

/// Parses the content of `cpu.max`. `None` when there is no limit (`max`) or the text is not
/// understood. A fractional quota is rounded up: 1.5 CPUs gives 2 workers, which keeps the whole
/// quota usable at the price of some throttling at full load.
pub fn parse_cpu_max(text: &str) -> Option<NonZeroUsize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: u64 = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    let cpus = quota.div_ceil(period);
    NonZeroUsize::new(usize::try_from(cpus).ok()?.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_max() {
        let cases: &[(&str, Option<usize>)] = &[
            ("max 100000\n", None),
            ("200000 100000\n", Some(2)),
            ("150000 100000", Some(2)),
            ("50000 100000", Some(1)),
            ("1 100000", Some(1)),
            ("400000", Some(4)),
            ("", None),
            ("abc 100000", None),
            ("100000 0", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_cpu_max(text).map(NonZeroUsize::get),
                *want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn usable_cpus_is_positive_and_bounded_by_the_machine() {
        let cpus = usable_cpus().get();
        let parallelism = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert!((1..=parallelism).contains(&cpus));
    }
}
