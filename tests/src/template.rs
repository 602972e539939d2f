//! Reads `template.yaml` (CloudFormation tags included) for the harness and the template tests.

use serde_yaml::Value;

use crate::repo_root;

/// The template as a YAML tree; CloudFormation short forms (`!Ref x`) load as tagged values.
pub fn load() -> Value {
    let path = repo_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml is readable");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

/// The `Table` resource's declaration.
pub struct TableSpec {
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexSpec>,
    pub billing_mode: String,
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`: what the table's stream carries, when it has one.
    pub stream_view_type: Option<String>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("template: '{key}' is not a string in {v:?}"))
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .expect("KeySchema is a list")
        .iter()
        .map(|k| (str_of(k, "AttributeName").to_owned(), str_of(k, "KeyType").to_owned()))
        .collect()
}

pub fn table_spec() -> TableSpec {
    let template = load();
    let table = &template["Resources"]["Table"];
    assert_eq!(str_of(table, "Type"), "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    TableSpec {
        attributes: p["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions")
            .iter()
            .map(|a| (str_of(a, "AttributeName").to_owned(), str_of(a, "AttributeType").to_owned()))
            .collect(),
        key_schema: key_schema(&p["KeySchema"]),
        indexes: p["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|gs| {
                gs.iter()
                    .map(|g| IndexSpec {
                        name: str_of(g, "IndexName").to_owned(),
                        key_schema: key_schema(&g["KeySchema"]),
                        projection: str_of(&g["Projection"], "ProjectionType").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        billing_mode: p["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST").to_owned(),
        ttl_attribute: p["TimeToLiveSpecification"]["AttributeName"].as_str().map(str::to_owned),
        stream_view_type: p["StreamSpecification"]["StreamViewType"].as_str().map(str::to_owned),
    }
}
