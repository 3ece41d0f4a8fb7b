//! A Kubernetes Deployment as a [`ScaleTarget`], through the `scale` subresource: `GET` to
//! read `spec.replicas`, a JSON merge patch `{"spec":{"replicas":n}}` to set it. Needs RBAC
//! `get` and `patch` on `deployments/scale`, nothing on the Deployment itself.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Config};

use super::{ScaleTarget, TargetError};

/// The field manager recorded in managedFields for the replica count.
const FIELD_MANAGER: &str = "inference-autoscaler";

/// One Deployment's scale subresource.
#[derive(Clone)]
pub struct DeploymentTarget {
    api: Api<Deployment>,
    namespace: String,
    name: String,
}

impl std::fmt::Debug for DeploymentTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentTarget")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish()
    }
}

impl DeploymentTarget {
    /// The Deployment `name` in `namespace` (the client's default namespace when `None`: the
    /// pod's own namespace in a cluster, the kubeconfig context's outside).
    pub fn new(client: Client, namespace: Option<&str>, name: &str) -> Self {
        let namespace = namespace.unwrap_or(client.default_namespace()).to_owned();
        Self {
            api: Api::namespaced(client, &namespace),
            namespace,
            name: name.to_owned(),
        }
    }

    /// A client from the in-cluster service account, else from the local kubeconfig.
    pub async fn connect() -> Result<Client, TargetError> {
        let config = match Config::incluster() {
            Ok(config) => config,
            Err(in_cluster) => {
                tracing::info!(%in_cluster, "not in a cluster: using the local kubeconfig");
                Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|e| TargetError::NoConfig(e.into()))?
            }
        };
        Client::try_from(config).map_err(TargetError::other)
    }

    fn error(&self, err: kube::Error) -> TargetError {
        match err {
            kube::Error::Api(status) if status.code == 404 => {
                TargetError::NotFound(self.describe())
            }
            kube::Error::Api(status) => TargetError::Api {
                status: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => TargetError::other(other),
        }
    }
}

impl ScaleTarget for DeploymentTarget {
    fn describe(&self) -> String {
        format!("deployment {}/{}", self.namespace, self.name)
    }

    async fn current_replicas(&self) -> Result<u32, TargetError> {
        let scale = self
            .api
            .get_scale(&self.name)
            .await
            .map_err(|e| self.error(e))?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        Ok(u32::try_from(replicas).unwrap_or(0))
    }

    async fn scale_to(&self, replicas: u32) -> Result<(), TargetError> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.api
            .patch_scale(
                &self.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}
