//! A scale-up adding more replicas at once than `large_scale_up_step` is counted (and logged
//! as a warning); smaller ones, and the step itself, are not.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use autoscaler::controller::{Action, Controller, ControllerHandle, ControllerSettings};
use autoscaler::{PolicySpec, Tuning};

use crate::state_restart::{Pool, Ramp};

/// One decision of `static:to` on a pool of `from`; the counter after it.
async fn scale(from: u32, to: u32, step: u32) -> u64 {
    let handle = ControllerHandle::new().unwrap();
    let settings = ControllerSettings {
        large_scale_up_step: step,
        ..ControllerSettings::new(PolicySpec::Static(to), Tuning::default())
    };
    let pool = Arc::new(Pool(Mutex::new(from)));
    let mut c = Controller::new(Ramp::from(1.0), pool.clone(), settings, handle.clone());
    let status = c.step(Instant::now()).await;
    assert_eq!(status.action, Action::Scaled);
    assert_eq!(*pool.0.lock().unwrap(), to);
    handle.metrics().large_scale_ups.get()
}

#[tokio::test]
async fn only_scale_ups_beyond_the_step_are_counted() {
    assert_eq!(scale(1, 10, 4).await, 1, "+9 > 4");
    assert_eq!(scale(2, 6, 4).await, 0, "+4 is the step itself");
    assert_eq!(scale(10, 2, 4).await, 0, "a scale-down");
    assert_eq!(scale(2, 3, 0).await, 1, "step 0: every scale-up");
}
