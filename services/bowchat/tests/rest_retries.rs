//! Black-box tests of REST commands sent at once with one idempotency key:
//! every caller gets the first result (the retries marked `duplicate`), and
//! one key used on two auctions or two rooms names two distinct commands.

mod support;

use futures::future::join_all;
use serde_json::{json, Value};
use support::Server;

async fn bid_at_once(
    server: &Server,
    token: &str,
    calls: &[(i64, &str, i64)],
) -> Vec<(u16, Value)> {
    join_all(
        calls
            .iter()
            .map(|(auction, request_id, amount)| async move {
                server
                    .post(
                        &format!("/api/auctions/{auction}/bids"),
                        Some(token),
                        json!({"amount": amount, "requestId": request_id}),
                    )
                    .await
            }),
    )
    .await
}

async fn step_count(server: &Server, auction: i64, token: &str) -> usize {
    let (status, page) = server
        .get(
            &format!("/api/auctions/{auction}/bids?limit=50"),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bid_retries_all_get_the_first_result() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let bidder = server.user("bidder").await;
    let a = server.auction(&seller, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let b = server.auction(&seller, json!({})).await["id"]
        .as_i64()
        .unwrap();

    // Three calls with one request id on one auction: one bid.
    let answers = bid_at_once(
        &server,
        &bidder.token,
        &[(a, "same", 100), (a, "same", 100), (a, "same", 100)],
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "every retry gets the first result: {body}");
        assert_eq!(body["accepted"], true, "{body}");
        assert_eq!(body["price"], 100, "{body}");
    }
    let firsts = answers
        .iter()
        .filter(|(_, body)| body["duplicate"] == false)
        .count();
    assert_eq!(firsts, 1, "exactly one call is the first: {answers:?}");
    assert_eq!(step_count(&server, a, &bidder.token).await, 1);

    // One request id on two auctions at once: two bids, each answered as new.
    let answers = bid_at_once(
        &server,
        &bidder.token,
        &[(a, "both", 110), (b, "both", 100)],
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["accepted"], true, "{body}");
        assert_eq!(
            body["duplicate"], false,
            "a different auction is a different bid: {body}"
        );
    }
    assert_eq!(answers[0].1["auctionId"], a);
    assert_eq!(answers[1].1["auctionId"], b);
    assert_eq!(step_count(&server, a, &bidder.token).await, 2);
    assert_eq!(step_count(&server, b, &bidder.token).await, 1);

    // A refused bid is a result too: its retries get the same refusal.
    let answers = bid_at_once(
        &server,
        &seller.token,
        &[(a, "mine", 500), (a, "mine", 500)],
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 403, "{body}");
        assert_eq!(body["code"], "SELLER_CANNOT_BID", "{body}");
    }
    assert_eq!(step_count(&server, a, &bidder.token).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_message_retries_create_one_message_per_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let owner = server.user("owner").await;
    let member = server.user("member").await;
    let first = server.group_room(&owner, "first", &[&member]).await;
    let second = server.group_room(&owner, "second", &[&member]).await;
    let (server, member) = (&server, &member);
    let send = |room: i64, id: &'static str| async move {
        server
            .post(
                &format!("/api/rooms/{room}/messages"),
                Some(&member.token),
                json!({"clientMsgId": id, "body": format!("hello {room}")}),
            )
            .await
    };

    let answers = join_all([send(first, "m1"), send(first, "m1"), send(first, "m1")]).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "one call creates the message: {answers:?}"
    );
    for (status, body) in &answers {
        assert!(*status == 201 || *status == 200, "{status} {body}");
        assert_eq!(body["seq"], created[0]["seq"], "the same message: {body}");
        assert_eq!(body["duplicate"], *status == 200, "{body}");
    }

    let answers = join_all([send(first, "m2"), send(second, "m2")]).await;
    for (status, body) in &answers {
        assert_eq!(
            *status, 201,
            "a different room is a different message: {body}"
        );
        assert_eq!(body["duplicate"], false, "{body}");
    }
    assert_eq!(answers[0].1["roomId"], first);
    assert_eq!(answers[1].1["roomId"], second);

    for (room, expected) in [(first, 2), (second, 1)] {
        let (status, page) = server
            .get(
                &format!("/api/rooms/{room}/messages?limit=50"),
                Some(&member.token),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), expected, "room {room}: {page}");
    }
}
