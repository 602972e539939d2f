//! The directory: the profile's Identity Store, read through the AWS SDK.
//!
//! Every call names the store explicitly, because the store to read is the one recorded in the
//! profile, not a setting of the process. Entries whose ids do not parse as Identity Store ids are
//! skipped with a warning rather than failing the whole answer.

use aws_sdk_identitystore::Client;
use aws_sdk_identitystore::operation::describe_group::DescribeGroupError;
use aws_sdk_identitystore::operation::describe_user::DescribeUserError;
use aws_sdk_identitystore::operation::get_group_id::GetGroupIdError;
use aws_sdk_identitystore::operation::get_user_id::GetUserIdError;
use aws_sdk_identitystore::operation::list_group_memberships::ListGroupMembershipsError;
use aws_sdk_identitystore::operation::list_group_memberships_for_member::ListGroupMembershipsForMemberError;
use aws_sdk_identitystore::operation::list_groups::ListGroupsError;
use aws_sdk_identitystore::operation::list_users::ListUsersError;
use aws_sdk_identitystore::types::{
    AlternateIdentifier, Email, Group, GroupMembership, MemberId, UniqueAttribute, User,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::Document;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::is_throttling;
use crate::domain::{GroupId, IdentityStoreId, Invalid, MembershipId, UserId};
use crate::ports::{
    Directory, DirectoryError, DirectoryGroup, DirectorySearch, DirectoryUser, MemberGroups, Membership, Page,
};

/// The API's maximum page size for every list call used here.
const PAGE_SIZE: i32 = 100;

/// `MaxResults` for a page of at most `limit` (1 to [`PAGE_SIZE`]).
fn page_size(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE)
}

/// [`Directory`] backed by the Identity Store API.
#[derive(Debug)]
pub struct IdentityStoreDirectory {
    client: Client,
    pacer: super::pace::Pacer,
}

/// Identity Store's documented limit: 20 requests per second per API.
pub const REQUESTS_PER_SECOND: u32 = 20;

impl IdentityStoreDirectory {
    pub fn new(client: Client) -> Self {
        Self::with_rate(client, REQUESTS_PER_SECOND)
    }

    /// A directory that sends at most `per_second` requests a second from this process.
    pub fn with_rate(client: Client, per_second: u32) -> Self {
        Self { client, pacer: super::pace::Pacer::per_second(per_second) }
    }
}

/// The modeled errors this adapter decides on, common to every Identity Store read.
trait ReadError {
    fn is_not_found(&self) -> bool;
    fn is_throttled(&self) -> bool;
}

macro_rules! read_error {
    ($($error:ty),* $(,)?) => {$(
        impl ReadError for $error {
            fn is_not_found(&self) -> bool {
                self.is_resource_not_found_exception()
            }
            fn is_throttled(&self) -> bool {
                self.is_throttling_exception()
            }
        }
    )*};
}

read_error!(
    DescribeUserError,
    DescribeGroupError,
    GetUserIdError,
    GetGroupIdError,
    ListGroupMembershipsError,
    ListGroupMembershipsForMemberError,
    ListUsersError,
    ListGroupsError,
);

/// `ResourceNotFoundException`: for a describe or an id lookup, an answer (`None`), not a failure.
fn is_not_found<E: ReadError, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().is_some_and(ReadError::is_not_found)
}

/// Maps an SDK failure; throttling (what survived the SDK's retries) is its own kind.
fn directory_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> DirectoryError
where
    E: ReadError + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = err.as_service_error().is_some_and(ReadError::is_throttled) || is_throttling(&err);
    let source = Box::new(err);
    if throttled { DirectoryError::Throttled { operation, source } } else { DirectoryError::Aws { operation, source } }
}

/// A list call's error: for a call that passed a `nextToken`, a `ValidationException` (AWS) or
/// an `InvalidToken` (moto) is that token refused (the other parameters are ours and valid),
/// not a failure of the service.
fn listing_error<E, R>(operation: &'static str, with_token: bool, err: SdkError<E, R>) -> DirectoryError
where
    E: ReadError + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    if with_token && matches!(code, Some("ValidationException" | "InvalidToken")) {
        return DirectoryError::InvalidToken { operation };
    }
    directory_error(operation, err)
}

/// The error of a list *of* a group or user (its memberships): `ResourceNotFoundException` says
/// that principal is gone, which callers treat as its deletion.
fn list_of_error<E, R>(operation: &'static str, with_token: bool, err: SdkError<E, R>) -> DirectoryError
where
    E: ReadError + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if is_not_found(&err) {
        return DirectoryError::NotFound { operation };
    }
    listing_error(operation, with_token, err)
}

/// Parses an id the service returned; `None`, with a warning, when it is not one of ours.
/// The raw value is not logged: it is service data of unknown shape.
fn parsed_id<T>(field: &'static str, raw: &str, parse: impl FnOnce(&str, &str) -> Result<T, Invalid>) -> Option<T> {
    match parse(field, raw) {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::warn!(field, error = %err, "skipping an Identity Store entry with an unexpected id");
            None
        }
    }
}

/// The primary address when one is marked, else the first; empty values do not count.
fn preferred_email(emails: &[Email]) -> Option<String> {
    let with_value = || emails.iter().filter(|e| e.value().is_some_and(|v| !v.is_empty()));
    with_value().find(|e| e.primary()).or_else(|| with_value().next()).and_then(Email::value).map(str::to_owned)
}

fn directory_user(
    user_id: UserId,
    user_name: Option<String>,
    display_name: Option<String>,
    emails: Option<Vec<Email>>,
) -> DirectoryUser {
    DirectoryUser {
        user_id,
        user_name: user_name.unwrap_or_default(),
        display_name: display_name.unwrap_or_default(),
        email: preferred_email(emails.as_deref().unwrap_or_default()),
    }
}

fn listed_user(user: User) -> Option<DirectoryUser> {
    let user_id = parsed_id("userId", &user.user_id, UserId::parse)?;
    Some(directory_user(user_id, user.user_name, user.display_name, user.emails))
}

fn listed_group(group: Group) -> Option<DirectoryGroup> {
    let group_id = parsed_id("groupId", &group.group_id, GroupId::parse)?;
    Some(DirectoryGroup {
        group_id,
        display_name: group.display_name.unwrap_or_default(),
        description: group.description,
    })
}

/// The member of a membership, when it is a user with a valid id (groups hold only users today;
/// `Unknown` is a member kind this SDK version does not know).
fn member_user(member: Option<MemberId>) -> Option<UserId> {
    match member {
        Some(MemberId::UserId(raw)) => parsed_id("memberId.userId", &raw, UserId::parse),
        _ => {
            tracing::warn!("skipping an Identity Store membership whose member is not a user");
            None
        }
    }
}

/// A membership listed for `group`: the group is the one asked about.
fn membership_of_group(group: &GroupId, m: GroupMembership) -> Option<Membership> {
    let membership_id = parsed_id("membershipId", &m.membership_id, MembershipId::parse)?;
    let user_id = member_user(m.member_id)?;
    Some(Membership { membership_id, group_id: group.clone(), user_id })
}

/// A membership listed for `user`: the user is the one asked about, the group comes from AWS.
fn membership_of_user(user: &UserId, m: GroupMembership) -> Option<Membership> {
    let membership_id = parsed_id("membershipId", &m.membership_id, MembershipId::parse)?;
    let group_id = parsed_id("groupId", m.group_id.as_deref().unwrap_or_default(), GroupId::parse)?;
    Some(Membership { membership_id, group_id, user_id: user.clone() })
}

/// The `UniqueAttribute` alternate identifier `GetUserId`/`GetGroupId` look a name up by.
fn unique_attribute(operation: &'static str, path: &str, value: &str) -> Result<AlternateIdentifier, DirectoryError> {
    let attribute = UniqueAttribute::builder()
        .attribute_path(path)
        .attribute_value(Document::String(value.to_owned()))
        .build()
        .map_err(|e| DirectoryError::Aws { operation, source: Box::new(e) })?;
    Ok(AlternateIdentifier::UniqueAttribute(attribute))
}

impl Directory for IdentityStoreDirectory {
    #[tracing::instrument(skip_all, fields(identity_store_id = %store, user_id = %user))]
    async fn describe_user(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.pacer.wait().await;
        let result = self.client.describe_user().identity_store_id(store.as_str()).user_id(user.as_str()).send().await;
        match result {
            // The id answered is the one asked; ours is already parsed.
            Ok(out) => Ok(Some(directory_user(user.clone(), out.user_name, out.display_name, out.emails))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(directory_error("DescribeUser", e)),
        }
    }

    #[tracing::instrument(skip_all, fields(identity_store_id = %store, group_id = %group))]
    async fn group_memberships(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
        next_token: Option<String>,
    ) -> Result<Page<Membership>, DirectoryError> {
        self.pacer.wait().await;
        let with_token = next_token.is_some();
        let out = self
            .client
            .list_group_memberships()
            .identity_store_id(store.as_str())
            .group_id(group.as_str())
            .max_results(PAGE_SIZE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| list_of_error("ListGroupMemberships", with_token, e))?;
        Ok(Page {
            items: out.group_memberships.into_iter().filter_map(|m| membership_of_group(group, m)).collect(),
            next_token: out.next_token,
        })
    }
}

impl DirectorySearch for IdentityStoreDirectory {
    #[tracing::instrument(skip_all, fields(identity_store_id = %store, group_id = %group))]
    async fn describe_group(
        &self,
        store: &IdentityStoreId,
        group: &GroupId,
    ) -> Result<Option<DirectoryGroup>, DirectoryError> {
        self.pacer.wait().await;
        let result =
            self.client.describe_group().identity_store_id(store.as_str()).group_id(group.as_str()).send().await;
        match result {
            Ok(out) => Ok(Some(DirectoryGroup {
                group_id: group.clone(),
                display_name: out.display_name.unwrap_or_default(),
                description: out.description,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(directory_error("DescribeGroup", e)),
        }
    }

    // No span fields: the name is personal data and must not reach the logs.
    async fn user_id_by_name(
        &self,
        store: &IdentityStoreId,
        user_name: &str,
    ) -> Result<Option<UserId>, DirectoryError> {
        self.pacer.wait().await;
        const OPERATION: &str = "GetUserId";
        let result = self
            .client
            .get_user_id()
            .identity_store_id(store.as_str())
            .alternate_identifier(unique_attribute(OPERATION, "userName", user_name)?)
            .send()
            .await;
        match result {
            Ok(out) => Ok(parsed_id("userId", &out.user_id, UserId::parse)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(directory_error(OPERATION, e)),
        }
    }

    async fn group_id_by_name(
        &self,
        store: &IdentityStoreId,
        display_name: &str,
    ) -> Result<Option<GroupId>, DirectoryError> {
        self.pacer.wait().await;
        const OPERATION: &str = "GetGroupId";
        let result = self
            .client
            .get_group_id()
            .identity_store_id(store.as_str())
            .alternate_identifier(unique_attribute(OPERATION, "displayName", display_name)?)
            .send()
            .await;
        match result {
            Ok(out) => Ok(parsed_id("groupId", &out.group_id, GroupId::parse)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(directory_error(OPERATION, e)),
        }
    }

    #[tracing::instrument(skip_all, fields(identity_store_id = %store))]
    async fn list_users(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<DirectoryUser>, DirectoryError> {
        self.pacer.wait().await;
        let out = self
            .client
            .list_users()
            .identity_store_id(store.as_str())
            .max_results(page_size(limit))
            .set_next_token(next_token.clone())
            .send()
            .await
            .map_err(|e| listing_error("ListUsers", next_token.is_some(), e))?;
        Ok(Page { items: out.users.into_iter().filter_map(listed_user).collect(), next_token: out.next_token })
    }

    #[tracing::instrument(skip_all, fields(identity_store_id = %store))]
    async fn list_groups(
        &self,
        store: &IdentityStoreId,
        limit: usize,
        next_token: Option<String>,
    ) -> Result<Page<DirectoryGroup>, DirectoryError> {
        self.pacer.wait().await;
        let out = self
            .client
            .list_groups()
            .identity_store_id(store.as_str())
            .max_results(page_size(limit))
            .set_next_token(next_token.clone())
            .send()
            .await
            .map_err(|e| listing_error("ListGroups", next_token.is_some(), e))?;
        Ok(Page { items: out.groups.into_iter().filter_map(listed_group).collect(), next_token: out.next_token })
    }
}

impl MemberGroups for IdentityStoreDirectory {
    #[tracing::instrument(skip_all, fields(identity_store_id = %store, user_id = %user))]
    async fn user_memberships(
        &self,
        store: &IdentityStoreId,
        user: &UserId,
    ) -> Result<Vec<Membership>, DirectoryError> {
        self.pacer.wait().await;
        // The SDK's paginator follows NextToken and stops if the service repeats a token.
        let mut pages = self
            .client
            .list_group_memberships_for_member()
            .identity_store_id(store.as_str())
            .member_id(MemberId::UserId(user.as_str().to_owned()))
            .into_paginator()
            .page_size(PAGE_SIZE)
            .send();
        let mut memberships = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| list_of_error("ListGroupMembershipsForMember", false, e))?;
            // Every page is paced, not only the first: the next `next()` sends a request.
            if page.next_token.is_some() {
                self.pacer.wait().await;
            }
            memberships.extend(page.group_memberships.into_iter().filter_map(|m| membership_of_user(user, m)));
        }
        Ok(memberships)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_identitystore::config::retry::RetryConfig;
    use aws_sdk_identitystore::operation::describe_user::DescribeUserOutput;
    use aws_sdk_identitystore::operation::get_user_id::GetUserIdOutput;
    use aws_sdk_identitystore::operation::list_group_memberships::ListGroupMembershipsOutput;
    use aws_sdk_identitystore::operation::list_group_memberships_for_member::ListGroupMembershipsForMemberOutput;
    use aws_sdk_identitystore::operation::list_users::ListUsersOutput;
    use aws_sdk_identitystore::types::error::{AccessDeniedException, ResourceNotFoundException, ThrottlingException};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;

    const STORE: &str = "d-1234567890";
    const ALICE: &str = "94482488-3041-7026-18f3-be45837cd0e4";
    const TEAM: &str = "a4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5e";
    const OTHER: &str = "b4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d5f";
    const M1: &str = "c4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d60";
    const M2: &str = "d4d8e4a8-1071-70f6-1c5e-6f1a2b3c4d61";

    fn store() -> IdentityStoreId {
        IdentityStoreId::parse("identityStoreId", STORE).unwrap()
    }

    fn alice() -> UserId {
        UserId::parse("userId", ALICE).unwrap()
    }

    fn team() -> GroupId {
        GroupId::parse("groupId", TEAM).unwrap()
    }

    /// A directory whose client answers from `rules`, in order. The SDK's retries are off: the
    /// adapter sees what would have survived them.
    fn directory(rules: &[&Rule]) -> IdentityStoreDirectory {
        let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, rules, |c| {
            c.retry_config(RetryConfig::disabled())
        });
        IdentityStoreDirectory::new(client)
    }

    fn membership(membership_id: &str, group_id: &str, user_id: &str) -> GroupMembership {
        GroupMembership::builder()
            .identity_store_id(STORE)
            .membership_id(membership_id)
            .membership_arn(format!("arn:aws:identitystore::123456789012:membership/{membership_id}"))
            .group_id(group_id)
            .member_id(MemberId::UserId(user_id.to_owned()))
            .build()
            .unwrap()
    }

    fn email(value: &str, primary: bool) -> Email {
        Email::builder().value(value).primary(primary).build()
    }

    #[tokio::test]
    async fn a_user_that_does_not_exist_is_none() {
        let not_found = mock!(Client::describe_user)
            .then_error(|| DescribeUserError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
        let dir = directory(&[&not_found]);

        assert_eq!(dir.describe_user(&store(), &alice()).await.unwrap(), None);
    }

    /// The memberships of a group or user that no longer exists: `NotFound`, which the callers
    /// treat as the principal's deletion (not a failure to retry for ever).
    #[tokio::test]
    async fn the_memberships_of_a_deleted_group_or_user_are_not_found() {
        let group_gone = mock!(Client::list_group_memberships).then_error(|| {
            ListGroupMembershipsError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
        });
        let user_gone = mock!(Client::list_group_memberships_for_member).then_error(|| {
            ListGroupMembershipsForMemberError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
        });
        let dir = directory(&[&group_gone, &user_gone]);
        let err = dir.group_memberships(&store(), &team(), None).await.unwrap_err();
        assert!(matches!(err, DirectoryError::NotFound { operation: "ListGroupMemberships" }), "{err:?}");
        let err = dir.user_memberships(&store(), &alice()).await.unwrap_err();
        assert!(matches!(err, DirectoryError::NotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_described_user_keeps_the_primary_email() {
        let found = mock!(Client::describe_user)
            .match_requests(|req| req.identity_store_id() == Some(STORE) && req.user_id() == Some(ALICE))
            .then_output(|| {
                DescribeUserOutput::builder()
                    .identity_store_id(STORE)
                    .user_id(ALICE)
                    .user_arn(format!("arn:aws:identitystore:::user/{ALICE}"))
                    .revision("1")
                    .user_name("alice")
                    .display_name("Alice Liddell")
                    .emails(email("work@example.com", false))
                    .emails(email("alice@example.com", true))
                    .build()
                    .unwrap()
            });
        let dir = directory(&[&found]);

        let user = dir.describe_user(&store(), &alice()).await.unwrap().unwrap();

        assert_eq!(
            user,
            DirectoryUser {
                user_id: alice(),
                user_name: "alice".into(),
                display_name: "Alice Liddell".into(),
                email: Some("alice@example.com".into()),
            }
        );
    }

    #[test]
    fn without_a_primary_the_first_email_with_a_value_is_kept() {
        let emails = [email("", true), email("first@example.com", false), email("second@example.com", false)];
        assert_eq!(preferred_email(&emails).as_deref(), Some("first@example.com"));
        assert_eq!(preferred_email(&[]), None);
    }

    #[tokio::test]
    async fn a_user_name_is_looked_up_as_the_unique_attribute_user_name() {
        let lookup = mock!(Client::get_user_id)
            .match_requests(|req| {
                req.alternate_identifier().and_then(|id| id.as_unique_attribute().ok()).is_some_and(|attr| {
                    attr.attribute_path() == "userName" && attr.attribute_value() == &Document::String("alice".into())
                })
            })
            .then_output(|| {
                GetUserIdOutput::builder()
                    .identity_store_id(STORE)
                    .user_id(ALICE)
                    .user_arn(format!("arn:aws:identitystore:::user/{ALICE}"))
                    .build()
                    .unwrap()
            });
        let unknown = mock!(Client::get_user_id)
            .then_error(|| GetUserIdError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
        let dir = directory(&[&lookup, &unknown]);

        assert_eq!(dir.user_id_by_name(&store(), "alice").await.unwrap(), Some(alice()));
        assert_eq!(dir.user_id_by_name(&store(), "nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn throttling_that_survives_retries_is_throttled() {
        let throttled = mock!(Client::list_users)
            .then_error(|| ListUsersError::ThrottlingException(ThrottlingException::builder().build()));
        let dir = directory(&[&throttled]);

        let err = dir.list_users(&store(), 100, None).await.unwrap_err();

        assert!(matches!(err, DirectoryError::Throttled { operation: "ListUsers", .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_refused_next_token_is_an_invalid_token_and_without_one_a_failure() {
        let refused = || {
            ListUsersError::ValidationException(
                // As the SDK parses it: the error code in the metadata.
                aws_sdk_identitystore::types::error::ValidationException::builder()
                    .message("bad token")
                    .meta(aws_smithy_types::error::ErrorMetadata::builder().code("ValidationException").build())
                    .build(),
            )
        };
        let with_token = mock!(Client::list_users).then_error(refused);
        let dir = directory(&[&with_token]);
        let err = dir.list_users(&store(), 100, Some("forged".into())).await.unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidToken { operation: "ListUsers" }), "{err:?}");

        let without = mock!(Client::list_users).then_error(refused);
        let dir = directory(&[&without]);
        let err = dir.list_users(&store(), 100, None).await.unwrap_err();
        assert!(matches!(err, DirectoryError::Aws { operation: "ListUsers", .. }), "{err:?}");
    }

    #[tokio::test]
    async fn other_failures_keep_the_sdk_error_as_source() {
        let denied = mock!(Client::describe_group)
            .then_error(|| DescribeGroupError::AccessDeniedException(AccessDeniedException::builder().build()));
        let dir = directory(&[&denied]);

        let err = dir.describe_group(&store(), &team()).await.unwrap_err();

        assert!(matches!(err, DirectoryError::Aws { operation: "DescribeGroup", .. }), "{err:?}");
        let source = std::error::Error::source(&err).expect("the SDK error is kept");
        assert!(
            source.is::<SdkError<DescribeGroupError, aws_smithy_runtime_api::client::orchestrator::HttpResponse>>()
        );
    }

    #[tokio::test]
    async fn a_users_memberships_follow_next_token_across_pages() {
        // Given two pages of memberships for alice
        let first = mock!(Client::list_group_memberships_for_member)
            .match_requests(|req| {
                req.next_token().is_none()
                    && req.max_results() == Some(100)
                    && req.member_id().and_then(|m| m.as_user_id().ok()).is_some_and(|id| id == ALICE)
            })
            .then_output(|| {
                ListGroupMembershipsForMemberOutput::builder()
                    .group_memberships(membership(M1, TEAM, ALICE))
                    .next_token("page-2")
                    .build()
                    .unwrap()
            });
        let second = mock!(Client::list_group_memberships_for_member)
            .match_requests(|req| req.next_token() == Some("page-2"))
            .then_output(|| {
                ListGroupMembershipsForMemberOutput::builder()
                    .group_memberships(membership(M2, OTHER, ALICE))
                    .build()
                    .unwrap()
            });
        let dir = directory(&[&first, &second]);

        // When all of alice's memberships are asked for
        let memberships = dir.user_memberships(&store(), &alice()).await.unwrap();

        // Then both pages were read
        let groups: Vec<&str> = memberships.iter().map(|m| m.group_id.as_str()).collect();
        assert_eq!(groups, [TEAM, OTHER]);
        assert!(memberships.iter().all(|m| m.user_id == alice()));
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn entries_with_ids_that_do_not_parse_are_skipped() {
        let page = mock!(Client::list_group_memberships)
            .match_requests(|req| req.group_id() == Some(TEAM) && req.max_results() == Some(100))
            .then_output(|| {
                ListGroupMembershipsOutput::builder()
                    .group_memberships(membership("not-a-membership-id", TEAM, ALICE))
                    .group_memberships(membership(M1, TEAM, ALICE))
                    .group_memberships(membership(M2, TEAM, "not-a-user-id"))
                    .next_token("more")
                    .build()
                    .unwrap()
            });
        let users = mock!(Client::list_users).then_output(|| {
            ListUsersOutput::builder()
                .users(
                    User::builder()
                        .identity_store_id(STORE)
                        .user_id("../../etc/passwd")
                        .user_arn("arn")
                        .revision("1")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
        let dir = directory(&[&page, &users]);

        let memberships = dir.group_memberships(&store(), &team(), None).await.unwrap();
        assert_eq!(
            memberships,
            Page {
                items: vec![Membership {
                    membership_id: MembershipId::parse("m", M1).unwrap(),
                    group_id: team(),
                    user_id: alice(),
                }],
                next_token: Some("more".into()),
            }
        );
        assert_eq!(dir.list_users(&store(), 100, None).await.unwrap().items, []);
    }
}
