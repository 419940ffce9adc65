//! The Yunhu simulator against `tests/fixtures/wire/yunhu/`.

use tokio_tungstenite::tungstenite::Message;

use super::{Client, connect, next, send};
use crate::corpus::{assert_protobuf_shape, json, protobuf, split};
use crate::sim::yunhu::{YunhuSim, YunhuSimConfig};

const LOGIN: &str = include_str!("../../../tests/fixtures/wire/yunhu/ws_login.json");
const HEARTBEAT: &str = include_str!("../../../tests/fixtures/wire/yunhu/ws_heartbeat.json");
const ACK: &str = include_str!("../../../tests/fixtures/wire/yunhu/heartbeat_ack.pb.json");
const PUSH: &str = include_str!("../../../tests/fixtures/wire/yunhu/push_message.pb.json");
const USER_INFO: &str = include_str!("../../../tests/fixtures/wire/yunhu/user_info.pb.json");
const STATUS: &str = include_str!("../../../tests/fixtures/wire/yunhu/status_answer.pb.json");
const SEND: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_message.pb.json");
const EDIT: &str = include_str!("../../../tests/fixtures/wire/yunhu/edit_message.pb.json");
const RECALL: &str = include_str!("../../../tests/fixtures/wire/yunhu/recall_message.pb.json");
const SEND_IMAGE: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_image.pb.json");
const SEND_FILE: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_file.pb.json");
const UPLOAD_TOKEN: &str = include_str!("../../../tests/fixtures/wire/yunhu/upload_token.json");
const UPLOAD_ANSWER: &str = include_str!("../../../tests/fixtures/wire/yunhu/qiniu_upload_answer.json");

const TOKEN: &str = "0d6f5c1e-7a2b-4c3d-9e8f-112233445566";

async fn binary(client: &mut Client) -> Vec<u8> {
    match next(client).await {
        Message::Binary(bytes) => bytes.to_vec(),
        other => panic!("server frames are binary protobuf: {other:?}"),
    }
}

/// The `cmd` of a server frame, read by hand: field 1 (info), its field 2.
fn cmd(frame: &[u8]) -> String {
    let info = crate::corpus::field(frame, 1).expect("info");
    String::from_utf8(crate::corpus::field(&info, 2).expect("cmd")).unwrap()
}

#[tokio::test]
async fn the_yunhu_simulator_speaks_the_golden_frames() {
    let sim = YunhuSim::start(YunhuSimConfig {
        users: vec![(TOKEN.into(), "1234567".into(), "云朵".into())],
        ..YunhuSimConfig::default()
    })
    .await
    .unwrap();
    let http = super::http();

    // user/info: the golden UserInfo's shape, with the id.
    let info = http.get(format!("{}/v1/user/info", sim.api_url())).header("token", TOKEN).send().await.unwrap();
    let info = info.bytes().await.unwrap();
    assert_protobuf_shape("user info", &json(USER_INFO), &info, &["1", "1.2", "2", "2.1", "2.2"]);

    // The golden login frame as it is, then the golden heartbeat: the ack has the golden ack's shape.
    let mut client = connect(sim.ws_url()).await;
    send(&mut client, Message::text(split(LOGIN).1.trim())).await;
    send(&mut client, Message::text(split(HEARTBEAT).1.trim())).await;
    let ack = binary(&mut client).await;
    assert_protobuf_shape("heartbeat ack", &json(ACK), &ack, &["1", "1.1", "1.2"]);
    assert_eq!(cmd(&ack), "heartbeat_ack");

    // A message, its edit and its recall: all with the golden push's shape.
    let msg_id = sim.post("big-group", ("7654321", "小明"), "@云朵 你好", &["1234567"], ("", ""));
    let push = binary(&mut client).await;
    assert_protobuf_shape(
        "push",
        &json(PUSH),
        &push,
        &[
            "1.2", "2.1", "2.2.1", "2.2.2.1", "2.2.2.3", "2.2.4", "2.2.5", "2.2.6.1", "2.2.6.6", "2.2.7", "2.2.8",
            "2.2.12",
        ],
    );
    assert_eq!(cmd(&push), "push_message");
    sim.edit(&msg_id, "改过了");
    let edit = binary(&mut client).await;
    assert_protobuf_shape("edit", &json(PUSH), &edit, &["2.2.1", "2.2.14"]);
    assert_eq!(cmd(&edit), "edit_message");
    sim.recall(&msg_id);
    let recall = binary(&mut client).await;
    assert_protobuf_shape("recall", &json(PUSH), &recall, &["2.2.1", "2.2.10"]);

    // The golden requests, encoded by hand: each answered with the golden status.
    for (path, golden) in
        [("send-message", SEND), ("edit-message", EDIT), ("recall-msg", RECALL), ("recall-msg-batch", RECALL)]
    {
        let answer = http
            .post(format!("{}/v1/msg/{path}", sim.api_url()))
            .header("token", TOKEN)
            .body(protobuf(&json(golden)))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        assert_protobuf_shape(path, &json(STATUS), &answer.bytes().await.unwrap(), &["1", "1.2", "1.3"]);
    }
    let requests = sim.requests();
    assert!(
        matches!(&requests[0], crate::sim::yunhu::Request::Send(sent)
        if sent.text == "hello" && sent.quote_msg_text == "小明: 你好" && sent.mentioned_id == ["7654321"]),
        "{requests:?}"
    );
}

/// The upload route and the upload host answer as the golden answers do; media messages are taken as the golden
/// requests write them.
#[tokio::test]
async fn the_yunhu_simulator_takes_uploads_as_the_golden_frames_show() {
    use crate::corpus::assert_json_shape;
    let sim = YunhuSim::start(YunhuSimConfig {
        users: vec![(TOKEN.into(), "1234567".into(), "云朵".into())],
        ..YunhuSimConfig::default()
    })
    .await
    .unwrap();
    let http = super::http();
    for route in ["qiniu-token", "qiniu-token2", "qiniu-token-video", "qiniu-token-audio"] {
        let answer =
            http.get(format!("{}/v1/misc/{route}", sim.api_url())).header("token", TOKEN).send().await.unwrap();
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_json_shape(route, &[&json(UPLOAD_TOKEN)], &answer, &["code", "data.token", "msg"]);
    }
    let answer = http.get(format!("{}/v1/misc/qiniu-token", sim.api_url())).send().await.unwrap();
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_ne!(answer["code"], 1, "no token without the user's token");
    let token: serde_json::Value = http
        .get(format!("{}/v1/misc/qiniu-token", sim.api_url()))
        .header("token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["data"]["token"].as_str().unwrap().to_owned();
    let form = |token: &str| {
        reqwest::multipart::Form::new()
            .text("token", token.to_owned())
            .text("key", "748b2244a5461d41bd02c41074646fc1.png")
            .part("file", reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nxyz".to_vec()).file_name("a.png"))
    };
    let upload = http.post(sim.upload_url()).multipart(form(&token)).send().await.unwrap();
    assert!(upload.status().is_success(), "{}", upload.status());
    let upload: serde_json::Value = upload.json().await.unwrap();
    assert_json_shape("upload", &[&json(UPLOAD_ANSWER)], &upload, &["key", "hash"]);
    assert_eq!(sim.uploaded("748b2244a5461d41bd02c41074646fc1.png").unwrap(), b"\x89PNG\r\n\x1a\nxyz");
    let refused = http.post(sim.upload_url()).multipart(form("forged")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "an upload token the API did not give is refused");
    for golden in [SEND_IMAGE, SEND_FILE] {
        let answer = http
            .post(format!("{}/v1/msg/send-message", sim.api_url()))
            .header("token", TOKEN)
            .body(protobuf(&json(golden)))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    let keys: Vec<(u64, String)> = sim
        .requests()
        .into_iter()
        .filter_map(|r| match r {
            crate::sim::yunhu::Request::Send(sent) => Some((sent.content_type, sent.media_key)),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        [
            (2, "748b2244a5461d41bd02c41074646fc1.png".to_owned()),
            (4, "disk/b126e6db706f176a316b2049353edab4.pdf".to_owned())
        ]
    );
}
