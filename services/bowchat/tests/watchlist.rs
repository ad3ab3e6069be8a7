//! Black-box: a user's watchlist over REST. It is stored per user, newest
//! first, bounded by `gateway.max_watchlist`, and adding or removing twice
//! is harmless.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{item_ids, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchlist_is_the_users_own_bounded_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [("BOWCHAT_GATEWAY__MAX_WATCHLIST", "2")];
    let mut server = Server::start(dir.path(), &settings);
    let seller = server.user("seller").await;
    let ann = server.user("ann").await;
    let ben = server.user("ben").await;
    let mut auctions = Vec::new();
    for title in ["lamp", "vase", "clock"] {
        auctions.push(
            server.auction(&seller, json!({"title": title})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let watch = |method: Method, auction: i64, token: String| {
        let server = &server;
        async move {
            server
                .call(
                    method,
                    &format!("/api/auctions/{auction}/watch"),
                    Some(&token),
                )
                .await
        }
    };

    assert_eq!(
        watch(Method::PUT, auctions[0], ann.token.clone()).await.0,
        204
    );
    assert_eq!(
        watch(Method::PUT, auctions[1], ann.token.clone()).await.0,
        204
    );
    assert_eq!(
        watch(Method::PUT, auctions[1], ann.token.clone()).await.0,
        204,
        "again: no change"
    );
    let (status, body) = watch(Method::PUT, auctions[2], ann.token.clone()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("WATCHLIST_FULL")),
        "{body}"
    );
    let (status, body) = watch(Method::PUT, 999_999, ann.token.clone()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("NOT_FOUND")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/api/auctions/{}/watch", auctions[0]),
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");

    let (status, list) = server.get("/api/me/watchlist", Some(&ann.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        item_ids(&list),
        vec![auctions[1], auctions[0]],
        "newest first"
    );
    assert_eq!(
        list["items"][0]["title"], "vase",
        "full auction views: {list}"
    );
    // The auction list's filters take the watchlist as one more.
    let (status, list) = server
        .get("/api/auctions?watching=true", Some(&ann.token))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(item_ids(&list), vec![auctions[1], auctions[0]]);
    let (_, list) = server
        .get("/api/auctions?watching=true&q=vas", Some(&ann.token))
        .await;
    assert_eq!(item_ids(&list), vec![auctions[1]]);
    let (status, body) = server.get("/api/auctions?watching=true", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!("AUTH_REQUIRED")),
        "{body}"
    );
    let (status, body) = server
        .get("/api/auctions?watching=true", Some("not-a-token"))
        .await;
    assert_eq!(status, 401, "a bad token is refused, not ignored: {body}");
    let (_, theirs) = server.get("/api/me/watchlist", Some(&ben.token)).await;
    assert_eq!(
        item_ids(&theirs),
        Vec::<i64>::new(),
        "another user's list is empty"
    );

    assert_eq!(
        watch(Method::DELETE, auctions[0], ann.token.clone())
            .await
            .0,
        204
    );
    assert_eq!(
        watch(Method::DELETE, auctions[0], ann.token.clone())
            .await
            .0,
        204,
        "again: no change"
    );
    assert_eq!(
        watch(Method::PUT, auctions[2], ann.token.clone()).await.0,
        204,
        "room again"
    );

    // Stored, not kept in the gateway's memory.
    server.kill();
    let server = Server::start(dir.path(), &settings);
    let (_, list) = server.get("/api/me/watchlist", Some(&ann.token)).await;
    assert_eq!(item_ids(&list), vec![auctions[2], auctions[1]]);
}
