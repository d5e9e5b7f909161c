//! `[sink] type = "otlp"`: the second encoder of the shipping core. The spool, batches, retry,
//! TLS, token and proxy are the collector sink's; only the request differs. A spooled batch
//! (compressed ECS NDJSON, as for the collector) is turned into an OTLP
//! `ExportLogsServiceRequest` when it is sent, one `LogRecord` per event, encoded as protobuf
//! (`http/protobuf`, the default) or JSON (`http/json`) and compressed with the batch's own
//! encoding. Keeping NDJSON in the spool means a 413 split, a dead-letter file and a
//! partial-success rejection all work on the same readable lines for both sinks.
//!
//! The mapping of ECS fields to OTLP is in `ARCHITECTURE.md` ("OTLP mapping"); the code is
//! [`attribute_names`], [`severity`] and [`LogMapper::record`].
//!
//! **Architecture Invariant:** every field of an event reaches the receiver: a field with an
//! OpenTelemetry semantic-convention name goes under that name, a field the resource already
//! carries (host, agent) is dropped only when the record's value equals the resource's, and
//! everything else goes under `authtrail.<ECS name>`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::batch::AgentIdentity;

/// The path appended to `url` when `path` is not set (the OTLP/HTTP default for logs).
pub const DEFAULT_PATH: &str = "/v1/logs";

/// `InstrumentationScope.name` of every record.
pub const SCOPE_NAME: &str = "authtrail";

/// `protocol`: how the request is encoded, with OpenTelemetry's names for them
/// (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OtlpProtocol {
    /// Binary protobuf, `Content-Type: application/x-protobuf`.
    #[default]
    #[serde(rename = "http/protobuf")]
    Protobuf,
    /// The OTLP JSON encoding, `Content-Type: application/json`.
    #[serde(rename = "http/json")]
    Json,
}

impl OtlpProtocol {
    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpProtocol::Protobuf => "application/x-protobuf",
            OtlpProtocol::Json => "application/json",
        }
    }
}

/// The OTLP logs messages the agent sends and reads, written with `prost` derives from
/// opentelemetry-proto's `logs/v1/logs.proto`, `common/v1/common.proto`,
/// `resource/v1/resource.proto` and `collector/logs/v1/logs_service.proto` (v1.5+): only the
/// fields the agent sets (a receiver sees the others as unset, which is their meaning).
pub mod proto {
    /// `ExportLogsServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        /// `resource_logs = 1`.
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    /// `ResourceLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        /// `resource = 1`.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// `scope_logs = 2`.
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }

    /// `Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// `attributes = 1`.
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    /// `ScopeLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        /// `scope = 1`.
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// `log_records = 2`.
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }

    /// `InstrumentationScope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        /// `name = 1`.
        #[prost(string, tag = "1")]
        pub name: String,
        /// `version = 2`.
        #[prost(string, tag = "2")]
        pub version: String,
    }

    /// `LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        /// `fixed64 time_unix_nano = 1`: when the event happened (0: unknown).
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        /// `SeverityNumber severity_number = 2` (an enum, an int32 on the wire).
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        /// `severity_text = 3`.
        #[prost(string, tag = "3")]
        pub severity_text: String,
        /// `body = 5`.
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        /// `attributes = 6`.
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        /// `fixed64 observed_time_unix_nano = 11`: when the agent took the event.
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        /// `event_name = 12`.
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    /// `KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// `key = 1`.
        #[prost(string, tag = "1")]
        pub key: String,
        /// `value = 2`.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// `oneof value`.
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6")]
        pub value: Option<Value>,
    }

    /// `AnyValue.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value = 1`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value = 2`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value = 3`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value = 4`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `array_value = 5`.
        #[prost(message, tag = "5")]
        ArrayValue(ArrayValue),
        /// `kvlist_value = 6`.
        #[prost(message, tag = "6")]
        KvlistValue(KeyValueList),
    }

    /// `ArrayValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        /// `values = 1`.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    /// `KeyValueList`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        /// `values = 1`.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }

    /// `ExportLogsServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        /// `partial_success = 1`.
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportLogsPartialSuccess>,
    }

    /// `ExportLogsPartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsPartialSuccess {
        /// `rejected_log_records = 1`.
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        /// `error_message = 2`.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }
}

use proto::{AnyValue, KeyValue, LogRecord};

/// `SeverityNumber` values used ([OpenTelemetry's log data model]).
///
/// [OpenTelemetry's log data model]: https://opentelemetry.io/docs/specs/otel/logs/data-model/
pub mod severity_number {
    /// `SEVERITY_NUMBER_INFO`.
    pub const INFO: i32 = 9;
    /// `SEVERITY_NUMBER_WARN`.
    pub const WARN: i32 = 13;
    /// `SEVERITY_NUMBER_ERROR`.
    pub const ERROR: i32 = 17;
}

/// An alert's `event.severity` from which it is an `ERROR` (the detector's high, 73).
pub const ALERT_ERROR_FROM: u64 = 73;
/// An alert's `event.severity` from which it is a `WARN` (medium, 47); below (low, 21): `INFO`.
pub const ALERT_WARN_FROM: u64 = 47;

/// Severity number and text of an event: an alert by its `event.severity` (73 and up `ERROR`,
/// 47 and up `WARN`, lower `INFO`, none `WARN`); any other event `WARN` when its outcome is
/// `failure`, else `INFO`.
pub fn severity(event: &Map<String, Value>) -> (i32, &'static str) {
    let e = event.get("event");
    let field = |k: &str| e.and_then(|e| e.get(k));
    let number = if field("kind").and_then(Value::as_str) == Some("alert") {
        match field("severity").and_then(Value::as_u64) {
            Some(s) if s >= ALERT_ERROR_FROM => severity_number::ERROR,
            Some(s) if s >= ALERT_WARN_FROM => severity_number::WARN,
            Some(_) => severity_number::INFO,
            None => severity_number::WARN,
        }
    } else if field("outcome").and_then(Value::as_str) == Some("failure") {
        severity_number::WARN
    } else {
        severity_number::INFO
    };
    let text = match number {
        severity_number::ERROR => "ERROR",
        severity_number::WARN => "WARN",
        _ => "INFO",
    };
    (number, text)
}

/// The attribute name(s) an event field (its dotted ECS name) goes under. Fields with a place of
/// their own (`@timestamp`, `message`, `event.action`, the resource's) are handled by
/// [`LogMapper::record`] before this is asked.
pub fn attribute_names(ecs: &str) -> Vec<String> {
    let same = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    match ecs {
        "user.name" | "user.id" | "process.pid" | "log.file.path" => same(&[ecs]),
        "process.name" => same(&["process.executable.name"]),
        // The address sshd saw the login come from: the connection's source, which is also
        // the client of the login service (semantic conventions `source.*` and `client.*`).
        "source.ip" => same(&["source.address", "client.address"]),
        "source.port" => same(&["source.port", "client.port"]),
        _ if ecs.starts_with("authtrail.") => vec![ecs.to_owned()],
        _ => vec![format!("authtrail.{ecs}")],
    }
}

/// A JSON value as an OTLP `AnyValue` (`None` for null).
fn any_value(v: &Value) -> Option<AnyValue> {
    use proto::Value as V;
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => V::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::IntValue(i),
            // Above i64 (a u64 the agent never emits today): as text, exactly.
            None if n.is_u64() => V::StringValue(n.to_string()),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => V::StringValue(s.clone()),
        Value::Array(a) => V::ArrayValue(proto::ArrayValue {
            values: a.iter().filter_map(any_value).collect(),
        }),
        Value::Object(o) => V::KvlistValue(proto::KeyValueList {
            values: o
                .iter()
                .filter_map(|(k, v)| Some(key_value(k.clone(), any_value(v)?)))
                .collect(),
        }),
    };
    Some(AnyValue { value: Some(value) })
}

fn key_value(key: String, value: AnyValue) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
    }
}

fn text(s: &str) -> AnyValue {
    AnyValue {
        value: Some(proto::Value::StringValue(s.to_owned())),
    }
}

/// Leaves of a JSON object with their dotted names (arrays are leaves).
fn flatten<'a>(prefix: &str, object: &'a Map<String, Value>, out: &mut Vec<(String, &'a Value)>) {
    for (k, v) in object {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(o) => flatten(&name, o, out),
            _ => out.push((name, v)),
        }
    }
}

/// Turns the agent's ECS documents into OTLP log records for one agent (the resource).
#[derive(Debug, Clone)]
pub struct LogMapper {
    protocol: OtlpProtocol,
    /// (ECS field, value) pairs the resource carries: a record's equal value is not repeated.
    on_resource: Vec<(&'static str, String)>,
    resource: proto::Resource,
    version: String,
}

impl LogMapper {
    /// The mapper for this agent: resource attributes `service.name = "authtrail"`,
    /// `service.version`, `service.instance.id` (the agent id), `host.name`, `host.id` (when
    /// known) and `os.type = "linux"`.
    pub fn new(protocol: OtlpProtocol, identity: &AgentIdentity) -> LogMapper {
        let mut on_resource = vec![
            ("agent.id", identity.agent_id.clone()),
            ("agent.version", identity.version.clone()),
        ];
        let mut attributes = vec![
            key_value("service.name".into(), text("authtrail")),
            key_value("service.version".into(), text(&identity.version)),
            key_value("service.instance.id".into(), text(&identity.agent_id)),
        ];
        if let Some(h) = &identity.facts.hostname {
            attributes.push(key_value("host.name".into(), text(h)));
            on_resource.push(("host.hostname", h.clone()));
        }
        if let Some(h) = &identity.facts.host_id {
            attributes.push(key_value("host.id".into(), text(h)));
            on_resource.push(("host.id", h.clone()));
        }
        attributes.push(key_value("os.type".into(), text("linux")));
        LogMapper {
            protocol,
            on_resource,
            resource: proto::Resource { attributes },
            version: identity.version.clone(),
        }
    }

    /// The protocol it encodes for.
    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// One event (a line of the agent's ECS NDJSON) as a log record; `observed` is when the
    /// agent took it (the batch's spool time). A line that is not a JSON object (the agent
    /// never writes one) still goes out, whole, as the body.
    pub fn record(&self, line: &[u8], observed_unix_nano: u64) -> LogRecord {
        let mut record = LogRecord {
            observed_time_unix_nano: observed_unix_nano,
            ..LogRecord::default()
        };
        let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(line) else {
            record.body = Some(text(&String::from_utf8_lossy(line)));
            return record;
        };
        let (number, severity_text) = severity(&event);
        record.severity_number = number;
        record.severity_text = severity_text.to_owned();
        let mut fields = Vec::new();
        flatten("", &event, &mut fields);
        let has_ip = fields.iter().any(|(k, _)| k == "source.ip");
        for (name, value) in fields {
            match (name.as_str(), value) {
                ("@timestamp", Value::String(t)) => {
                    if let Some(ns) = unix_nanos(t) {
                        record.time_unix_nano = ns;
                        continue;
                    }
                }
                ("message", Value::String(m)) => {
                    record.body = Some(text(m));
                    continue;
                }
                ("event.action", Value::String(a)) => record.event_name = format!("authtrail.{a}"),
                // The heartbeat, which has no action, is named by its dataset.
                ("event.dataset", Value::String(d)) if record.event_name.is_empty() => {
                    record.event_name.clone_from(d);
                }
                ("source.domain", Value::String(d)) if !has_ip => {
                    record
                        .attributes
                        .push(key_value("source.address".into(), text(d)));
                    record
                        .attributes
                        .push(key_value("client.address".into(), text(d)));
                    continue;
                }
                _ => {}
            }
            if self
                .on_resource
                .iter()
                .any(|(k, v)| *k == name && value.as_str() == Some(v.as_str()))
            {
                continue;
            }
            let Some(v) = any_value(value) else { continue };
            for key in attribute_names(&name) {
                record.attributes.push(key_value(key, v.clone()));
            }
        }
        record
    }

    /// The request for a batch's NDJSON.
    pub fn request(
        &self,
        ndjson: &[u8],
        observed_unix_nano: u64,
    ) -> proto::ExportLogsServiceRequest {
        let log_records = ndjson
            .split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .map(|l| self.record(l, observed_unix_nano))
            .collect();
        proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![proto::ScopeLogs {
                    scope: Some(proto::InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        version: self.version.clone(),
                    }),
                    log_records,
                }],
            }],
        }
    }

    /// The request body (uncompressed) for a batch's NDJSON, in the configured protocol.
    pub fn encode(&self, ndjson: &[u8], observed_unix_nano: u64) -> Vec<u8> {
        let request = self.request(ndjson, observed_unix_nano);
        match self.protocol {
            OtlpProtocol::Protobuf => prost::Message::encode_to_vec(&request),
            OtlpProtocol::Json => json::request(&request).to_string().into_bytes(),
        }
    }

    /// The partial success of a 2xx answer: (records rejected, the server's message). An empty
    /// or unreadable answer rejected nothing.
    pub fn partial_success(&self, answer: &[u8]) -> (u64, String) {
        let (rejected, message) = match self.protocol {
            OtlpProtocol::Protobuf => {
                <proto::ExportLogsServiceResponse as prost::Message>::decode(answer)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_log_records, p.error_message))
                    .unwrap_or_default()
            }
            OtlpProtocol::Json => json::partial_success(answer),
        };
        (u64::try_from(rejected).unwrap_or(0), message)
    }
}

/// RFC 3339 to nanoseconds since the Unix epoch (`None` before 1970 or unreadable).
fn unix_nanos(t: &str) -> Option<u64> {
    let ts: jiff::Timestamp = t.parse().ok()?;
    u64::try_from(ts.as_nanosecond()).ok()
}

/// The OTLP JSON encoding (protobuf's JSON mapping with OTLP's rules: lowerCamelCase names,
/// 64-bit integers as decimal strings, enums as numbers, default values left out). Values are
/// built directly (not through `json!` on a `Vec`, which copies everything below it again).
mod json {
    use super::proto::{self, AnyValue, KeyValue};
    use super::{Map, Value};

    fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn any(v: &AnyValue) -> Value {
        use proto::Value as V;
        match &v.value {
            None => Value::Object(Map::new()),
            Some(V::StringValue(s)) => object([("stringValue", Value::String(s.clone()))]),
            Some(V::BoolValue(b)) => object([("boolValue", Value::Bool(*b))]),
            Some(V::IntValue(i)) => object([("intValue", Value::String(i.to_string()))]),
            Some(V::DoubleValue(d)) => object([("doubleValue", (*d).into())]),
            Some(V::ArrayValue(a)) => object([(
                "arrayValue",
                object([("values", Value::Array(a.values.iter().map(any).collect()))]),
            )]),
            Some(V::KvlistValue(l)) => object([(
                "kvlistValue",
                object([("values", Value::Array(kvs(&l.values)))]),
            )]),
        }
    }

    fn kvs(list: &[KeyValue]) -> Vec<Value> {
        list.iter()
            .map(|kv| match &kv.value {
                Some(v) => object([("key", Value::String(kv.key.clone())), ("value", any(v))]),
                None => object([("key", Value::String(kv.key.clone()))]),
            })
            .collect()
    }

    fn record(r: &proto::LogRecord) -> Value {
        let mut o = Map::new();
        let mut put = |k: &str, v: Value| {
            o.insert(k.to_owned(), v);
        };
        if r.time_unix_nano != 0 {
            put("timeUnixNano", Value::String(r.time_unix_nano.to_string()));
        }
        if r.observed_time_unix_nano != 0 {
            put(
                "observedTimeUnixNano",
                Value::String(r.observed_time_unix_nano.to_string()),
            );
        }
        if r.severity_number != 0 {
            put("severityNumber", r.severity_number.into());
        }
        if !r.severity_text.is_empty() {
            put("severityText", Value::String(r.severity_text.clone()));
        }
        if let Some(b) = &r.body {
            put("body", any(b));
        }
        if !r.attributes.is_empty() {
            put("attributes", Value::Array(kvs(&r.attributes)));
        }
        if !r.event_name.is_empty() {
            put("eventName", Value::String(r.event_name.clone()));
        }
        Value::Object(o)
    }

    /// An `ExportLogsServiceRequest` as OTLP JSON.
    pub(super) fn request(req: &proto::ExportLogsServiceRequest) -> Value {
        let resource_logs = req
            .resource_logs
            .iter()
            .map(|rl| {
                let scope_logs = rl
                    .scope_logs
                    .iter()
                    .map(|sl| {
                        let mut o = Map::new();
                        if let Some(s) = &sl.scope {
                            o.insert(
                                "scope".into(),
                                object([
                                    ("name", Value::String(s.name.clone())),
                                    ("version", Value::String(s.version.clone())),
                                ]),
                            );
                        }
                        o.insert(
                            "logRecords".into(),
                            Value::Array(sl.log_records.iter().map(record).collect()),
                        );
                        Value::Object(o)
                    })
                    .collect();
                let mut o = Map::new();
                if let Some(r) = &rl.resource {
                    o.insert(
                        "resource".into(),
                        object([("attributes", Value::Array(kvs(&r.attributes)))]),
                    );
                }
                o.insert("scopeLogs".into(), Value::Array(scope_logs));
                Value::Object(o)
            })
            .collect();
        object([("resourceLogs", Value::Array(resource_logs))])
    }

    /// `partialSuccess` of a JSON `ExportLogsServiceResponse` (the count may be a number or a
    /// decimal string, as protobuf's JSON mapping allows).
    pub(super) fn partial_success(answer: &[u8]) -> (i64, String) {
        let Ok(v) = serde_json::from_slice::<Value>(answer) else {
            return (0, String::new());
        };
        let p = &v["partialSuccess"];
        let rejected = match &p["rejectedLogRecords"] {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let message = p["errorMessage"].as_str().unwrap_or_default().to_owned();
        (rejected, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostFacts;

    fn mapper(protocol: OtlpProtocol) -> LogMapper {
        LogMapper::new(
            protocol,
            &AgentIdentity {
                agent_id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
                version: "1.2.3".into(),
                facts: HostFacts {
                    hostname: Some("web-1".into()),
                    host_id: Some("abc".into()),
                    os_name: None,
                    os_version: None,
                    kernel: None,
                    arch: "x86_64".into(),
                    boot_time: None,
                },
            },
        )
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a proto::Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn an_auth_failure_maps_to_semantic_conventions_and_authtrail_names() {
        let line = br#"{"@timestamp":"2026-11-28T08:06:35.5Z","event":{"kind":"event","category":["authentication"],"action":"auth_failure","outcome":"failure","sequence":7},"host":{"hostname":"web-1","id":"other"},"agent":{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8"},"user":{"name":"root"},"source":{"ip":"127.0.0.9","port":4242},"process":{"name":"sshd","pid":99},"authtrail":{"method":"password","count":1},"log":{"file":{"path":"/var/log/auth.log"},"offset":10},"message":"Failed password"}"#;
        let r = mapper(OtlpProtocol::Protobuf).record(line, 5);
        use proto::Value as V;
        assert_eq!(r.time_unix_nano, 1_795_853_195_500_000_000);
        assert_eq!(r.observed_time_unix_nano, 5);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
        assert_eq!(r.event_name, "authtrail.auth_failure");
        assert_eq!(
            r.body.clone().and_then(|b| b.value),
            Some(V::StringValue("Failed password".into()))
        );
        let s = |v: &str| Some(V::StringValue(v.into()));
        assert_eq!(attr(&r, "user.name").cloned(), s("root"));
        assert_eq!(attr(&r, "source.address").cloned(), s("127.0.0.9"));
        assert_eq!(attr(&r, "client.address").cloned(), s("127.0.0.9"));
        assert_eq!(attr(&r, "source.port").cloned(), Some(V::IntValue(4242)));
        assert_eq!(attr(&r, "client.port").cloned(), Some(V::IntValue(4242)));
        assert_eq!(attr(&r, "process.pid").cloned(), Some(V::IntValue(99)));
        assert_eq!(attr(&r, "process.executable.name").cloned(), s("sshd"));
        assert_eq!(attr(&r, "log.file.path").cloned(), s("/var/log/auth.log"));
        assert_eq!(
            attr(&r, "authtrail.log.offset").cloned(),
            Some(V::IntValue(10))
        );
        assert_eq!(attr(&r, "authtrail.method").cloned(), s("password"));
        assert_eq!(
            attr(&r, "authtrail.event.sequence").cloned(),
            Some(V::IntValue(7))
        );
        assert_eq!(
            attr(&r, "authtrail.event.action").cloned(),
            s("auth_failure")
        );
        // On the resource with the same value: not repeated; with another value: kept.
        assert_eq!(attr(&r, "authtrail.host.hostname"), None);
        assert_eq!(attr(&r, "authtrail.agent.id"), None);
        assert_eq!(attr(&r, "authtrail.host.id").cloned(), s("other"));
        assert!(
            matches!(attr(&r, "authtrail.event.category"), Some(V::ArrayValue(a)) if a.values.len() == 1)
        );
    }

    #[test]
    fn alerts_take_their_severity_and_heartbeats_their_dataset() {
        let m = mapper(OtlpProtocol::Protobuf);
        for (sev, want) in [
            (73, (17, "ERROR")),
            (99, (17, "ERROR")),
            (47, (13, "WARN")),
            (21, (9, "INFO")),
        ] {
            let line = format!(
                r#"{{"event":{{"kind":"alert","severity":{sev},"action":"brute_force"}}}}"#
            );
            let r = m.record(line.as_bytes(), 0);
            assert_eq!((r.severity_number, r.severity_text.as_str()), want, "{sev}");
        }
        let r = m.record(
            br#"{"event":{"kind":"alert","action":"spool_dropped","outcome":"failure"}}"#,
            0,
        );
        assert_eq!(r.severity_number, 13);
        let r = m.record(
            br#"{"event":{"kind":"state","dataset":"authtrail.heartbeat"}}"#,
            0,
        );
        assert_eq!(
            (r.severity_number, r.event_name.as_str()),
            (9, "authtrail.heartbeat")
        );
        let r = m.record(br#"{"event":{"action":"sudo","outcome":"success"}}"#, 0);
        assert_eq!(r.severity_number, 9);
    }

    #[test]
    fn a_line_that_is_not_json_is_kept_whole_as_the_body() {
        let r = mapper(OtlpProtocol::Protobuf).record(b"not json", 1);
        assert_eq!(r.body, Some(text("not json")));
    }

    #[test]
    fn partial_success_is_read_in_both_protocols() {
        let pb = prost::Message::encode_to_vec(&proto::ExportLogsServiceResponse {
            partial_success: Some(proto::ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        });
        assert_eq!(
            mapper(OtlpProtocol::Protobuf).partial_success(&pb),
            (2, "too old".into())
        );
        assert_eq!(
            mapper(OtlpProtocol::Protobuf).partial_success(b""),
            (0, String::new())
        );
        let m = mapper(OtlpProtocol::Json);
        assert_eq!(
            m.partial_success(
                br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"x"}}"#
            ),
            (3, "x".into())
        );
        assert_eq!(
            m.partial_success(br#"{"partialSuccess":{"rejectedLogRecords":4}}"#),
            (4, String::new())
        );
        assert_eq!(m.partial_success(b"{}"), (0, String::new()));
    }
}
