//! Health, choice and permit accounting of the balancer, in paused time.

use super::*;
use prometheus::Opts;

fn balancer(max_in_flight: usize, urls: &[&str]) -> Arc<Balancer> {
    let gauge = IntGaugeVec::new(Opts::new("e", "e"), &["state"]).expect("gauge");
    let b = Arc::new(Balancer::new(max_in_flight, Duration::from_secs(5), gauge));
    b.set_endpoints(urls.iter().map(|u| Url::parse(u).expect("url")));
    b
}

fn make_ready(b: &Balancer) {
    for e in b.due_probes() {
        b.probe_finished(&e, ProbeResult::Ready);
    }
}

#[tokio::test(start_paused = true)]
async fn new_endpoints_wait_for_readyz() {
    let b = balancer(2, &["http://a:1", "http://b:2"]);
    assert!(b.try_acquire(&[]).is_none(), "not ready before a probe");
    assert_eq!(b.due_probes().len(), 2);
    assert!(b.due_probes().is_empty(), "a probe is already out");
    let stats = b.stats();
    assert!(stats.iter().all(|e| e.state == EndpointState::NotReady));
}

#[tokio::test(start_paused = true)]
async fn least_in_flight_with_round_robin_ties_and_a_per_endpoint_cap() {
    let b = balancer(2, &["http://a:1", "http://b:2"]);
    make_ready(&b);
    // Idle endpoints alternate even though each permit is released at once.
    let picks: Vec<String> = (0..4)
        .map(|_| {
            b.try_acquire(&[])
                .expect("capacity")
                .endpoint()
                .base
                .to_string()
        })
        .collect();
    assert_eq!(
        picks,
        ["http://a:1", "http://b:2", "http://a:1", "http://b:2"]
    );
    // Held permits: least in flight, then the cap.
    let held: Vec<Permit> = (0..4)
        .map(|_| b.try_acquire(&[]).expect("cap 2 x 2"))
        .collect();
    assert!(
        b.try_acquire(&[]).is_none(),
        "every endpoint at --max-in-flight"
    );
    assert!(b.stats().iter().all(|e| e.in_flight == 2));
    drop(held);
    assert!(b.stats().iter().all(|e| e.in_flight == 0));
}

#[tokio::test(start_paused = true)]
async fn avoid_prefers_untried_endpoints() {
    let b = balancer(4, &["http://a:1", "http://b:2"]);
    make_ready(&b);
    let a: Arc<str> = "http://a:1".into();
    for _ in 0..3 {
        let p = b.try_acquire(std::slice::from_ref(&a)).expect("capacity");
        assert_eq!(&*p.endpoint().base, "http://b:2");
    }
}

#[tokio::test(start_paused = true)]
async fn failure_ejects_then_probes_back() {
    let b = balancer(4, &["http://a:1"]);
    make_ready(&b);
    let p = b.try_acquire(&[]).expect("ready");
    b.record_failure(p.endpoint());
    drop(p);
    assert!(b.try_acquire(&[]).is_none());
    assert!(
        b.due_probes().is_empty(),
        "ejected endpoints wait out the ejection"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    let due = b.due_probes();
    assert_eq!(due.len(), 1);
    assert_eq!(b.stats()[0].state, EndpointState::NotReady);
    b.probe_finished(&due[0], ProbeResult::Ready);
    assert!(b.try_acquire(&[]).is_some());
    assert_eq!(b.stats()[0].failed_total, 1);
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_for_a_released_slot() {
    let b = balancer(1, &["http://a:1"]);
    make_ready(&b);
    let held = b.try_acquire(&[]).expect("ready");
    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.acquire(&[]).await.endpoint().base.to_string() }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiter.is_finished());
    drop(held);
    assert_eq!(waiter.await.expect("joins"), "http://a:1");
}

#[tokio::test(start_paused = true)]
async fn removed_endpoint_keeps_counts_consistent() {
    let b = balancer(1, &["http://a:1"]);
    make_ready(&b);
    let held = b.try_acquire(&[]).expect("ready");
    b.set_endpoints([Url::parse("http://b:2").expect("url")]);
    b.set_endpoints([Url::parse("http://a:1").expect("url")]);
    drop(held); // belongs to the old `a`, must not touch the new one
    assert_eq!(b.stats()[0].in_flight, 0);
}
