//! The ConfigMap state store over a mocked API server (`tower_test::mock::pair`): each
//! scenario checks every request (method, path, resourceVersion, body) and answers it.
//! Write and read back, missing, an update conflict retried or left to a newer state, a
//! conflict that persists, a corrupt state at start.

use std::time::{Duration, SystemTime};

use autoscaler::checkpoint::{
    Checkpoint, CheckpointError, ConfigMapStore, DATA_KEY, LearnedFor, Saved,
};
use autoscaler::forecast::{ForecastParams, Forecaster};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

pub(crate) type ApiHandle = Handle<Request<Body>, Response<Body>>;

pub(crate) const NAME: &str = "inference-autoscaler-state";
pub(crate) const ITEM: &str = "/api/v1/namespaces/ml/configmaps/inference-autoscaler-state";
const COLLECTION: &str = "/api/v1/namespaces/ml/configmaps";

pub(crate) fn store() -> (ConfigMapStore, ApiHandle) {
    let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (ConfigMapStore::new(client, Some("ml"), NAME), api)
}

/// The ConfigMap as the API server returns it: Helm's ownership metadata, and `data` when
/// a state is given.
pub(crate) fn object(resource_version: &str, state: Option<&[u8]>) -> Value {
    let mut object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": NAME, "namespace": "ml", "resourceVersion": resource_version,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "harness"}
        }
    });
    if let Some(state) = state {
        object["data"] = json!({ DATA_KEY: String::from_utf8_lossy(state) });
    }
    object
}

pub(crate) fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

pub(crate) fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("configmaps {NAME:?}: {reason}"), "reason": reason, "code": code})
}

/// Checks the next request's method and path, answers it, and returns its JSON body.
pub(crate) async fn expect(
    api: &mut ApiHandle,
    method: Method,
    path: &str,
    status: StatusCode,
    answer: Value,
) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("a request")
        .expect("the client is alive");
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().path(), path);
    let body = request.into_body().collect_bytes().await.unwrap();
    send.send_response(respond(status, answer));
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    }
}

/// What identifies a state (its floats survive JSON to within their last bit only).
pub(crate) fn id(c: &Checkpoint) -> (u64, u64, LearnedFor) {
    (
        c.forecaster.steps,
        c.last_observation_unix_ms,
        c.learned_for.clone(),
    )
}

/// The state a written ConfigMap body carries.
pub(crate) fn state_in(body: &Value) -> Checkpoint {
    let text = body["data"][DATA_KEY].as_str().expect("the state key");
    Checkpoint::parse(text.as_bytes()).unwrap()
}

fn checkpoint(rates: &[f64], observed_at: SystemTime) -> Checkpoint {
    let mut f = Forecaster::new(ForecastParams::default());
    rates.iter().for_each(|&x| f.observe(x));
    let learned = LearnedFor::new(
        "deployment ml/inference".into(),
        Duration::from_secs(15),
        &ForecastParams::default(),
    );
    Checkpoint::take(&f, learned, observed_at, observed_at)
}

#[tokio::test]
async fn creates_when_missing_then_replaces_guarded_and_reads_back() {
    let (mut store, mut api) = store();
    let now = SystemTime::now();
    let first = checkpoint(&[10.0, 12.0], now);
    let second = checkpoint(&[10.0, 12.0, 14.0], now + Duration::from_secs(15));
    let server = tokio::spawn({
        let (first, second) = (first.clone(), second.clone());
        async move {
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::NOT_FOUND,
                failure(404, "NotFound"),
            )
            .await;
            let created = expect(
                &mut api,
                Method::POST,
                COLLECTION,
                StatusCode::CREATED,
                object("1", Some(&first.to_json())),
            )
            .await;
            assert_eq!(created["metadata"]["name"], NAME);
            assert_eq!(id(&state_in(&created)), id(&first));
            let replaced = expect(
                &mut api,
                Method::PUT,
                ITEM,
                StatusCode::OK,
                object("2", Some(&second.to_json())),
            )
            .await;
            // Guarded by the version the create returned.
            assert_eq!(replaced["metadata"]["resourceVersion"], "1");
            assert_eq!(id(&state_in(&replaced)), id(&second));
            // Read back by a store that starts afresh.
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::OK,
                object("2", Some(&second.to_json())),
            )
            .await;
            api
        }
    });
    assert_eq!(store.load().await.unwrap(), None);
    assert_eq!(store.save(&first).await.unwrap(), Saved::Written);
    assert_eq!(store.save(&second).await.unwrap(), Saved::Written);
    let bytes = store.load().await.unwrap().expect("the saved state");
    assert_eq!(id(&Checkpoint::parse(&bytes).unwrap()), id(&second));
    let mut api = server.await.unwrap();
    drop(store);
    let next = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .unwrap();
    assert!(next.is_none(), "nothing else is sent");
}

#[tokio::test]
async fn a_conflict_is_read_again_and_an_older_state_overwritten() {
    let (mut store, mut api) = store();
    let now = SystemTime::now();
    let older = checkpoint(&[5.0], now - Duration::from_secs(600));
    let ours = checkpoint(&[10.0, 12.0], now);
    let server = tokio::spawn({
        let (older, ours) = (older.clone(), ours.clone());
        async move {
            // The chart created it empty; a human edited it before our first save.
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::OK,
                object("5", None),
            )
            .await;
            let first = expect(
                &mut api,
                Method::PUT,
                ITEM,
                StatusCode::CONFLICT,
                failure(409, "Conflict"),
            )
            .await;
            assert_eq!(first["metadata"]["resourceVersion"], "5");
            // Helm's ownership is kept.
            assert_eq!(
                first["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "Helm"
            );
            assert_eq!(
                first["metadata"]["annotations"]["meta.helm.sh/release-name"],
                "harness"
            );
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::OK,
                object("6", Some(&older.to_json())),
            )
            .await;
            let retry = expect(
                &mut api,
                Method::PUT,
                ITEM,
                StatusCode::OK,
                object("7", Some(&ours.to_json())),
            )
            .await;
            assert_eq!(retry["metadata"]["resourceVersion"], "6");
            assert_eq!(id(&state_in(&retry)), id(&ours));
        }
    });
    assert_eq!(store.load().await.unwrap(), None, "no state key yet");
    assert_eq!(
        store.save(&ours).await.unwrap(),
        Saved::WrittenAfterConflict
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_conflict_with_a_newer_state_leaves_it_in_place() {
    let (mut store, mut api) = store();
    let now = SystemTime::now();
    let ours = checkpoint(&[10.0, 12.0], now);
    let theirs = checkpoint(&[10.0, 12.0, 14.0], now + Duration::from_secs(15));
    let server = tokio::spawn({
        let theirs = theirs.clone();
        async move {
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::OK,
                object("5", None),
            )
            .await;
            expect(
                &mut api,
                Method::PUT,
                ITEM,
                StatusCode::CONFLICT,
                failure(409, "Conflict"),
            )
            .await;
            expect(
                &mut api,
                Method::GET,
                ITEM,
                StatusCode::OK,
                object("6", Some(&theirs.to_json())),
            )
            .await;
            // The next save is guarded by the version just read.
            let next = expect(
                &mut api,
                Method::PUT,
                ITEM,
                StatusCode::OK,
                object("8", None),
            )
            .await;
            assert_eq!(next["metadata"]["resourceVersion"], "6");
        }
    });
    store.load().await.unwrap();
    let saved = store.save(&ours).await.unwrap();
    assert_eq!(
        saved,
        Saved::KeptNewer {
            last_observation_unix_ms: theirs.last_observation_unix_ms
        }
    );
    let later = checkpoint(&[10.0, 12.0, 14.0, 16.0], now + Duration::from_secs(30));
    assert_eq!(store.save(&later).await.unwrap(), Saved::Written);
    server.await.unwrap();
}

#[tokio::test]
async fn a_conflict_that_persists_gives_up_until_the_next_save() {
    let (mut store, mut api) = store();
    let ours = checkpoint(&[10.0, 12.0], SystemTime::now());
    let server = tokio::spawn(async move {
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::OK,
            object("5", None),
        )
        .await;
        expect(
            &mut api,
            Method::PUT,
            ITEM,
            StatusCode::CONFLICT,
            failure(409, "Conflict"),
        )
        .await;
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::OK,
            object("6", Some(b"not json")),
        )
        .await;
        let retry = expect(
            &mut api,
            Method::PUT,
            ITEM,
            StatusCode::CONFLICT,
            failure(409, "Conflict"),
        )
        .await;
        assert_eq!(retry["metadata"]["resourceVersion"], "6");
    });
    store.load().await.unwrap();
    let err = store.save(&ours).await.unwrap_err();
    assert!(matches!(err, CheckpointError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("configmap ml/inference-autoscaler-state"),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn forbidden_is_an_error_that_names_the_configmap() {
    let (mut store, mut api) = store();
    let server = tokio::spawn(async move {
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::FORBIDDEN,
            failure(403, "Forbidden"),
        )
        .await;
    });
    let err = store.load().await.unwrap_err();
    assert!(
        matches!(err, CheckpointError::Api { status: 403, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("ml/inference-autoscaler-state"),
        "{err}"
    );
    server.await.unwrap();
}
