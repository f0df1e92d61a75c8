//! Connecting like kubectl does: `--kubeconfig` (else `$KUBECONFIG`, `~/.kube/config`, then the
//! in-cluster service account), `--context`/`--cluster`/`--user` overrides, and the namespace from
//! `-n`, else the context's namespace, else `default`.

use std::path::PathBuf;

use clap::Args;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::api::rollout::Rollout;
use crate::cli::error::CliError;

/// The kubectl connection flags, accepted before or after the verb.
#[derive(Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true, env = "SLUICE_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, env = "SLUICE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true, env = "SLUICE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true, env = "SLUICE_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SLUICE_NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,
}

/// A client and the namespace the command acts in.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub namespace: String,
}

impl Ctx {
    pub async fn connect(g: &GlobalArgs) -> Result<Ctx, CliError> {
        let opts = KubeConfigOptions {
            context: g.context.clone(),
            cluster: g.cluster.clone(),
            user: g.user.clone(),
        };
        let overridden = opts.context.is_some() || opts.cluster.is_some() || opts.user.is_some();
        let config = match &g.kubeconfig {
            Some(path) => {
                let kc =
                    Kubeconfig::read_from(path).map_err(|e| CliError::Config(e.to_string()))?;
                Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| CliError::Config(e.to_string()))?
            }
            None if overridden => Config::from_kubeconfig(&opts)
                .await
                .map_err(|e| CliError::Config(e.to_string()))?,
            None => Config::infer()
                .await
                .map_err(|e| CliError::Config(e.to_string()))?,
        };
        let namespace = g
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| CliError::Config(e.to_string()))?;
        Ok(Ctx { client, namespace })
    }

    /// Typed Rollouts of the namespace.
    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Rollouts as plain JSON, for read-modify-write verbs that must keep fields we do not model.
    pub fn dynamic_rollouts(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &ApiResource::erase::<Rollout>(&()),
        )
    }

    /// Any namespaced kind as plain JSON.
    pub fn dynamic(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
    ) -> Api<DynamicObject> {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
    }
}
