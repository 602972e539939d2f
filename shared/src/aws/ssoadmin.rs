//! `Instances`: the account's IAM Identity Center instances (`sso-admin:ListInstances`), for the
//! console's profile creation: the Identity Store a profile binds is picked, not typed.

use aws_sdk_ssoadmin::Client;

use super::{error_code, is_throttling};
use crate::domain::IdentityStoreId;
use crate::ports::{DirectoryError, Instance, Instances};

/// [`Instances`] backed by the SSO Admin API.
#[derive(Debug, Clone)]
pub struct SsoAdminInstances {
    client: Client,
}

impl SsoAdminInstances {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl Instances for SsoAdminInstances {
    async fn list_instances(&self) -> Result<Vec<Instance>, DirectoryError> {
        const OPERATION: &str = "ListInstances";
        let mut pages = self.client.list_instances().into_paginator().send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let throttled = is_throttling(&e) || error_code(&e) == Some("ThrottlingException");
                let source = Box::new(e);
                if throttled {
                    DirectoryError::Throttled { operation: OPERATION, source }
                } else {
                    DirectoryError::Aws { operation: OPERATION, source }
                }
            })?;
            for i in page.instances.unwrap_or_default() {
                let (Some(arn), Some(store)) = (i.instance_arn, i.identity_store_id) else { continue };
                // An instance whose store id is not one (an emulator's) cannot be bound: skip it.
                match IdentityStoreId::parse("identityStoreId", &store) {
                    Ok(identity_store_id) => {
                        instances.push(Instance { instance_arn: arn, identity_store_id, name: i.name })
                    }
                    Err(_) => {
                        tracing::warn!(instance = %arn, "skipping an instance whose identity store id is malformed")
                    }
                }
            }
        }
        Ok(instances)
    }
}
