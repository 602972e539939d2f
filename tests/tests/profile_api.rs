//! `create-profile` end to end: API Gateway payloads from `events/http/` through the handler,
//! the real DynamoDB SDK calls, and moto.

use create_profile::{Deps, handle};
use kiro::aws::DynamoStore;
use kiro_tests::{World, error_code, http_event, status_and_json};
use serde_json::{Value, json};

fn deps(world: &World, region: &str) -> Deps<DynamoStore> {
    Deps {
        store: DynamoStore::new(world.dynamo.clone(), &world.table),
        region: region.to_owned(),
        supported_regions: vec!["us-east-1".into(), "eu-central-1".into()],
    }
}

fn new_profile_body() -> Value {
    json!({"name": "Platform team", "description": "Kiro seats", "identityStoreId": "d-1234567890"})
}

#[tokio::test]
async fn create_then_get_returns_the_same_profile() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");

    let created = handle(&deps, http_event("create-profile.json", Some(new_profile_body()))).await.unwrap();
    let (status, created) = status_and_json(&created);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Platform team");
    assert_eq!(created["region"], "us-east-1");
    assert_eq!(created["identityStoreId"], "d-1234567890");
    assert_eq!(created["createdAt"], created["updatedAt"]);
    for key in ["profileId", "name", "description", "region", "identityStoreId", "createdAt", "updatedAt"] {
        assert!(created.get(key).is_some(), "missing {key} in {created}");
    }

    let (status, fetched) = status_and_json(&handle(&deps, http_event("get-profile.json", None)).await.unwrap());
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn the_caller_is_recorded_as_actor() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");
    handle(&deps, http_event("create-profile.json", Some(new_profile_body()))).await.unwrap();

    let item = world
        .dynamo
        .get_item()
        .table_name(&world.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let actor = item["createdBy"].as_s().unwrap();
    assert_eq!(actor, "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/alice");
}

/// Contract: without an IAM caller in the request context the actor is `anonymous`.
#[tokio::test]
async fn a_caller_without_iam_identity_is_recorded_as_anonymous() {
    let world = World::new().await;
    let mut raw = kiro_tests::fixture("http/create-profile.json");
    raw["requestContext"].as_object_mut().unwrap().remove("authorizer");
    raw["body"] = Value::String(new_profile_body().to_string());
    let resp = handle(&deps(&world, "us-east-1"), kiro_tests::http_event_from(raw)).await.unwrap();
    assert_eq!(resp.status_code, 201);
    let item = world
        .dynamo
        .get_item()
        .table_name(&world.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["createdBy"].as_s().unwrap(), "anonymous");
}

#[tokio::test]
async fn get_before_create_is_not_found() {
    let world = World::new().await;
    let resp = handle(&deps(&world, "us-east-1"), http_event("get-profile.json", None)).await.unwrap();
    assert_eq!(resp.status_code, 404);
    assert_eq!(error_code(&resp), "NotFound");
}

#[tokio::test]
async fn a_second_profile_is_refused() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");
    let first = handle(&deps, http_event("create-profile.json", Some(new_profile_body()))).await.unwrap();
    assert_eq!(first.status_code, 201);
    let second = handle(&deps, http_event("create-profile.json", Some(new_profile_body()))).await.unwrap();
    assert_eq!(second.status_code, 409);
    assert_eq!(error_code(&second), "ProfileAlreadyExists");
}

/// Concurrent creations race on the conditional write: exactly one wins, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creations_make_exactly_one_profile() {
    let world = World::new().await;
    let deps = std::sync::Arc::new(deps(&world, "us-east-1"));
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let deps = deps.clone();
            tokio::spawn(async move {
                let body = json!({"name": format!("racer {i}"), "identityStoreId": "d-1234567890"});
                handle(&deps, http_event("create-profile.json", Some(body))).await.unwrap()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for r in racers {
        let resp = r.await.unwrap();
        codes.push((resp.status_code, error_code(&resp)));
    }
    assert_eq!(codes.iter().filter(|(s, _)| *s == 201).count(), 1, "{codes:?}");
    assert!(
        codes.iter().filter(|(s, _)| *s != 201).all(|(s, c)| *s == 409 && c == "ProfileAlreadyExists"),
        "{codes:?}"
    );
}

#[tokio::test]
async fn creation_outside_the_supported_regions_names_them() {
    let world = World::new().await;
    let resp =
        handle(&deps(&world, "ap-south-1"), http_event("create-profile.json", Some(new_profile_body()))).await.unwrap();
    let (status, body) = status_and_json(&resp);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "UnsupportedRegion");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("us-east-1") && message.contains("eu-central-1"), "{message}");
    // Nothing was written.
    let resp = handle(&deps(&world, "us-east-1"), http_event("get-profile.json", None)).await.unwrap();
    assert_eq!(resp.status_code, 404);
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");
    for body in ["not json", "[1,2]", "\"text\"", "", "{\"name\": "] {
        let mut raw = kiro_tests::fixture("http/create-profile.json");
        raw["body"] = Value::String(body.to_owned());
        let resp = handle(&deps, kiro_tests::http_event_from(raw)).await.unwrap();
        assert_eq!((resp.status_code, error_code(&resp)), (400, "BadRequest".to_owned()), "body {body:?}");
    }
}

#[tokio::test]
async fn invalid_fields_are_validation_errors_naming_the_field() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");
    let cases = [
        (json!({"identityStoreId": "d-1234567890"}), "name"),
        (json!({"name": "", "identityStoreId": "d-1234567890"}), "name"),
        (json!({"name": "x".repeat(101), "identityStoreId": "d-1234567890"}), "name"),
        (json!({"name": "n", "description": "x".repeat(257), "identityStoreId": "d-1234567890"}), "description"),
        (json!({"name": "n", "identityStoreId": "d-XYZ"}), "identityStoreId"),
        (json!({"name": "n"}), "identityStoreId"),
    ];
    for (body, field) in cases {
        let resp = handle(&deps, http_event("create-profile.json", Some(body.clone()))).await.unwrap();
        let (status, out) = status_and_json(&resp);
        assert_eq!((status, out["error"]["code"].as_str().unwrap()), (400, "ValidationError"), "{body}");
        assert!(out["error"]["message"].as_str().unwrap().contains(field), "{out} should name {field}");
        assert!(out["error"]["requestId"].as_str().unwrap().starts_with("req-"));
    }
}

#[tokio::test]
async fn patch_changes_name_and_description_only() {
    let world = World::new().await;
    let deps = deps(&world, "us-east-1");
    let (_, created) =
        status_and_json(&handle(&deps, http_event("create-profile.json", Some(new_profile_body()))).await.unwrap());

    let resp = handle(&deps, http_event("patch-profile.json", Some(json!({"name": "Renamed"})))).await.unwrap();
    let (status, patched) = status_and_json(&resp);
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["description"], created["description"]);
    assert_eq!(patched["profileId"], created["profileId"]);
    assert_eq!(patched["createdAt"], created["createdAt"]);
    assert!(patched["updatedAt"].as_str() >= created["updatedAt"].as_str());

    let resp = handle(&deps, http_event("patch-profile.json", Some(json!({"identityStoreId": "d-0000000000"}))))
        .await
        .unwrap();
    let (status, body) = status_and_json(&resp);
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (400, "ValidationError"));
    assert!(body["error"]["message"].as_str().unwrap().contains("identityStoreId"));
}

#[tokio::test]
async fn patch_before_create_is_not_found() {
    let world = World::new().await;
    let resp =
        handle(&deps(&world, "us-east-1"), http_event("patch-profile.json", Some(json!({"name": "x"})))).await.unwrap();
    assert_eq!((resp.status_code, error_code(&resp)), (404, "NotFound".to_owned()));
}

#[tokio::test]
async fn unknown_routes_are_not_found() {
    let world = World::new().await;
    let mut raw = kiro_tests::fixture("http/get-profile.json");
    raw["rawPath"] = json!("/profiles/../profile/x");
    let resp = handle(&deps(&world, "us-east-1"), kiro_tests::http_event_from(raw)).await.unwrap();
    assert_eq!((resp.status_code, error_code(&resp)), (404, "NotFound".to_owned()));
}
