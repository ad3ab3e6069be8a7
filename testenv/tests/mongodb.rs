//! Smoke test of the `ferretdb` testenv component: a real MongoDB-wire server
//! (FerretDB) stores and finds documents and enforces a unique index.

use bowchat_testenv::TestEnv;
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

#[tokio::test]
async fn insert_find_and_unique_index_violation() {
    let url = TestEnv::require("BOWCHAT_TEST_MONGODB_URL", "ferretdb");
    let client = Client::with_uri_str(&url).await.expect("mongodb url");
    let db = client.database("bowchat_smoke");
    let coll = db.collection::<Document>(&format!("messages_{}", uuid::Uuid::new_v4().simple()));

    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "room": 1, "seq": 1 })
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await
    .expect("create a unique index");

    coll.insert_many(vec![
        doc! { "room": 1_i64, "seq": 1_i64, "text": "hello" },
        doc! { "room": 1_i64, "seq": 2_i64, "text": "world" },
        doc! { "room": 2_i64, "seq": 1_i64, "text": "other room" },
    ])
    .await
    .expect("insert");

    let found: Vec<Document> = coll
        .find(doc! { "room": 1_i64 })
        .sort(doc! { "seq": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let texts: Vec<&str> = found.iter().map(|d| d.get_str("text").unwrap()).collect();
    assert_eq!(texts, ["hello", "world"]);

    // Same (room, seq) again: the server refuses it with duplicate key 11000.
    let err = coll
        .insert_one(doc! { "room": 1_i64, "seq": 2_i64, "text": "again" })
        .await
        .unwrap_err();
    let code = match *err.kind {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) => Some(e.code),
        _ => None,
    };
    assert_eq!(code, Some(11000), "{err}");
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 3);

    coll.drop().await.unwrap();
}
