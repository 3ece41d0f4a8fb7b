use super::*;

#[test]
fn few_values_stay_exact_and_give_nearest_rank_percentiles() {
    let mut second = SecondLatency::default();
    assert_eq!(second.value_at_quantile(0.5), None);
    for v in [40_123, 55_001, 41_999, 60_500] {
        second.record(v);
    }
    assert!(second.is_exact());
    assert_eq!(second.len(), 4);
    assert_eq!(second.value_at_quantile(0.5), Some(41_999));
    assert_eq!(second.value_at_quantile(0.95), Some(60_500));
    assert_eq!(second.value_at_quantile(0.0), Some(40_123));
}

#[test]
fn many_values_switch_to_buckets_within_one_percent() {
    let mut second = SecondLatency::default();
    // 40.000 .. 59.999 ms, 1000 values in order.
    let values: Vec<u64> = (0..1000).map(|i| 40_000 + i * 20).collect();
    for &v in values.iter().rev() {
        second.record(v);
    }
    assert!(!second.is_exact());
    assert_eq!(second.len(), 1000);
    for q in [0.5, 0.95, 0.99] {
        let exact = values[(q * 1000.0_f64).ceil() as usize - 1] as f64;
        let got = second.value_at_quantile(q).unwrap() as f64;
        assert!(
            (got - exact).abs() / exact < 0.008,
            "q {q}: {got} vs {exact}"
        );
    }
    let Second::Buckets { buckets, .. } = &second else {
        unreachable!()
    };
    assert!(buckets.len() < 50, "{} buckets", buckets.len());
}

use SecondLatency as Second;

#[test]
fn buckets_are_bounded_whatever_the_values() {
    let mut second = SecondLatency::default();
    let mut v: u64 = 1;
    while v < u64::from(u32::MAX) * 4 {
        second.record(v);
        v = v * 33 / 32 + 1;
    }
    second.record(0);
    second.record(u64::MAX);
    let Second::Buckets { buckets, count } = &second else {
        unreachable!()
    };
    assert!(buckets.len() <= MAX_BUCKETS);
    assert_eq!(second.len(), *count);
    assert_eq!(second.value_at_quantile(0.0), Some(0));
    let top = second.value_at_quantile(1.0).unwrap();
    assert!(top as f64 >= f64::from(u32::MAX) * 0.99, "{top}");
}

#[test]
fn every_bucket_stands_for_a_value_inside_it() {
    for v in (0..200_000u32).chain([u32::MAX - 1, u32::MAX, 1 << 31, (1 << 31) - 1]) {
        let b = bucket_of(v);
        let mid = value_of(b);
        assert_eq!(bucket_of(mid), b, "value {v}");
        if v < LINEAR {
            assert_eq!(mid, v);
        } else {
            assert!((f64::from(mid) - f64::from(v)).abs() / f64::from(v) < 0.008);
        }
    }
    assert!(usize::from(bucket_of(u32::MAX)) < MAX_BUCKETS);
}

#[test]
fn a_second_round_trips_through_json() {
    let mut second = SecondLatency::default();
    second.record(45_000);
    let json = serde_json::to_string(&second).unwrap();
    assert_eq!(
        serde_json::from_str::<SecondLatency>(&json).unwrap(),
        second
    );
    for v in 0..20 {
        second.record(45_000 + v * 100);
    }
    let json = serde_json::to_string(&second).unwrap();
    assert_eq!(
        serde_json::from_str::<SecondLatency>(&json).unwrap(),
        second
    );
}
