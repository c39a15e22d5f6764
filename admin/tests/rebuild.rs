//! `evently-admin rebuild-read-model` against the locally deployed stack: a projection lost
//! from the read model comes back from the events table.

use std::collections::HashMap;
use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use evently_e2e::{Stack, repo_root, sdk_config};
use serde_json::{Value, json};

#[tokio::test]
async fn a_lost_projection_is_restored_by_a_rebuild() {
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let start = chrono::Utc::now() + chrono::Duration::days(40);
    let (starts_at, ends_at) = (
        start.to_rfc3339(),
        (start + chrono::Duration::hours(2)).to_rfc3339(),
    );
    let created: Value = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("rebuilder"))
        .json(&json!({ "title": "Rebuild me", "starts_at": starts_at, "ends_at": ends_at, "venue": "Anywhere" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("EVENT#{id}"))),
        ("sk".to_owned(), AttributeValue::S("EVENT".into())),
    ]);
    let table = stack.output("ReadModelTableName");
    let projection = || async {
        dynamo
            .get_item()
            .table_name(&table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    };
    evently_e2e::eventually(
        "the projection",
        std::time::Duration::from_secs(30),
        projection,
    )
    .await;
    dynamo
        .delete_item()
        .table_name(&table)
        .set_key(Some(key.clone()))
        .send()
        .await
        .unwrap();
    assert!(projection().await.is_none());

    let output = Command::new(env!("CARGO_BIN_EXE_evently-admin"))
        .current_dir(repo_root())
        .args([
            "rebuild-read-model",
            "--outputs",
            "infra/outputs.local.json",
        ])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("done: "), "{stdout}");
    let restored = projection().await.expect("the projection is back");
    assert_eq!(restored["title"].as_s().unwrap(), "Rebuild me");
}

#[test]
fn a_missing_outputs_file_is_a_clear_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_evently-admin"))
        .args([
            "rebuild-read-model",
            "--outputs",
            "/nonexistent/outputs.json",
        ])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--events-table"));
}
