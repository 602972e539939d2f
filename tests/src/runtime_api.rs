//! A minimal Lambda Runtime API (the 2018-06-01 interface Lambda serves to `provided.al2023`
//! bootstraps), so the real binaries can be started and invoked exactly as Lambda does.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// What the bootstrap posted back for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct State {
    outcomes: Vec<(String, Outcome)>,
    init_errors: Vec<Value>,
    /// When the first `next` arrived (cold start done).
    first_next: Option<std::time::Instant>,
}

pub struct RuntimeApi {
    pub address: String,
    events: mpsc::UnboundedSender<(String, Value)>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind runtime API");
        let address = listener.local_addr().expect("address").to_string();
        let (tx, rx) = mpsc::unbounded_channel::<(String, Value)>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let (s, c) = (state.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, rx.clone(), s.clone(), c.clone()));
            }
        });
        RuntimeApi { address, events: tx, state, changed }
    }

    /// Queues an invocation; the bootstrap receives it on its next `GET …/invocation/next`.
    pub fn invoke(&self, request_id: &str, event: Value) {
        self.events.send((request_id.to_owned(), event)).expect("server running");
    }

    /// Waits for the outcome of `request_id`.
    pub async fn outcome(&self, request_id: &str, limit: std::time::Duration) -> Option<Outcome> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some((_, o)) = self.state.lock().expect("lock").outcomes.iter().find(|(id, _)| id == request_id) {
                return Some(o.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn init_errors(&self) -> Vec<Value> {
        self.state.lock().expect("lock").init_errors.clone()
    }

    pub fn first_next(&self) -> Option<std::time::Instant> {
        self.state.lock().expect("lock").first_next
    }
}

type Events = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>>;

async fn serve(stream: TcpStream, events: Events, state: Arc<Mutex<State>>, changed: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let json = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        let response = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            state.lock().expect("lock").first_next.get_or_insert_with(std::time::Instant::now);
            let Some((id, event)) = events.lock().await.recv().await else { return };
            let body = event.to_string();
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:test\r\nlambda-runtime-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            let segments: Vec<&str> = path.split('/').collect();
            let mut s = state.lock().expect("lock");
            match segments.as_slice() {
                [.., "invocation", id, "response"] => s.outcomes.push(((*id).to_owned(), Outcome::Response(json))),
                [.., "invocation", id, "error"] => s.outcomes.push(((*id).to_owned(), Outcome::Error(json))),
                [.., "init", "error"] => s.init_errors.push(json),
                _ => {}
            }
            drop(s);
            changed.notify_waiters();
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n"
                .to_owned()
        };
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Gives `cmd` the environment Lambda gives a `provided.al2023` bootstrap named `name`, polling
/// `runtime_api`, and nothing of this process's.
pub fn as_lambda<'a>(
    cmd: &'a mut tokio::process::Command,
    name: &str,
    runtime_api: &str,
) -> &'a mut tokio::process::Command {
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .kill_on_drop(true)
}
