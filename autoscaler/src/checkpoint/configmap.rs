//! The forecaster's state in a ConfigMap, key `forecaster.json`, through kube-rs.
//!
//! Read with `GET`; written with a `PUT` of the object as last read, so that its
//! `resourceVersion` guards the write (the API server answers 409 if anyone changed it since)
//! and its labels and annotations (Helm's ownership among them) are kept. Created with a
//! `POST` only when it does not exist. On a 409 the store reads the ConfigMap again and
//! decides: a newer state learned for the same target is left in place (another instance
//! wrote it; overwriting it with older learning would lose some), anything else is
//! overwritten once more with the new `resourceVersion`; a second 409 gives up until the next
//! save. RBAC: `get` and `update` on this ConfigMap (`resourceNames`), and `create` on
//! ConfigMaps only if nobody creates it beforehand (the Helm chart does).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use super::{Checkpoint, CheckpointError, Saved};

/// The key of the ConfigMap's `data` that holds the state.
pub const DATA_KEY: &str = "forecaster.json";

/// A ConfigMap holds at most 1 MiB, metadata included: refuse to send more than this.
const MAX_BYTES: usize = 1_000_000;

/// One ConfigMap the autoscaler owns.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    /// The object as last read or written: its `resourceVersion` guards the next write.
    /// `None`: it did not exist at the last look.
    last: Option<ConfigMap>,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConfigMapStore {
    /// The ConfigMap `name` in `namespace` (the client's default namespace when `None`).
    pub fn new(client: Client, namespace: Option<&str>, name: &str) -> Self {
        let namespace = namespace.unwrap_or(client.default_namespace()).to_owned();
        Self {
            api: Api::namespaced(client, &namespace),
            namespace,
            name: name.to_owned(),
            last: None,
        }
    }

    pub fn describe(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }

    /// The state's bytes; `None` if the ConfigMap or its key does not exist.
    pub async fn load(&mut self) -> Result<Option<Vec<u8>>, CheckpointError> {
        match self.api.get(&self.name).await {
            Ok(object) => {
                let bytes = object
                    .data
                    .as_ref()
                    .and_then(|data| data.get(DATA_KEY))
                    .map(|text| text.clone().into_bytes());
                self.last = Some(object);
                Ok(bytes)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.last = None;
                Ok(None)
            }
            Err(err) => Err(self.error(err)),
        }
    }

    /// Writes `checkpoint`, guarded by the `resourceVersion` of the last read or write.
    pub async fn save(&mut self, checkpoint: &Checkpoint) -> Result<Saved, CheckpointError> {
        let json = String::from_utf8_lossy(&checkpoint.to_json()).into_owned();
        if json.len() > MAX_BYTES {
            return Err(CheckpointError::TooLarge {
                store: self.describe(),
                bytes: json.len(),
                limit: MAX_BYTES,
            });
        }
        match self.write(&json).await {
            Ok(()) => Ok(Saved::Written),
            Err(err) if is_conflict(&err) => self.after_conflict(checkpoint, &json).await,
            Err(err) => Err(self.error(err)),
        }
    }

    /// Someone wrote since our last read: read again, keep theirs if it is newer learning for
    /// the same thing, else overwrite it once.
    async fn after_conflict(
        &mut self,
        ours: &Checkpoint,
        json: &str,
    ) -> Result<Saved, CheckpointError> {
        let theirs = self.load().await?;
        if let Some(theirs) = theirs.and_then(|bytes| Checkpoint::parse(&bytes).ok())
            && theirs.learned_for == ours.learned_for
            && theirs.last_observation_unix_ms > ours.last_observation_unix_ms
        {
            return Ok(Saved::KeptNewer {
                last_observation_unix_ms: theirs.last_observation_unix_ms,
            });
        }
        match self.write(json).await {
            Ok(()) => Ok(Saved::WrittenAfterConflict),
            Err(err) if is_conflict(&err) => Err(CheckpointError::Conflict {
                store: self.describe(),
            }),
            Err(err) => Err(self.error(err)),
        }
    }

    /// `PUT` over the last object read, or `POST` a new one; a `PUT` of an object deleted
    /// since becomes a `POST`.
    async fn write(&mut self, json: &str) -> Result<(), kube::Error> {
        if let Some(last) = &self.last {
            let mut object = last.clone();
            object
                .data
                .get_or_insert_with(BTreeMap::new)
                .insert(DATA_KEY.to_owned(), json.to_owned());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &object)
                .await
            {
                Ok(written) => {
                    self.last = Some(written);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 404 => self.last = None,
                Err(err) => return Err(err),
            }
        }
        let object = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "inference-autoscaler".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), json.to_owned())])),
            ..ConfigMap::default()
        };
        let written = self.api.create(&PostParams::default(), &object).await?;
        self.last = Some(written);
        Ok(())
    }

    fn error(&self, err: kube::Error) -> CheckpointError {
        match err {
            kube::Error::Api(status) => CheckpointError::Api {
                store: self.describe(),
                status: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => CheckpointError::Client {
                store: self.describe(),
                source: Box::new(other),
            },
        }
    }
}

/// 409: a stale `resourceVersion` on a `PUT`, or a `POST` of a name that exists by now.
fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}
