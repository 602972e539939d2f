//! `SessionStore` on the table: console sessions and sign-ins in progress, each its own item with
//! the table's TTL (`expiresAt`), so nothing has to sweep them.

use aws_sdk_dynamodb::types::ReturnValue;

use super::dynamo::{DynamoStore, store_error};
use super::records::{Record, session_key, sign_in_key};
use crate::domain::session::{Session, SignIn};
use crate::ports::{SessionStore, StoreError};

impl SessionStore for DynamoStore {
    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(session.to_item()?))
            .send()
            .await
            .map_err(|e| store_error("PutItem(session)", e))?;
        Ok(())
    }

    async fn get_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(session_key(token_hash)))
            // A session just ended must not be read back as live from a stale replica.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem(session)", e))?;
        out.item.as_ref().map(Session::from_item).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(session_key(token_hash)))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem(session)", e))?;
        Ok(())
    }

    async fn put_sign_in(&self, sign_in: &SignIn) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(sign_in.to_item()?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| store_error("PutItem(sign-in)", e))?;
        Ok(())
    }

    async fn take_sign_in(&self, state: &str) -> Result<Option<SignIn>, StoreError> {
        // Deleting and reading in one call: of two callbacks with the same state, one gets it.
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(sign_in_key(state)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem(sign-in)", e))?;
        out.attributes.as_ref().map(SignIn::from_item).transpose()
    }
}
