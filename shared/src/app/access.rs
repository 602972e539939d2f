//! Who may use the console: the Identity Center user a signed-in person is, and their role from
//! the console groups (`CONSOLE_ADMIN_GROUP`, `CONSOLE_VIEWER_GROUP`).

use crate::domain::session::Role;
use crate::domain::{IdentityStoreId, UserId};
use crate::error::AppError;
use crate::ports::{DirectorySearch, MemberGroups};

/// The console groups, by display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleGroups {
    pub admin: String,
    pub viewer: String,
}

/// The user named `user_name` and their role, or `None` when they are in neither group (or not
/// in the directory at all). Four Identity Store reads: the user's id, the two groups' ids, and the
/// user's memberships (`IsMemberInGroups` would be one fewer, but emulators lack it).
pub async fn role_of<D: DirectorySearch + MemberGroups>(
    directory: &D,
    store: &IdentityStoreId,
    groups: &ConsoleGroups,
    user_name: &str,
) -> Result<Option<(UserId, Role)>, AppError> {
    let Some(user) = directory.user_id_by_name(store, user_name).await? else {
        return Ok(None);
    };
    let admin = directory.group_id_by_name(store, &groups.admin).await?;
    let viewer = directory.group_id_by_name(store, &groups.viewer).await?;
    if admin.is_none() && viewer.is_none() {
        return Ok(None);
    }
    let memberships = directory.user_memberships(store, &user).await?;
    let member =
        |g: &Option<crate::domain::GroupId>| g.as_ref().is_some_and(|g| memberships.iter().any(|m| &m.group_id == g));
    Ok(Role::of(member(&admin), member(&viewer)).map(|role| (user, role)))
}
