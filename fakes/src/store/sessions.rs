//! Console sessions and sign-ins: [`SessionStore`] on the in-memory table.

use kiro::domain::session::{Session, SignIn};
use kiro::ports::SessionStore;

use super::*;

impl MemoryStore {
    /// The sessions stored now (for tests: did sign-out end it?).
    pub fn session_count(&self) -> usize {
        self.table().sessions.len()
    }
}

/// Times as the table keeps them.
fn stored_session(s: &Session) -> Session {
    Session {
        created_at: as_stored(s.created_at),
        expires_at: as_stored(s.expires_at),
        role_checked_at: as_stored(s.role_checked_at),
        ..s.clone()
    }
}

impl SessionStore for MemoryStore {
    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("PutItem(session)")?;
        table.sessions.insert(session.token_hash.clone(), stored_session(session));
        Ok(())
    }

    async fn get_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("GetItem(session)")?;
        Ok(table.sessions.get(token_hash).cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("DeleteItem(session)")?;
        table.sessions.remove(token_hash);
        Ok(())
    }

    async fn put_sign_in(&self, sign_in: &SignIn) -> Result<(), StoreError> {
        const OPERATION: &str = "PutItem(sign-in)";
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request(OPERATION)?;
        if table.sign_ins.contains_key(&sign_in.state) {
            return Err(StoreError::Conflict(OPERATION));
        }
        let stored = SignIn { expires_at: as_stored(sign_in.expires_at), ..sign_in.clone() };
        table.sign_ins.insert(sign_in.state.clone(), stored);
        Ok(())
    }

    async fn take_sign_in(&self, state: &str) -> Result<Option<SignIn>, StoreError> {
        MemoryStore::pause(self).await;
        let mut table = self.table();
        table.request("DeleteItem(sign-in)")?;
        Ok(table.sign_ins.remove(state))
    }
}
