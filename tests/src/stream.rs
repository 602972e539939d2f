//! The table's DynamoDB stream, read as Lambda's event source mapping reads it for
//! `publish-events` (moto implements DynamoDB Streams): from the oldest record, the records the
//! template's `FilterCriteria` lets through, at most `BatchSize` an invocation, and the
//! checkpoint moved as a partial batch response says. Everything about the event source is read
//! from `template.yaml`'s declaration.

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use lambda_runtime::LambdaEvent;
use serde_json::{Map, Value, json};

/// The publisher's event source in the template: its filter patterns and batch size.
pub struct EventSource {
    pub patterns: Vec<Value>,
    pub batch_size: usize,
}

impl EventSource {
    /// `publish-events`' `DynamoDB` event in `template.yaml`.
    pub fn from_template() -> EventSource {
        let template = crate::template::load();
        let resources = template["Resources"].as_mapping().expect("Resources");
        let function = resources
            .values()
            .find(|r| r["Metadata"]["BuildProperties"]["Binary"] == "publish-events")
            .expect("template.yaml declares publish-events");
        let events = function["Properties"]["Events"].as_mapping().expect("publish-events has an event source");
        let source = events.values().find(|e| e["Type"] == "DynamoDB").expect("a DynamoDB event source");
        let p = &source["Properties"];
        let patterns = p["FilterCriteria"]["Filters"]
            .as_sequence()
            .map(|filters| {
                filters
                    .iter()
                    .map(|f| serde_json::from_str(f["Pattern"].as_str().expect("a pattern")).expect("JSON"))
                    .collect()
            })
            .unwrap_or_default();
        let batch_size = p["BatchSize"].as_u64().unwrap_or(100) as usize;
        EventSource { patterns, batch_size }
    }

    /// Whether Lambda hands `record` to the function: no filter, or one that matches.
    pub fn delivers(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| matches(p, record))
    }
}

/// Lambda's event filtering (EventBridge's pattern syntax) for what the template uses: nested
/// objects, lists of exact values and `{"prefix": ...}`. Anything else panics, so this is
/// extended, not bypassed.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    let pattern = pattern.as_object().expect("a filter pattern is an object");
    pattern.iter().all(|(key, p)| {
        let value = record.get(key);
        match p {
            Value::Object(_) => value.is_some_and(|v| v.is_object() && matches(p, v)),
            Value::Array(alternatives) => alternatives.iter().any(|alt| match alt {
                Value::Object(op) => match (op.len(), op.get("prefix")) {
                    (1, Some(Value::String(prefix))) => {
                        value.and_then(Value::as_str).is_some_and(|v| v.starts_with(prefix.as_str()))
                    }
                    _ => panic!("filter operator {alt} is not supported here: extend the matcher"),
                },
                exact => value == Some(exact),
            }),
            other => panic!("a filter pattern's values are objects or lists, not {other}"),
        }
    })
}

/// Reads one table's stream, as Lambda's event source mapping of `publish-events` does.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    shard_id: String,
    source: EventSource,
    /// The checkpoint: the last sequence number done with (`None`: from the oldest record).
    after: Option<String>,
}

/// Records handed to the function in one invocation.
pub struct Batch {
    /// The invocation's payload (`{"Records": [...]}`).
    pub event: Value,
    /// Sequence numbers of every record read for it, the filtered-out ones included, in order.
    read: Vec<String>,
}

impl Batch {
    /// The payload as the function's handler takes it.
    pub fn lambda_event(&self) -> LambdaEvent<Event> {
        let event = serde_json::from_value(self.event.clone()).expect("a DynamoDB stream event");
        LambdaEvent::new(event, crate::invocation(&crate::unique("stream")))
    }

    /// How many records it hands over.
    pub fn len(&self) -> usize {
        self.event["Records"].as_array().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StreamReader {
    /// The stream of `table` (made from the template, so it has one), from its oldest record.
    pub async fn new(sdk: &SdkConfig, table: &str) -> StreamReader {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let described = dynamo.describe_table().table_name(table).send().await.expect("DescribeTable");
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the table has a stream: template.yaml declares its StreamSpecification")
            .to_owned();
        let client = aws_sdk_dynamodbstreams::Client::new(sdk);
        let stream = client.describe_stream().stream_arn(&stream_arn).send().await.expect("DescribeStream");
        let shard_id = stream
            .stream_description()
            .and_then(|d| d.shards().first())
            .and_then(|s| s.shard_id())
            .expect("the stream has a shard")
            .to_owned();
        StreamReader { client, stream_arn, shard_id, source: EventSource::from_template(), after: None }
    }

    /// The next invocation's records: those after the checkpoint the filter lets through, at most
    /// `BatchSize`. `None` when none is left (the checkpoint then moves past what was filtered
    /// out). A fresh iterator every time: moto puts a table back whole when a transaction fails,
    /// so an old iterator would read a stream that is no longer the table's.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        let mut iterator = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(&self.shard_id);
        iterator = match &self.after {
            None => iterator.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Some(after) => iterator.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(after),
        };
        let iterator = iterator.send().await.expect("GetShardIterator").shard_iterator.expect("an iterator");
        let out = self.client.get_records().shard_iterator(iterator).limit(1000).send().await.expect("GetRecords");
        let (mut records, mut read) = (Vec::new(), Vec::new());
        for record in out.records() {
            let json = record_json(record, &self.stream_arn);
            let sequence = json["dynamodb"]["SequenceNumber"].as_str().expect("a sequence number").to_owned();
            if self.source.delivers(&json) {
                if records.len() == self.source.batch_size {
                    break;
                }
                records.push(json);
            }
            read.push(sequence);
        }
        if records.is_empty() {
            self.after = read.last().cloned().or(self.after.take());
            return None;
        }
        Some(Batch { event: json!({ "Records": records }), read })
    }

    /// Moves the checkpoint as Lambda does with the function's answer: past the whole batch,
    /// or, when it reports a record (the lowest sequence number counts), up to the one before.
    pub fn checkpoint(&mut self, batch: &Batch, answer: &Value) {
        let reported: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect())
            .unwrap_or_default();
        let lowest = batch.read.iter().position(|s| reported.contains(&s.as_str()));
        match lowest {
            None => self.after = batch.read.last().cloned(),
            Some(0) => {}
            Some(i) => self.after = Some(batch.read[i - 1].clone()),
        }
    }

    /// Runs `publish-events`' handler over every record the stream has for it, as Lambda would
    /// invoke it (at most `attempts` invocations). Answers the answers.
    pub async fn publish<S, E>(&mut self, deps: &publish_events::Deps<S, E>, attempts: usize) -> Vec<Value>
    where
        S: kiro::ports::Outboxes,
        E: kiro::ports::EventSink,
    {
        let mut answers = Vec::new();
        for _ in 0..attempts {
            let Some(batch) = self.next_batch().await else { return answers };
            let answer = publish_events::handle(deps, batch.lambda_event()).await.expect("the batch is handled");
            let answer = serde_json::to_value(answer).expect("JSON");
            self.checkpoint(&batch, &answer);
            answers.push(answer);
        }
        answers
    }
}

/// A stream record as Lambda delivers it (the shape of `aws_lambda_events`' `EventRecord`).
fn record_json(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb().expect("a stream record");
    let image = |item: Option<&std::collections::HashMap<String, AttributeValue>>| {
        item.map(|m| Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()))
    };
    let mut dynamodb = Map::new();
    dynamodb.insert(
        "ApproximateCreationDateTime".into(),
        json!(change.approximate_creation_date_time().map_or(0.0, |t| t.as_secs_f64())),
    );
    for (name, item) in [
        ("Keys", change.keys.as_ref()),
        ("NewImage", change.new_image.as_ref()),
        ("OldImage", change.old_image.as_ref()),
    ] {
        if let Some(item) = image(item) {
            dynamodb.insert(name.into(), item);
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(change.sequence_number()));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes().unwrap_or(0)));
    dynamodb.insert("StreamViewType".into(), json!(change.stream_view_type().map(|v| v.as_str())));
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source().unwrap_or("aws:dynamodb"),
        "awsRegion": record.aws_region().unwrap_or("us-east-1"),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn attribute(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<Map<_, _>>() }),
        other => panic!("the table holds no {other:?} attributes"),
    }
}
