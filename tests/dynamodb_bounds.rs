//! The DynamoDB front door keeps one request's work bounded whatever the table holds or the
//! request asks: pages end early with a `LastEvaluatedKey` that resumes, costly conditions
//! and updates are refused with a ValidationException instead of running for minutes or
//! building hundreds of MB.

mod common;

use common::start;
use rewind_loadgen::dynamo::call;
use serde_json::{json, Value};

struct Api {
    addr: std::net::SocketAddr,
}

impl Api {
    fn call(&self, op: &str, body: Value) -> (u16, Value) {
        call(self.addr, &self.addr.to_string(), op, &body).unwrap()
    }

    fn ok(&self, op: &str, body: Value) -> Value {
        let (status, v) = self.call(op, body);
        assert_eq!(status, 200, "{op}: {v}");
        v
    }

    fn create(&self, name: &str) {
        self.ok(
            "CreateTable",
            json!({
                "TableName": name,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
                "BillingMode": "PAY_PER_REQUEST",
            }),
        );
    }

    /// Every page of a scan: the items' count, the pages, and the first error.
    fn scan_all(&self, mut req: Value) -> (u64, usize) {
        let (mut count, mut pages) = (0, 0);
        loop {
            let v = self.ok("Scan", req.clone());
            pages += 1;
            count += v["Count"].as_u64().unwrap();
            match v.get("LastEvaluatedKey") {
                Some(k) => req["ExclusiveStartKey"] = k.clone(),
                None => return (count, pages),
            }
            assert!(pages < 100, "the scan does not end");
        }
    }
}

/// Writes `n` keys built by `key` with a value that is not an item, 1,000 to a command.
fn write_raw(c: &mut common::Client, table: &str, n: usize, key: impl Fn(usize) -> Vec<u8>) {
    c.cmd(&["TABLE.USE", table]);
    let mut i = 0;
    while i < n {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for j in i..(i + 1000).min(n) {
            args.push(key(j));
            args.push(b"not an item".to_vec());
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        assert_eq!(c.cmd_bytes(&refs), common::Value::ok());
        i += 1000;
    }
}

fn hash_key(pk: &[u8]) -> Vec<u8> {
    let mut k = vec![0x01, b'S'];
    k.extend((pk.len() as u16).to_be_bytes());
    k.extend_from_slice(pk);
    k
}

#[test]
fn pages_stay_bounded_and_resume_past_entries_that_are_not_items() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "auto",
        &["--dynamodb-listen", "127.0.0.1:0", "--shards", "2"],
    );
    let port = srv.dynamodb_port.expect("DynamoDB port");
    let api = Api {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let mut c = srv.client();
    for table in ["mismatched", "strays"] {
        api.create(table);
        for sk in 1..=3 {
            api.ok(
                "PutItem",
                json!({"TableName": table, "Item": {"pk": {"S": "real"}, "sk": {"N": sk.to_string()}}}),
            );
        }
    }
    // 220,000 keys under the item prefix whose sort key is a string where the schema says
    // number (a Redis client wrote them): never a LastEvaluatedKey, which the next request
    // could not give back. Each of two segments passes over ~110,000 of the other's.
    write_raw(&mut c, "mismatched", 220_000, |i| {
        let mut k = hash_key(b"x");
        k.push(b'S');
        k.extend(format!("{i:06}").bytes());
        k
    });
    let mut segments = 0;
    for segment in 0..2 {
        let (count, _) = api.scan_all(json!({
            "TableName": "mismatched", "Segment": segment, "TotalSegments": 2,
        }));
        segments += count;
    }
    assert_eq!(segments, 3, "every real item, once, from the two segments");

    // 100,001 well-formed item keys whose values are not items: the first page ends after
    // passing 100,000 of them, and the scan resumes from there.
    write_raw(&mut c, "strays", 100_001, |i| {
        let mut k = hash_key(b"y");
        k.push(b'N');
        // Canonical numbers only (no trailing zero): the index holds nothing else.
        k.extend((i * 10 + 1).to_string().bytes());
        k
    });
    let first = api.ok("Scan", json!({"TableName": "strays"}));
    assert!(
        first.get("LastEvaluatedKey").is_some(),
        "a page that passed 100,000 entries ends there: {}",
        first["Count"]
    );
    let (count, pages) = api.scan_all(json!({"TableName": "strays"}));
    assert_eq!(count, 3);
    assert!(pages >= 2, "{pages} pages");
}

#[test]
fn costly_conditions_and_updates_are_refused() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--dynamodb-listen", "127.0.0.1:0"]);
    let port = srv.dynamodb_port.expect("DynamoDB port");
    let api = Api {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    api.create("costly");
    // 2,000 one-element binary sets in a list; the filter compares each with a constant
    // set of one 100 KB binary: 200 MB of decoding for this one item.
    let small: Vec<Value> = (0..2000).map(|_| json!({"BS": ["AAAA"]})).collect();
    api.ok(
        "PutItem",
        json!({"TableName": "costly", "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "l": {"L": small}}}),
    );
    let big = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 100_000]);
    let (status, v) = api.call(
        "Scan",
        json!({"TableName": "costly", "FilterExpression": "contains(l, :y)",
               "ExpressionAttributeValues": {":y": {"BS": [big]}}}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["__type"]
        .as_str()
        .unwrap()
        .ends_with("ValidationException"));
    assert!(v["message"].as_str().unwrap().contains("MiB"), "{v}");

    // A constant where DynamoDB's grammar has an attribute path.
    let (status, v) = api.call(
        "Scan",
        json!({"TableName": "costly", "FilterExpression": "contains(:s, pk)",
               "ExpressionAttributeValues": {":s": {"S": "abc"}}}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["__type"]
        .as_str()
        .unwrap()
        .ends_with("ValidationException"));

    // SET copies of a 150 KB attribute: refused as soon as the copies outgrow an item.
    api.ok(
        "PutItem",
        json!({"TableName": "costly", "Item": {"pk": {"S": "b"}, "sk": {"N": "1"},
               "s": {"S": "z".repeat(150_000)}}}),
    );
    let sets: Vec<String> = (0..400).map(|i| format!("c{i} = s")).collect();
    let (status, v) = api.call(
        "UpdateItem",
        json!({"TableName": "costly", "Key": {"pk": {"S": "b"}, "sk": {"N": "1"}},
               "UpdateExpression": format!("SET {}", sets.join(", "))}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("the update computes"),
        "{v}"
    );
    // The item is as it was.
    let got = api.ok(
        "GetItem",
        json!({"TableName": "costly", "Key": {"pk": {"S": "b"}, "sk": {"N": "1"}}}),
    );
    assert_eq!(got["Item"].as_object().unwrap().len(), 3);
}
