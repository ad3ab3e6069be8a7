//! Black-box: `GET /api/auctions` narrowed by text, current price and phase,
//! and what it says about a query that asks for nothing sensible.

mod support;

use serde_json::{json, Value};
use support::{item_ids, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auctions_are_found_by_text_price_and_phase() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("BOWCHAT_GATEWAY__MAX_SEARCH_CHARS", "20")]);
    let seller = server.user("seller").await;
    let bidder = server.user("bidder").await;
    let create = |terms: Value| {
        let (server, seller) = (&server, &seller);
        async move { server.auction(seller, terms).await["id"].as_i64().unwrap() }
    };
    let camera = create(json!({"title": "Vintage camera", "startingPrice": 5000})).await;
    let lamp = create(json!({"title": "Desk lamp", "description": "Brass, fits a CAMERA bag", "startingPrice": 2000})).await;
    let bike = create(json!({"title": "Mountain bike", "startingPrice": 1000})).await;
    let later = create(json!({
        "title": "Camera lens",
        "startingPrice": 3000,
        "startsAt": bowchat_model::now_millis() + 3_600_000,
        "durationSecs": 7200,
    }))
    .await;
    // The bike's price moves past the others' starting prices.
    let (status, body) = server
        .post(
            &format!("/api/auctions/{bike}/bids"),
            Some(&bidder.token),
            json!({"amount": 9000, "requestId": "b1"}),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(true)),
        "{body}"
    );

    let list = |query: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get(&format!("/api/auctions?{query}"), None).await;
            assert_eq!(status, 200, "{query}: {body}");
            item_ids(&body)
        }
    };
    assert_eq!(list("q=camera").await, vec![later, lamp, camera]);
    assert_eq!(list("q=%20%20Vintage%20").await, vec![camera], "trimmed");
    assert_eq!(list("q=camera&phase=open").await, vec![lamp, camera]);
    assert_eq!(list("q=camera&phase=scheduled").await, vec![later]);
    assert_eq!(list("minPrice=5000").await, vec![bike, camera]);
    assert_eq!(list("maxPrice=3000").await, vec![later, lamp]);
    assert_eq!(
        list("minPrice=2000&maxPrice=5000&q=CAMERA").await,
        vec![later, lamp, camera]
    );
    assert_eq!(list("q=zeppelin").await, Vec::<i64>::new());
    assert_eq!(list("q=").await.len(), 4, "an empty q searches nothing");

    for (query, why) in [
        (
            "minPrice=5001&maxPrice=5000",
            "minPrice 5001 is above maxPrice 5000",
        ),
        ("minPrice=-1", "minPrice must not be negative"),
        (
            "q=abcdefghijklmnopqrstu",
            "q has 21 characters; at most 20 are searched",
        ),
        ("minPrice=ten", ""),
    ] {
        let (status, body) = server.get(&format!("/api/auctions?{query}"), None).await;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!("INVALID_QUERY")),
            "{query}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{query}: {body}"
        );
    }
}
