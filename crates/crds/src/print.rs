//! The CRD manifests generated from the types (`yatai crds`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{bento::Bento, bento_deployment, bento_request::BentoRequest};

/// Every CRD of Yatai: `Bento`, `BentoRequest` and `BentoDeployment` (all served versions).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![Bento::crd(), BentoRequest::crd(), bento_deployment::crd()]
}

/// [`all_crds`] as one multi-document YAML stream, ready for `kubectl apply -f -`.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd).expect("a CRD serialises to YAML"));
    }
    out
}
