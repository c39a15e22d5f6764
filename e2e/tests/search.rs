//! Search through the locally deployed stack: words, accents, prefixes, tags, organizer and
//! dates, answered from the search entries that the search-index consumer maintains.

use std::time::Duration;

use evently_e2e::{Stack, eventually};
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(30);

async fn search(stack: &Stack, params: &[(&str, &str)]) -> Vec<String> {
    let response = stack
        .http
        .get(stack.url("/events"))
        .query(params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{params:?}");
    let body: Value = response.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_finds_by_words_accents_prefix_tag_organizer_and_dates_and_forgets_cancelled() {
    let stack = Stack::load().await;
    let unique = format!("zq{}", ulid::Ulid::generate().to_string().to_lowercase());
    let organizer = format!("searcher-{unique}");
    let start = chrono::Utc::now() + chrono::Duration::days(25);
    let created: Value = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token(&organizer))
        .json(&json!({
            "title": format!("Crème {unique} meetup"),
            "description": "Talks about the naïve parsers",
            "starts_at": start.to_rfc3339(),
            "ends_at": (start + chrono::Duration::hours(2)).to_rfc3339(),
            "venue": "Café Central",
            "tags": [unique.clone()]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let only = vec![id.clone()];
    let upper = unique.to_uppercase();
    let q_accent = format!("{upper} CREME cafe");
    let prefix = &unique[..6];
    let from = (start - chrono::Duration::hours(1)).to_rfc3339();
    let to = (start + chrono::Duration::hours(1)).to_rfc3339();
    let too_early = (start - chrono::Duration::hours(2)).to_rfc3339();

    eventually("the event in search", PROPAGATION, || async {
        search(&stack, &[("q", &unique)])
            .await
            .contains(&id)
            .then_some(())
    })
    .await;

    assert_eq!(
        search(&stack, &[("q", &q_accent)]).await,
        only,
        "case and accents"
    );
    assert_eq!(
        search(&stack, &[("q", prefix)]).await,
        only,
        "prefix of the last word"
    );
    assert_eq!(
        search(&stack, &[("q", &format!("naive {prefix}"))]).await,
        only
    );
    // Stop words are filed nowhere, yet still checked: a query naming one finds exactly.
    assert_eq!(
        search(&stack, &[("q", &format!("the {prefix}"))]).await,
        only,
        "a stop word among the words"
    );
    assert_eq!(
        search(&stack, &[("q", &format!("{unique} the"))]).await,
        only,
        "a stop word as the prefix"
    );
    assert!(
        search(&stack, &[("q", &format!("and {unique}"))])
            .await
            .is_empty(),
        "a stop word the event does not have"
    );
    assert_eq!(search(&stack, &[("tag", &unique)]).await, only);
    // The tag is checked from the entries' words outside `TAG#`.
    assert_eq!(
        search(&stack, &[("tag", &unique), ("q", "cafe")]).await,
        only
    );
    assert!(
        search(&stack, &[("tag", "other"), ("q", &unique)])
            .await
            .is_empty()
    );
    assert_eq!(search(&stack, &[("organizer", &organizer)]).await, only);
    // A query naming the organizer reads the organizer's partition and checks the rest.
    assert_eq!(
        search(&stack, &[("organizer", &organizer), ("q", "creme")]).await,
        only
    );
    assert!(
        search(&stack, &[("organizer", &organizer), ("q", "python")])
            .await
            .is_empty()
    );
    assert_eq!(
        search(&stack, &[("q", &unique), ("from", &from), ("to", &to)]).await,
        only
    );
    // Dates alone, or a last word under three characters, read the read model's listing
    // (other runs' events may share the window: contains, not equals).
    eventually("the event in the listing's window", PROPAGATION, || async {
        search(&stack, &[("from", &from), ("to", &to)])
            .await
            .contains(&id)
            .then_some(())
    })
    .await;
    assert!(
        search(&stack, &[("q", "cr"), ("from", &from), ("to", &to)])
            .await
            .contains(&id)
    );
    assert!(
        !search(&stack, &[("q", "zz"), ("from", &from), ("to", &to)])
            .await
            .contains(&id)
    );
    assert!(
        search(&stack, &[("q", &unique), ("to", &too_early)])
            .await
            .is_empty()
    );
    assert!(
        search(&stack, &[("q", &format!("python {unique}"))])
            .await
            .is_empty()
    );

    let cancelled = stack
        .http
        .delete(stack.url(&format!("/events/{id}")))
        .bearer_auth(stack.token(&organizer))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    eventually("the event gone from search", PROPAGATION, || async {
        search(&stack, &[("q", &unique)])
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(search(&stack, &[("tag", &unique)]).await.is_empty());
    eventually("the event gone from the listing", PROPAGATION, || async {
        (!search(&stack, &[("from", &from), ("to", &to)])
            .await
            .contains(&id))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_search_parameters_are_named() {
    let stack = Stack::load().await;

    let response = stack
        .http
        .get(stack.url("/events"))
        .query(&[
            ("tag", "Not A Slug"),
            ("from", "soon"),
            ("q", &"w ".repeat(20)),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["from", "q", "tag"]);
}
